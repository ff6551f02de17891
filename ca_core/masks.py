"""Masks from concept maps, ready for inpainting and compositing."""

import math
import mmap

import cv2
import numpy as np
import torch
from torch import Tensor

from .concepts import shown
from .maps import normalise

MASK_METHODS = ("argmax", "mean_threshold", "otsu", "threshold", "soft")

# Grow and shrink. Up to this radius OpenCV's ellipse kernel is exact and faster than a distance
# transform; its cost grows with the kernel's area (20 s for a radius of 512 at 1024x1024).
KERNEL_GROW_MAX = 8
# Beyond it, a pixel is within `grow` of the mask when its distance is <= grow + GROW_MARGIN. The
# ellipse kernel keeps offsets with |dx| <= round(sqrt(r^2 - dy^2)), a little more than the disc of
# radius r along the rows; margins of 0.35 to 0.4 differ least from it on random masks.
GROW_MARGIN = 0.375
# Beyond it, soft masks are grown on cells a few pixels wide, as wide as it takes for the coarse
# disc to cost no more than a kernel of this radius at full size.
SOFT_GROW_FULL_SIZE_RADIUS = 16

# Feather. Below this sigma OpenCV's Gaussian (whose kernel is 8 sigma + 1 wide) is cheap: about
# 20 ms at 1024x1024, and 2.8 s at sigma 256.
FULL_BLUR_MAX_SIGMA = 16.0
# Beyond it the blur runs on a grid downscaled so that the coarse sigma is about this many cells.
COARSE_BLUR_SIGMA = 8.0

# An argmax over one concept is that concept everywhere, so one concept's raw map (aggregate.softmax_over)
# is cut at half its per-image range instead. Measured on the demo model's held-out scenes
# (research/single_concept.py, 548 objects): IoU with the object 0.59 for this cut, 0.55 for Otsu's, 0.50
# for a softmax against an implicit "background" concept, 0.10 for the argmax (the whole image).
ONE_CONCEPT_CUT = 0.5


def mask_method_for(method: str, threshold: float, names: list[str], one_concept_raw: bool) -> tuple[str, float]:
    """The method and threshold a mask really uses: argmax on maps of one concept becomes the cut above
    where the maps hold its raw scores; with softmax turned off it is refused, naming the fix."""
    if method != "argmax" or len(names) > 1:
        return method, threshold
    if one_concept_raw:
        return "threshold", ONE_CONCEPT_CUT
    raise ValueError(
        f"method argmax needs two or more concepts to compare, and these maps hold one ({shown(names[0])}) made with "
        "softmax off: turn softmax back on (one concept then gets its own automatic cut), choose method otsu "
        "or threshold, or add a second concept such as 'background'"
    )


def concept_mask(
    pixel_maps: Tensor,
    selected: list[int],
    method: str = "argmax",
    threshold: float = 0.5,
    grow: int = 0,
    blur: float = 0.0,
    fill_holes: bool = False,
    invert: bool = False,
    min_region: int = 0,
    present: Tensor | None = None,
) -> Tensor:
    """A [B, H, W] mask in 0..1: the union of the selected concepts' regions.

    pixel_maps: [B, K, H, W]. method: argmax (pixel won by a selected concept among all),
    mean_threshold (the paper: above the map's mean), otsu, threshold (on the map scaled to
    0..1), soft (the scaled map itself). grow: pixels to dilate (negative erodes); blur: the
    feather's Gaussian sigma in pixels; min_region: islands of the binary mask smaller than this many
    pixels are dropped (a stray token or two won by the concept elsewhere in the image). present: [B, K, H, W]
    bool, where each concept is present at all (concept_presence); a binary method's region of a concept is
    kept only there.
    """
    if method not in MASK_METHODS:
        raise ValueError(f"unknown mask method {method!r}; expected one of {MASK_METHODS}")
    if not selected:
        raise ValueError("no concept selected for the mask")
    maps = pixel_maps.detach().float()  # a mask is a cut, not a function to differentiate; written in place below
    if method == "argmax":
        regions = winning(maps, selected)
        if present is not None:
            regions &= present[:, selected]
        mask = regions.any(dim=1)
    else:
        chosen = maps[:, selected]
        if method == "mean_threshold":
            regions = (chosen > chosen.mean(dim=(-2, -1), keepdim=True)).float()
        elif method == "otsu":
            regions = _otsu(normalise(chosen))
        elif method == "threshold":
            regions = (normalise(chosen) >= threshold).float()
        else:
            regions = normalise(chosen)
        if present is not None and is_binary_method(method):
            regions = regions * present[:, selected]
        mask = regions.amax(dim=1)
    binary = is_binary_method(method)
    if binary:
        mask = mask > 0.5
    return refine_mask(mask, grow=grow, blur=blur, fill_holes=fill_holes and binary, invert=invert,
                       min_region=min_region if binary else 0)


