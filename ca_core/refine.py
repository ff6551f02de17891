"""Concept maps made as sharp as the image: a guided filter with the image as guide (He, Sun and Tang, "Guided
Image Filtering", 2010; the fast, subsampled form of He and Sun, 2015).

A concept map holds one value per image token (16 px on Flux), so upsampled maps cross object boundaries in
soft ramps. The guided filter fits each map, in every window, as a linear function of the image's colours:
where the image has an edge the map may change across it, where the image is flat the map stays smooth. The
coefficients are computed on a grid `subsample` times coarser than the image and upsampled, as the fast form
does; the output is at full resolution.
"""

import torch
import torch.nn.functional as F
from torch import Tensor

# Window radius in tokens: a window a little wider than a token lets the colours of the pixels inside a
# token tell them apart.
RADIUS_TOKENS = 1.0
# Regularisation on the guide's variance (colours in 0..1): the smaller, the more the map follows weak edges.
EPSILON = 1e-3


def box_sum(x: Tensor, radius: int, dim: int) -> Tensor:
    """Sum over the 2r+1 entries around each entry along `dim` (zeros past the ends), from a running sum: its
    cost does not grow with the radius."""
    size = x.shape[dim]
    padding = [0, 0] * (x.dim() - 1 - dim % x.dim()) + [radius + 1, radius]
    running = F.pad(x, padding).cumsum(dim)
    return running.narrow(dim, 2 * radius + 1, size) - running.narrow(dim, 0, size)


def window_mean(radius: int, size: tuple[int, int], device: torch.device):
    """The mean over the (2r+1)^2 window around each pixel of [N, C, *size], counting only pixels inside; the
    windows' pixel counts are worked out once for every plane the filter averages."""
    ones = torch.ones(1, 1, *size, device=device)
    count = box_sum(box_sum(ones, radius, -1), radius, -2)
    return lambda x: box_sum(box_sum(x, radius, -1), radius, -2) / count


def shrink(x: Tensor, factor: int) -> Tensor:
    """[N, C, H, W] averaged over factor x factor cells (the last cells take what is left at the edges)."""
    if factor <= 1:
        return x
    return F.avg_pool2d(x, factor, stride=factor, ceil_mode=True)


def guided_filter(maps: Tensor, guide: Tensor, radius: int, epsilon: float = EPSILON, subsample: int = 1) -> Tensor:
    """maps [B, K, H, W] filtered with the colour guide [B, H, W, 3] (in 0..1) of the same size.

    radius is in pixels of the full image; the coefficients are fitted on a grid `subsample` times coarser.
    """
    if maps.shape[0] != guide.shape[0] or maps.shape[-2:] != guide.shape[1:3]:
        raise ValueError(f"maps of {tuple(maps.shape)} and a guide image of {tuple(guide.shape)} do not match: "
                         "the image must be the one the maps were made for, at its size")
    full = guide.permute(0, 3, 1, 2).to(torch.float32)[:, :3]  # [B, 3, H, W]
    height, width = full.shape[-2:]
    coarse, p = shrink(full, subsample), shrink(maps.to(torch.float32), subsample)
    box_mean = window_mean(max(1, round(radius / subsample)), coarse.shape[-2:], coarse.device)

    mean_i = box_mean(coarse)  # [B, 3, h, w]
    mean_p = box_mean(p)  # [B, K, h, w]
    # covariance of the guide's colours, a symmetric 3x3 per pixel, regularised
    ii = torch.stack([coarse[:, a] * coarse[:, b] for a in range(3) for b in range(3)], dim=1)
    sigma = box_mean(ii) - torch.stack([mean_i[:, a] * mean_i[:, b] for a in range(3) for b in range(3)], dim=1)
    sigma = sigma.permute(0, 2, 3, 1).unflatten(-1, (3, 3)) + epsilon * torch.eye(3, device=coarse.device)  # [B, h, w, 3, 3]
    # covariance of each map with each colour: [B, K, 3, h, w]
    ip = torch.stack([box_mean(p * coarse[:, c:c + 1]) - mean_p * mean_i[:, c:c + 1] for c in range(3)], dim=2)
    # a = cov(I, p) Sigma^-1 per pixel and map; b = mean_p - a . mean_i
    inverse = torch.linalg.inv(sigma)  # [B, h, w, 3, 3]
    a = torch.einsum("bkchw,bhwcd->bkdhw", ip, inverse)
    b = mean_p - (a * mean_i[:, None]).sum(dim=2)
    # each map's coefficients, [B, K, 4, h, w]: a for the three colours, then b
    coefficients = box_mean(torch.cat([a, b[:, :, None]], dim=2).flatten(1, 2)).unflatten(1, (-1, 4))
    out = torch.empty_like(maps, dtype=torch.float32)
    # q = mean_a . I + mean_b, map by map: a few full-size planes at a time are several times faster to write
    # than all of them at once
    for k in range(coefficients.shape[1]):
        planes = coefficients[:, k]
        if subsample > 1:
            planes = F.interpolate(planes, size=(height, width), mode="bilinear", align_corners=False)
        out[:, k] = planes[:, 3]
        for c in range(3):
            out[:, k].addcmul_(planes[:, c], full[:, c])
    return out


def edge_aware_maps(pixel_maps: Tensor, image: Tensor, token_pixels: int, subsample: int | None = None) -> Tensor:
    """Concept maps at pixel size [B, K, H, W] made to follow the edges of `image` [B, H, W, 3], the picture they
    were made for; values stay in the maps' range (clamped to it), so argmax, thresholds and soft masks apply."""
    radius = max(1, round(RADIUS_TOKENS * token_pixels))
    # fit on a grid about a quarter of a token fine: the window still spans several cells, at 1/16 the cost
    subsample = subsample or max(1, token_pixels // 4)
    refined = guided_filter(pixel_maps, image, radius, EPSILON, subsample)
    low = pixel_maps.amin(dim=(-2, -1), keepdim=True).to(refined.dtype)
    high = pixel_maps.amax(dim=(-2, -1), keepdim=True).to(refined.dtype)
    return refined.clamp_(low, high).to(pixel_maps.dtype)
