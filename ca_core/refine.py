"""Concept maps made as sharp as the image: a guided filter with the image as guide (He, Sun and Tang, "Guided
Image Filtering", 2010; the fast, subsampled form of He and Sun, 2015).

A concept map holds one value per image token (16 px on Flux), so upsampled maps cross object boundaries in
soft ramps. The guided filter fits each map, in every window, as a linear function of the image's colours:
where the image has an edge the map may change across it, where the image is flat the map stays smooth. The
coefficients are computed on a grid `subsample` times coarser than the image and upsampled, as the fast form
does; the output is at full resolution.
"""

from dataclasses import dataclass

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .maps import token_maps_to_pixels

# Window radius in tokens: a window a little wider than a token lets the colours of the pixels inside a
# token tell them apart.
RADIUS_TOKENS = 1.0
# Regularisation on the guide's variance (colours in 0..1): the smaller, the more the map follows weak edges.
EPSILON = 1e-3
# Output rows assembled at a time from the upsampled coefficients: fewer, larger strips measured faster at 4096 x
# 4096 (each strip's buffers are fresh memory), at 4 planes x 1024 rows x the width per map.
STRIP_ROWS = 1024


def box_sum(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sum over the 2r+1 entries around each entry along `dim` (zeros past the ends), from a running sum: its
    cost does not grow with the radius."""
    size = x.shape[dim]
    padding = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [radius + 1, radius]
    running = F.pad(x, padding).cumsum(dim)
    return running.narrow(dim, 2 * radius + 1, size) - running.narrow(dim, 0, size)


def window_sum(x: Tensor, radius: int) -> Tensor:
    """Sum over the (2r+1)^2 window around each entry of [..., h, w] (zeros past the edges). On the CPU OpenCV's
    box filter (running sums in double precision, many times faster than cumulative sums); elsewhere box_sum."""
    if x.device.type != "cpu":
        return box_sum(box_sum(x, radius, -1), radius, -2)
    planes = x.to(torch.float32).reshape(-1, *x.shape[-2:]).numpy()
    size = (2 * radius + 1,) * 2
    summed = np.empty(planes.shape, np.float32)
    for plane, out in zip(planes, summed, strict=True):  # written in place: no stack of the planes after
        cv2.boxFilter(plane, -1, size, dst=out, normalize=False, borderType=cv2.BORDER_CONSTANT)
    return torch.from_numpy(summed).reshape(x.shape)


def window_mean(radius: int, size: tuple[int, int], device: torch.device):
    """The mean over the (2r+1)^2 window around each pixel of [N, C, *size], counting only pixels inside; the
    windows' pixel counts are worked out once for every plane the filter averages."""
    count = window_sum(torch.ones(1, 1, *size, device=device), radius)
    return lambda x: window_sum(x, radius).div_(count)


def shrink(x: Tensor, factor: int) -> Tensor:
    """[N, C, H, W] averaged over factor x factor cells (the last cells take what is left at the edges)."""
    if factor <= 1:
        return x
    return F.avg_pool2d(x, factor, stride=factor, ceil_mode=True)


def shrunk_colours(image: Tensor, factor: int) -> Tensor:
    """An image [B, H, W, C] averaged over factor x factor cells as shrink averages it, as planes [B, C, h, w]. On the
    CPU, where the cells tile the image, OpenCV's area resize reads the pixels' colours together (several times
    faster than pooling the colour planes of a channel-last image; equal within float rounding)."""
    height, width = image.shape[1:3]
    if image.device.type != "cpu" or factor <= 1 or height % factor or width % factor:
        return shrink(image.permute(0, 3, 1, 2), factor).contiguous()
    size = (width // factor, height // factor)
    shrunk = [cv2.resize(np.ascontiguousarray(one), size, interpolation=cv2.INTER_AREA).reshape(*size[::-1], -1)
              for one in image.numpy()]
    return torch.from_numpy(np.stack(shrunk)).permute(0, 3, 1, 2).contiguous()


@dataclass(frozen=True)
class Guide:
    """The guide image's side of the guided filter, worked out once for every map set it filters: its colours at
    full size [B, 3, H, W] (a channel-last view of the image) and on the coarse grid, their window means, and the
    inverse of their regularised covariance [B, 3, 3, h, w]."""

    full: Tensor
    coarse: Tensor
    mean: Tensor
    inverse: Tensor
    radius: int  # the window's radius in coarse cells
    subsample: int

    @classmethod
    def of(cls, guide: Tensor, radius: int, epsilon: float = EPSILON, subsample: int = 1) -> "Guide":
        """guide [B, H, W, 3] in 0..1; radius in pixels of the full image; the coefficients are fitted on a grid
        `subsample` times coarser."""
        # [B, 3, H, W], planes apart; the filter is applied, not differentiated (its planes are written in place)
        colours = guide[..., :3].detach().to(torch.float32)
        full = colours.permute(0, 3, 1, 2)  # a view of the image's own memory: no full-size copy
        coarse = shrunk_colours(colours, subsample)
        radius = max(1, round(radius / subsample))
        box_mean = window_mean(radius, coarse.shape[-2:], coarse.device)
        mean = box_mean(coarse)  # [B, 3, h, w]
        # covariance of the guide's colours, a symmetric 3x3 per pixel (its six entries), regularised
        pairs = ((0, 0), (0, 1), (0, 2), (1, 1), (1, 2), (2, 2))
        ii = torch.stack([coarse[:, a] * coarse[:, b] for a, b in pairs], dim=1)
        sigma = box_mean(ii) - torch.stack([mean[:, a] * mean[:, b] for a, b in pairs], dim=1)
        return cls(full, coarse, mean, symmetric_inverse(sigma, epsilon), radius, subsample)

    def filter(self, maps: Tensor, within: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """maps [B, K, H, W] at the guide's size, filtered; within: (low, high) [B, K, 1, 1] to clamp each map's
        values to, as they are written."""
        return self.applied(self.coefficients(maps), within)

    def coefficients(self, maps: Tensor) -> Tensor:
        """The filter's coefficients of maps [B, K, H, W] at the guide's size: [B, K, 4, h, w] on the coarse grid,
        a for the three colours, then b."""
        if maps.shape[0] != self.full.shape[0] or maps.shape[-2:] != self.full.shape[-2:]:
            raise ValueError(f"maps of {tuple(maps.shape)} and a guide image of "
                             f"{tuple(self.full.permute(0, 2, 3, 1).shape)} do not match: the image must be the one "
                             "the maps were made for, at its size")
        return self.fitted(shrink(maps.detach().to(torch.float32), self.subsample))

    def fitted(self, p: Tensor) -> Tensor:
        """The coefficients [B, K, 4, h, w] of maps p [B, K, h, w] already on the coarse grid (coarse_maps)."""
        coarse, mean_i = self.coarse, self.mean
        if p.shape[0] != coarse.shape[0] or p.shape[-2:] != coarse.shape[-2:]:
            raise ValueError(f"coarse maps of {tuple(p.shape)} do not match the guide's coarse grid "
                             f"{tuple(coarse.shape[-2:])} of {coarse.shape[0]} image(s)")
        box_mean = window_mean(self.radius, coarse.shape[-2:], coarse.device)
        mean_p = box_mean(p)  # [B, K, h, w]
        # covariance of each map with each colour: [B, K, 3, h, w], the three products' window means at once
        ip = box_mean(p[:, :, None] * coarse[:, None]).sub_(mean_p[:, :, None] * mean_i[:, None])
        # each map's coefficients [B, K, 4, h, w], written plane by plane (a 3x3 product per pixel as a batched
        # matmul would first permute every plane): a = cov(I, p) Sigma^-1 for the three colours, then
        # b = mean_p - a . mean_i
        inverse = self.inverse  # [B, 3, 3, h, w]
        coefficients = torch.empty(*p.shape[:2], 4, *p.shape[2:], device=p.device)
        b = coefficients[:, :, 3]
        b.copy_(mean_p)
        for d in range(3):
            a = coefficients[:, :, d]
            torch.mul(ip[:, :, 0], inverse[:, None, 0, d], out=a)
            for c in (1, 2):
                a.addcmul_(ip[:, :, c], inverse[:, None, c, d])
            b.addcmul_(a, mean_i[:, None, d], value=-1)
        return box_mean(coefficients.flatten(1, 2)).unflatten(1, (-1, 4))

    def applied(self, coefficients: Tensor, within: tuple[Tensor, Tensor] | None = None) -> Tensor:
        """q = mean_a . I + mean_b at full size, [B, K, H, W], from the coefficients on the coarse grid (clamped to
        `within`).

        Where the full size is the coarse grid's times the subsample, strips of STRIP_ROWS rows of every map are
        upsampled from their coarse rows and a row each side: the same bilinear weights, so the values of
        upsampling whole planes (bit for bit at 4096 x 4096, within a float rounding where the sums vectorise
        otherwise), with buffers small enough to stay in the cache instead of full-size planes per map."""
        full, factor = self.full, self.subsample
        height, width = full.shape[-2:]
        rows, columns = coefficients.shape[-2:]
        out = torch.empty(full.shape[0], coefficients.shape[1], height, width, device=full.device)
        if factor > 1 and (rows * factor, columns * factor) != (height, width):
            for k in range(coefficients.shape[1]):
                planes = F.interpolate(coefficients[:, k], size=(height, width), mode="bilinear", align_corners=False)
                bounds = None if within is None else (within[0][:, k:k + 1], within[1][:, k:k + 1])
                combined(planes[:, None], full[:, None], out[:, k:k + 1], bounds)
            return out
        step = max(1, STRIP_ROWS // factor)
        for top in range(0, rows, step):
            bottom = min(rows, top + step)
            low, high = max(0, top - 1), min(rows, bottom + 1)
            planes = coefficients[..., low:high, :]
            if factor > 1:
                planes = F.interpolate(planes.flatten(1, 2), size=((high - low) * factor, width), mode="bilinear",
                                       align_corners=False).unflatten(1, (-1, 4))
            shown = slice(top * factor, bottom * factor)
            colours = full[:, None, :, shown]
            combined(planes[..., (top - low) * factor:(bottom - low) * factor, :], colours, out[:, :, shown], within)
        return out


def symmetric_inverse(entries: Tensor, epsilon: float) -> Tensor:
    """The inverses, as planes [B, 3, 3, h, w], of the symmetric 3x3 matrices whose entries (00, 01, 02, 11, 12, 22)
    are the planes of [B, 6, h, w], epsilon added to the diagonal: by cofactors, plane by plane (a batched inverse
    of a million 3x3 matrices is several times slower)."""
    a, b, c, d, e, f = entries.unbind(1)
    a, d, f = a + epsilon, d + epsilon, f + epsilon
    cofactors = (d * f - e * e, c * e - b * f, b * e - c * d, a * f - c * c, b * c - a * e, a * d - b * b)
    determinant = a * cofactors[0] + b * cofactors[1] + c * cofactors[2]
    aa, ab, ac, bb, bc, cc = (cofactor / determinant for cofactor in cofactors)
    return torch.stack([aa, ab, ac, ab, bb, bc, ac, bc, cc], dim=1).unflatten(1, (3, 3))


def combined(planes: Tensor, colours: Tensor, out: Tensor, within: tuple[Tensor, Tensor] | None = None) -> None:
    """out = planes' a . colours + b, for [B, K, 4, ...] planes (a for the three colours, then b) and [B, 1, 3, ...]
    colours, clamped to within's (low, high) [B, K, 1, 1]."""
    torch.addcmul(planes[:, :, 3], planes[:, :, 0], colours[:, :, 0], out=out)
    for c in range(1, 3):
        out.addcmul_(planes[:, :, c], colours[:, :, c])
    if within is not None:
        out.clamp_(*within)


def guided_filter(maps: Tensor, guide: Tensor, radius: int, epsilon: float = EPSILON, subsample: int = 1) -> Tensor:
    """maps [B, K, H, W] filtered with the colour guide [B, H, W, 3] (in 0..1) of the same size.

    radius is in pixels of the full image; the coefficients are fitted on a grid `subsample` times coarser.
    """
    if maps.shape[0] != guide.shape[0] or maps.shape[-2:] != guide.shape[1:3]:
        raise ValueError(f"maps of {tuple(maps.shape)} and a guide image of {tuple(guide.shape)} do not match: "
                         "the image must be the one the maps were made for, at its size")
    return Guide.of(guide, radius, epsilon, subsample).filter(maps)


def edge_guide(image: Tensor, token_pixels: int, subsample: int | None = None) -> Guide:
    """The guide edge_aware_maps makes of `image` [B, H, W, 3], to filter several map sets of that image."""
    radius = max(1, round(RADIUS_TOKENS * token_pixels))
    # fit on a grid about a quarter of a token fine: the window still spans several cells, at 1/16 the cost
    subsample = subsample or max(1, token_pixels // 4)
    return Guide.of(image, radius, EPSILON, subsample)


def coarse_maps(token_maps: Tensor, image_size: tuple[int, int], token_pixels: int, subsample: int) -> Tensor:
    """Token maps [B, K, h, w] as the guided filter's coarse grid sees them: the pixel maps (maps.token_maps_to_pixels)
    averaged over subsample x subsample cells. Where the image is the token grid exactly and no cell straddles the
    middle of a token, where the bilinear upsampling bends, a cell's average is the upsampling at the cell's centre:
    the coarse grid is then upsampled straight from the tokens (1/subsample^2 of the work, within float rounding of
    the pixel maps' averages), not from maps at full size."""
    half = token_pixels // 2
    height, width = token_maps.shape[-2] * token_pixels, token_maps.shape[-1] * token_pixels
    if (height, width) == tuple(image_size) and 2 * half == token_pixels and half % subsample == 0:
        size = (height // subsample, width // subsample)
        return F.interpolate(token_maps.detach().float(), size=size, mode="bilinear", align_corners=False)
    return shrink(token_maps_to_pixels(token_maps.detach(), image_size, token_pixels), subsample)


def token_range(token_maps: Tensor) -> tuple[Tensor, Tensor]:
    """Each map's (low, high) [B, K, 1, 1] over its tokens: the range its upsampled and refined values keep to."""
    low, high = torch.aminmax(token_maps.detach().flatten(-2).to(torch.float32), dim=-1)
    return low[..., None, None], high[..., None, None]


def fitted_token_maps(token_maps: Tensor, guide: "Guide", image_size: tuple[int, int],
                      token_pixels: int) -> tuple[Tensor, tuple[Tensor, Tensor]]:
    """The filter's coefficients of token maps [B, K, h, w], fitted on the coarse grid straight from the tokens, and
    the tokens' range their refined values keep to."""
    coarse = coarse_maps(token_maps, image_size, token_pixels, guide.subsample)
    return guide.fitted(coarse), token_range(token_maps)


def refined_token_maps(token_maps: Tensor, guide: "Guide", image_size: tuple[int, int], token_pixels: int) -> Tensor:
    """Token maps [B, K, h, w] at the guide image's pixel size, made to follow its edges: edge_aware_maps of their
    pixel maps, fitted on the coarse grid straight from the tokens and kept to the tokens' range."""
    return guide.applied(*fitted_token_maps(token_maps, guide, image_size, token_pixels))


def edge_aware_maps(pixel_maps: Tensor, image: Tensor | Guide, token_pixels: int,
                    subsample: int | None = None) -> Tensor:
    """Concept maps at pixel size [B, K, H, W] made to follow the edges of `image` [B, H, W, 3], the picture they
    were made for (or its edge_guide); values stay in the maps' range (clamped to it), so argmax, thresholds and
    soft masks apply."""
    guide = image if isinstance(image, Guide) else edge_guide(image, token_pixels, subsample)
    low, high = torch.aminmax(pixel_maps.detach().flatten(-2).to(torch.float32), dim=-1)
    return guide.filter(pixel_maps, (low[..., None, None], high[..., None, None])).to(pixel_maps.dtype)