def winning(maps: Tensor, selected: list[int]) -> Tensor:
    """[B, len(selected), H, W] bool: where each selected concept wins the argmax over the concepts of [B, K, H, W]
    maps (the first of equal maxima wins, as torch.argmax), found plane by plane: an argmax across the planes of
    large maps is many times slower."""
    best, winner = maps[:, 0].clone(), torch.zeros(maps.shape[0], *maps.shape[2:], dtype=torch.uint8,
                                                  device=maps.device)
    better = torch.empty_like(winner, dtype=torch.bool)  # one buffer for every plane: fresh memory is slow
    for concept in range(1, maps.shape[1]):
        torch.gt(maps[:, concept], best, out=better)
        winner.masked_fill_(better, concept)
        torch.maximum(best, maps[:, concept], out=best)
    return torch.stack([winner == concept for concept in selected], dim=1)


def split_objects(mask: Tensor) -> tuple[Tensor, int]:
    """Each connected region of a [B, H, W] mask on its own: ([N, H, W] masks, N), image by image, each image's
    regions largest first. A region is a connected part (8-neighbourhood) of the mask at or above 0.5; a
    feathered mask's softer pixels go to the region nearest them, so each object keeps its own feather. With no
    region anywhere, one empty mask and 0, so that the nodes downstream still get a mask.

    The regions are counted first, so that the [N, H, W] output is the one full-size copy made; each object's
    pixels are written once, where the mask is not zero."""
    masks = mask.detach().cpu().float().numpy()
    solids = [(m >= 0.5).astype(np.uint8) for m in masks]
    # labels without cv2's stats (several times slower at 4096 x 4096); areas come from the shown pixels' labels.
    # One image's labels are kept for the split below; a batch's are made again there, one image's at a time.
    labelled = [cv2.connectedComponents(solid, connectivity=8) for solid in solids]
    counts = [count - 1 for count, _ in labelled]
    kept = [labels for _, labels in labelled] if len(solids) == 1 else [None] * len(solids)
    del labelled
    if not sum(counts):
        return torch.zeros(1, *mask.shape[-2:]), 0
    # zeros from the system, untouched: only the pages an object's pixels lie on are ever written here, where
    # torch.zeros would first fill every page (N masks at 4096 x 4096 are 64 MiB each)
    flat = untouched_zeros((sum(counts), mask.shape[-2] * mask.shape[-1]))
    objects = torch.from_numpy(flat).unflatten(1, mask.shape[-2:])
    first = 0
    for m, solid, count, labels in zip(masks, solids, counts, kept, strict=True):
        if not count:
            continue
        if labels is None:
            labels = cv2.connectedComponents(solid, connectivity=8)[1]
        visible = (m > 0).astype(np.uint8)
        # (x, y) of each pixel shown: many times faster than np.flatnonzero of a float mask
        points = cv2.findNonZero(visible).reshape(-1, 2).astype(np.int64)
        shown = points[:, 1] * m.shape[1] + points[:, 0]
        if count == 1:
            nearest = np.ones(len(shown), np.int64)  # one region: the whole feather is its
        else:
            nearest = _nearest_region(solid, labels, visible).reshape(-1)[shown]
        areas = np.bincount(labels.reshape(-1)[shown], minlength=count + 1)  # every solid pixel is shown
        order = 1 + np.argsort(-areas[1:], kind="stable")
        rank = np.empty(count + 1, np.int64)
        rank[order] = np.arange(first, first + count)
        flat[rank[nearest], shown] = m.reshape(-1)[shown]
        first += count
    return objects, len(objects)


