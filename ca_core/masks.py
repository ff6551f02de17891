"""Masks from concept maps, ready for inpainting and compositing."""

import cv2
import numpy as np
import torch
from torch import Tensor

from .maps import normalise

MASK_METHODS = ("argmax", "mean_threshold", "otsu", "threshold", "soft")

# An argmax over one concept is that concept everywhere, so one concept's raw map (aggregate.softmax_over)
# is cut at half its per-image range instead. Measured on the demo model's held-out scenes
# (bench/single_concept.py, 548 objects): IoU with the object 0.59 for this cut, 0.55 for Otsu's, 0.50
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
        f"method argmax needs two or more concepts to compare, and these maps hold one ({names[0]!r}) made with "
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
) -> Tensor:
    """A [B, H, W] mask in 0..1: the union of the selected concepts' regions.

    pixel_maps: [B, K, H, W]. method: argmax (pixel won by a selected concept among all),
    mean_threshold (the paper: above the map's mean), otsu, threshold (on the map scaled to
    0..1), soft (the scaled map itself). grow: pixels to dilate (negative erodes); blur: the
    feather's Gaussian sigma in pixels; min_region: islands of the binary mask smaller than this many
    pixels are dropped (a stray token or two won by the concept elsewhere in the image).
    """
    if method not in MASK_METHODS:
        raise ValueError(f"unknown mask method {method!r}; expected one of {MASK_METHODS}")
    if not selected:
        raise ValueError("no concept selected for the mask")
    maps = pixel_maps.float()
    if method == "argmax":
        winner = maps.argmax(dim=1)
        mask = torch.isin(winner, torch.tensor(selected, device=winner.device)).float()
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
        mask = regions.amax(dim=1)
    binary = method != "soft"
    return refine_mask(mask, grow=grow, blur=blur, fill_holes=fill_holes and binary, invert=invert,
                       min_region=min_region if binary else 0)


def refine_mask(mask: Tensor, grow: int = 0, blur: float = 0.0, fill_holes: bool = False, invert: bool = False,
                min_region: int = 0) -> Tensor:
    """Drop islands under min_region pixels, fill holes, grow or shrink, feather and invert a [B, H, W]
    mask, in that order."""
    if min_region < 0:
        raise ValueError(f"min_region is {min_region}: give the smallest island to keep in pixels, or 0 to keep all")
    out = []
    for m in mask.cpu().numpy().astype(np.float32):
        if min_region:
            m = _drop_islands(m, min_region)
        if fill_holes:
            m = _fill_holes(m)
        if grow:
            size = 2 * abs(grow) + 1
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
            m = cv2.dilate(m, kernel) if grow > 0 else cv2.erode(m, kernel)
        if blur > 0:
            m = cv2.GaussianBlur(m, (0, 0), sigmaX=blur, borderType=cv2.BORDER_REPLICATE)
        out.append(m)
    refined = torch.from_numpy(np.stack(out)).clamp(0, 1).to(mask.device)
    return 1 - refined if invert else refined


def _otsu(maps: Tensor) -> Tensor:
    flat = (maps.reshape(-1, *maps.shape[-2:]) * 255).round().to(torch.uint8).cpu().numpy()
    binary = [cv2.threshold(m, 0, 1, cv2.THRESH_BINARY + cv2.THRESH_OTSU)[1] for m in flat]
    return torch.from_numpy(np.stack(binary)).float().reshape(maps.shape).to(maps.device)


def _drop_islands(mask: np.ndarray, min_region: int) -> np.ndarray:
    """Zero every 8-connected island of the binary mask smaller than min_region pixels."""
    _, labels, stats, _ = cv2.connectedComponentsWithStats((mask > 0.5).astype(np.uint8), connectivity=8)
    kept = stats[:, cv2.CC_STAT_AREA] >= min_region
    kept[0] = False  # label 0 is the background
    return kept[labels].astype(np.float32)


def _fill_holes(mask: np.ndarray) -> np.ndarray:
    """Set to 1 every background region that does not touch the border."""
    binary = (mask > 0.5).astype(np.uint8)
    padded = np.pad(binary, 1)
    flood = padded.copy()
    cv2.floodFill(flood, None, (0, 0), 1)
    holes = 1 - flood[1:-1, 1:-1]
    return np.maximum(binary, holes).astype(np.float32)