def untouched_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """A float32 array of zeros that the system maps page by page as it is first written. numpy's own large zeros
    ask for huge pages, so that the first write near an object zeroes 2 MiB, and may wait for the kernel to
    compact memory for it, where the object needs a few KiB; a private anonymous map is given small pages. Where
    there is no such map (Windows), numpy's zeros."""
    size = int(np.prod(shape)) * 4
    if not size or not hasattr(mmap, "MAP_PRIVATE"):
        return np.zeros(shape, np.float32)
    pages = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(pages, np.float32).reshape(shape)


def _nearest_region(solid: np.ndarray, labels: np.ndarray, shown: np.ndarray) -> np.ndarray:
    """The label of the region nearest each pixel of the [H, W] mask (shown: uint8, 0 where nothing is shown): the
    distance transform's nearest zero pixel of 1 - solid, within the box around the shown pixels alone (a feather's
    pixels lie around their regions; outside the box nothing is asked for)."""
    left, top, width, height = cv2.boundingRect(shown)
    box = (slice(top, top + height), slice(left, left + width))
    solid_box, labels_box = solid[box], labels[box]
    _, nearest_zero = cv2.distanceTransformWithLabels(1 - solid_box, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
    region_of_zero = np.zeros(int(nearest_zero.max()) + 1, np.int32)
    region_of_zero[nearest_zero[solid_box == 1]] = labels_box[solid_box == 1]
    nearest = np.zeros(solid.shape, np.int32)
    nearest[box] = region_of_zero[nearest_zero]
    return nearest


def is_binary_method(method: str) -> bool:
    """Whether a mask method gives a binary mask (every one but soft): holes, islands and presence apply to it."""
    return method != "soft"


def concept_presence(raw_pixel_maps: Tensor, span: tuple[Tensor, Tensor] | None = None) -> Tensor:
    """Where each concept is present at all, [B, K, H, W] bool: its raw map at or above ONE_CONCEPT_CUT of its
    per-image range, the cut one concept's mask uses. A softmax over concepts gives every pixel to some named
    concept, so without a "background" concept the background goes to whichever concept wins there.

    span: the (low, high) [B, K, 1, 1] the cut is measured in, where the maps are a refinement of the raw maps
    (refine.refined_token_maps): the raw maps' range as made (refine.token_range), so that a refinement moves the
    edges, not the cut."""
    if span is None:
        low, high = torch.aminmax(raw_pixel_maps.flatten(-2).float(), dim=-1)
        span = low[..., None, None], high[..., None, None]
    low, high = span
    # normalise's arithmetic, in place, so that the cut falls on the same pixels
    return raw_pixel_maps.float().sub(low).div_((high - low).clamp_min(1e-12)) >= ONE_CONCEPT_CUT


def refine_mask(mask: Tensor, grow: int = 0, blur: float = 0.0, fill_holes: bool = False, invert: bool = False,
                min_region: int = 0) -> Tensor:
    """Drop islands under min_region pixels, fill holes, grow or shrink, feather and invert a [B, H, W]
    mask, in that order. A bool mask stays one byte a pixel until the feather.

    Grow and blur take about the same time at any radius: up to 8 pixels grow is OpenCV's ellipse
    kernel, beyond it a distance transform (binary masks) or a max filter on small cells (soft masks);
    blurs from sigma 16 run on a downscaled grid (see _grow and _blur for how close each comes)."""
    if min_region < 0:
        raise ValueError(f"min_region is {min_region}: give the smallest island to keep in pixels, or 0 to keep all")
    out = []
    for m in mask.cpu().numpy().view(np.uint8) if mask.dtype == torch.bool else mask.cpu().float().numpy():
        if min_region:
            m = _drop_islands(m, min_region)
        if fill_holes:
            m = _fill_holes(m)
        if grow:
            m = _grow(m, grow)
        if blur > 0:
            m = _blur(m.astype(np.float32), blur)
        out.append(m)
    # one image's mask is not copied into a batch; the clamp and the inversion write in place
    refined = torch.from_numpy(out[0][None] if len(out) == 1 else np.stack(out))
    refined = refined.float() if refined.dtype != torch.float32 else refined
    if not refined.is_contiguous() or refined.data_ptr() == mask.data_ptr():
        refined = refined.clone()
    refined.clamp_(0, 1)
    return (refined.neg_().add_(1) if invert else refined).to(mask.device)


def _otsu(maps: Tensor) -> Tensor:
    flat = (maps.reshape(-1, *maps.shape[-2:]) * 255).round().to(torch.uint8).cpu().numpy()
    binary = [cv2.threshold(m, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1] for m in flat]
    return torch.from_numpy(np.stack(binary)).float().reshape(maps.shape).to(maps.device)


def _drop_islands(mask: np.ndarray, min_region: int) -> np.ndarray:
    """Zero every 8-connected island of the binary mask smaller than min_region pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0.5).astype(np.uint8), connectivity=8)
    kept = stats[:, cv2.CC_STAT_AREA] >= min_region
    kept[0] = False  # label 0 is the background
    return kept[labels].astype(mask.dtype)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set to 1 every background region that does not touch the border."""
    binary = (mask > 0.5).astype(np.uint8)
    padded = np.pad(binary, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = 1 - flood[1:-1, 1:-1]
    return np.maximum(binary, holes).astype(mask.dtype)


def _grow(mask: np.ndarray, grow: int) -> np.ndarray:
    """Dilate (grow > 0) or erode (grow < 0) one [H, W] mask by a disc of radius |grow|, with OpenCV's
    morphology border: outside the image is background to a dilation and foreground to an erosion,
    so the border itself neither grows nor eats the mask.

    Up to KERNEL_GROW_MAX this is the ellipse kernel itself. Beyond it a binary result lies between the
    kernel's results for |grow| - 1 and |grow| + 1, and on random masks differs from the kernel's own
    in 0.2 % of the pixels that the kernel changes; a soft result lies between the disc dilations
    (erosions) a cell diagonal narrower and wider (_grow_soft). Both take 10 to 60 ms at 1024x1024."""
    if abs(grow) <= KERNEL_GROW_MAX:
        return _grow_reference(mask, grow)
    if _is_binary(mask):
        return _grow_binary(mask, grow)
    return _grow_soft(mask, grow)


def _grow_reference(mask: np.ndarray, grow: int) -> np.ndarray:
    """The ellipse kernel 2|grow|+1 wide: exact and cheap for small radii, O(grow^2) per pixel."""
    size = 2 * abs(grow) + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    return cv2.dilate(mask, kernel) if grow > 0 else cv2.erode(mask, kernel)


def _is_binary(mask: np.ndarray) -> bool:
    return bool(np.all((mask == 0) | (mask == 1)))


def _grow_binary(mask: np.ndarray, grow: int) -> np.ndarray:
    """The binary grow by an exact Euclidean distance transform, in constant time for any radius.

    Grow r keeps every pixel within r + GROW_MARGIN of the mask; shrink r keeps every mask pixel
    farther than that from the background. OpenCV's transform never counts outside the image as
    background, which is the erosion's border."""
    reach = abs(grow) + GROW_MARGIN
    if grow > 0:
        to_mask = cv2.distanceTransform((mask < 0.5).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
        return (to_mask <= reach).astype(mask.dtype)
    to_background = cv2.distanceTransform((mask >= 0.5).astype(np.uint8), cv2.DIST_L2, cv2.DIST_MASK_PRECISE)
    return (to_background > reach).astype(mask.dtype)


def _soft_grow_cell(radius: int) -> int:
    """The side of the cells a soft mask is grown on: the coarse kernel's cost, (radius / cell)^2 per
    cell of cell^2 pixels, stays at that of a full-size SOFT_GROW_FULL_SIZE_RADIUS kernel."""
    return max(1, math.ceil(math.sqrt(radius / SOFT_GROW_FULL_SIZE_RADIUS)))


def _grow_soft(mask: np.ndarray, grow: int) -> np.ndarray:
    """The grayscale grow (a max filter over a disc; shrink: a min filter) on cells of c x c pixels.

    Each cell takes the max (min) of its pixels, the cells are dilated (eroded) by the disc of radius
    (|grow| + GROW_MARGIN) / c, and every pixel takes its cell's value. The result lies between the
    exact disc dilations (erosions) of radius |grow| + GROW_MARGIN -/+ (c - 1) * sqrt(2): a pixel
    and any pixel of a cell lie within (c - 1) / sqrt(2) of their cells' centres."""
    radius = abs(grow)
    cell = _soft_grow_cell(radius)
    h, w = mask.shape
    # Each cell's max (min): a cell x cell window anchored at its top-left pixel, taken at every
    # cell-th pixel; beyond the image the window sees OpenCV's neutral border.
    window = np.ones((cell, cell), dtype=np.uint8)
    morph = cv2.dilate if grow > 0 else cv2.erode
    coarse = np.ascontiguousarray(morph(mask, window, anchor=(0, 0))[::cell, ::cell])
    reach = (radius + GROW_MARGIN) / cell
    offsets = np.arange(-int(reach), int(reach) + 1)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= reach * reach).astype(np.uint8)
    coarse = morph(coarse, disc)
    return np.repeat(np.repeat(coarse, cell, axis=0), cell, axis=1)[:h, :w]


def _blur(mask: np.ndarray, sigma: float) -> np.ndarray:
    """OpenCV's Gaussian blur with a replicated border, through a downscaled grid for large sigmas:
    within 0.01 of the full blur (tests/core/test_masks.py), in constant time."""
    if sigma < FULL_BLUR_MAX_SIGMA:
        return _blur_reference(mask, sigma)
    return _blur_downscaled(mask, sigma)


def _blur_reference(mask: np.ndarray, sigma: float) -> np.ndarray:
    return cv2.GaussianBlur(mask, (0, 0), sigmaX=sigma, borderType=cv2.BORDER_REPLICATE)


def _blur_downscaled(mask: np.ndarray, sigma: float) -> np.ndarray:
    """Average f x f blocks (f = sigma // COARSE_BLUR_SIGMA), blur the blocks with sigma / f and
    interpolate back linearly. The block average's own spread, (f^2 - 1) / 12, is under 0.1 % of
    sigma^2 and is left in.

    One block of replicated pixels each side makes the coarse grid's replicated border the very
    block averages of the replicated image, and gives the interpolation a block beyond the image."""
    factor = int(sigma // COARSE_BLUR_SIGMA)
    h, w = mask.shape
    rows, cols = -(-h // factor), -(-w // factor)
    padded = cv2.copyMakeBorder(mask, factor, factor + rows * factor - h, factor, factor + cols * factor - w,
                                cv2.BORDER_REPLICATE)
    coarse = cv2.resize(padded, (cols + 2, rows + 2), interpolation=cv2.INTER_AREA)
    coarse = cv2.GaussianBlur(coarse, (0, 0), sigmaX=sigma / factor, borderType=cv2.BORDER_REPLICATE)
    fine = cv2.resize(coarse, ((cols + 2) * factor, (rows + 2) * factor), interpolation=cv2.INTER_LINEAR)
    return np.ascontiguousarray(fine[factor:factor + h, factor:factor + w])


def smooth_over_time(maps: Tensor, frames: int, sigma: float) -> Tensor:
    """Gaussian smoothing of [B*F, K, H, W] maps along each clip's F frames (sigma in frames), so that a mask
    does not flicker where two concepts nearly tie; the clip's ends are not darkened (the weights renormalise
    over the frames that exist). sigma 0 returns the maps unchanged."""
    if sigma <= 0 or frames == 1:
        return maps
    radius = max(1, math.ceil(3 * sigma))
    offsets = torch.arange(-radius, radius + 1, dtype=torch.float32)
    kernel = torch.exp(-0.5 * (offsets / sigma) ** 2)
    clips = maps.float().reshape(-1, frames, *maps.shape[1:])
    index = torch.arange(frames)[:, None] + offsets.long()[None, :]  # [F, taps]: the frames each frame averages
    inside = (index >= 0) & (index < frames)
    weights = torch.where(inside, kernel[None, :], torch.zeros(()))
    weights = weights / weights.sum(dim=1, keepdim=True)
    mixing = torch.zeros(frames, frames).scatter_add_(1, index.clamp(0, frames - 1), weights)  # [F out, F in]
    smoothed = torch.einsum("oi,bikhw->bokhw", mixing.to(clips.device), clips)
    return smoothed.reshape(maps.shape)
