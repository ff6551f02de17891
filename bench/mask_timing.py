"""Concept Mask's grow, shrink and blur at 1024x1024: the fast paths beside OpenCV's full-size references; and
its `refine` `image edges` (ca_core.refine) on 2, 4 and 8 concepts' maps with the image as guide.

    <python> bench/mask_timing.py [--size 1024] [--no-reference]

Needs no ComfyUI: it calls ca_core.masks.refine_mask on masks like the node's. The soft subject is
a map over 16-pixel tokens, upsampled bilinearly, brightest on one region about a quarter of the
image wide and scaled to 0..1 (the soft method); the subject is that map cut at 0.5 (the threshold
method); the backgrounds are their complements, so that a shrink by 512 leaves something. The fast
path's time is the best of three runs, the reference's (the ellipse kernel 2r+1 wide, the full
Gaussian with a replicated border) one run. The last column is how far the two agree: the share
of pixels that differ for a binary result, the largest and the mean difference otherwise.
"""

import argparse
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ca_core import masks, refine  # noqa: E402

TOKEN_PIXELS = 16
# (label, which mask, grow, blur): the node allows grow in -512..512 and blur in 0..256.
CASES = (
    ("grow 8", "subject", 8, 0.0),
    ("grow 64", "subject", 64, 0.0),
    ("grow 512", "subject", 512, 0.0),
    ("shrink 512", "background", -512, 0.0),
    ("blur 8", "subject", 0, 8.0),
    ("blur 64", "subject", 0, 64.0),
    ("blur 256", "subject", 0, 256.0),
    ("grow 512 + blur 256", "subject", 512, 256.0),
    ("soft grow 64", "soft subject", 64, 0.0),
    ("soft grow 512", "soft subject", 512, 0.0),
    ("soft shrink 512", "soft background", -512, 0.0),
)


def token_map_masks(size: int) -> dict[str, np.ndarray]:
    tokens = 0.6 + 0.4 * np.random.default_rng(0).random((size // TOKEN_PIXELS, size // TOKEN_PIXELS)).astype(np.float32)
    y, x = np.mgrid[:tokens.shape[0], :tokens.shape[1]] / tokens.shape[0]
    tokens *= np.exp(-((x - 0.35) ** 2 + (y - 0.4) ** 2) / (2 * 0.2 ** 2)).astype(np.float32)
    soft = cv2.resize(tokens, (size, size), interpolation=cv2.INTER_LINEAR)
    soft = (soft - soft.min()) / (soft.max() - soft.min())
    subject = (soft >= 0.5).astype(np.float32)
    return {"subject": subject, "background": 1 - subject, "soft subject": soft, "soft background": 1 - soft}


def fast(mask: np.ndarray, grow: int, blur: float) -> np.ndarray:
    return masks.refine_mask(torch.from_numpy(mask)[None], grow=grow, blur=blur)[0].numpy()


def reference(mask: np.ndarray, grow: int, blur: float) -> np.ndarray:
    if grow:
        mask = masks._grow_reference(mask, grow)
    if blur > 0:
        mask = masks._blur_reference(mask, blur)
    return np.clip(mask, 0, 1)


def timed(function, *args, runs: int = 1) -> tuple[float, np.ndarray]:
    best, result = float("inf"), None
    for _ in range(runs):
        start = time.perf_counter()
        result = function(*args)
        best = min(best, time.perf_counter() - start)
    return best, result


def agreement(fast_result: np.ndarray, reference_result: np.ndarray) -> str:
    if masks._is_binary(reference_result):
        return f"{np.mean(fast_result != reference_result):.4%} of pixels differ"
    difference = np.abs(fast_result - reference_result)
    return f"max |diff| {difference.max():.4f}, mean {difference.mean():.5f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--no-reference", action="store_true",
                        help="time the fast paths only (the references take minutes)")
    options = parser.parse_args()
    inputs = token_map_masks(options.size)
    print(f"Concept Mask refinements at {options.size}x{options.size}, opencv {cv2.__version__}, "
          f"{cv2.getNumThreads()} opencv threads")
    print(f"{'case':<20} {'fast ms':>8} {'reference s':>12} {'ratio':>8}  agreement")
    for label, kind, grow, blur in CASES:
        mask = inputs[kind]
        fast_s, fast_result = timed(fast, mask, grow, blur, runs=3)
        if options.no_reference:
            print(f"{label:<20} {fast_s * 1000:>8.1f}")
            continue
        reference_s, reference_result = timed(reference, mask, grow, blur)
        print(f"{label:<20} {fast_s * 1000:>8.1f} {reference_s:>12.3f} {reference_s / fast_s:>7.0f}x  "
              f"{agreement(fast_result, reference_result)}", flush=True)
    print(f"refine 'image edges' at {options.size}x{options.size} ({TOKEN_PIXELS}-px tokens), "
          f"{torch.get_num_threads()} torch threads")
    image = torch.rand(1, options.size, options.size, 3, generator=torch.Generator().manual_seed(0))
    for concepts in (2, 4, 8):
        maps = torch.rand(1, concepts, options.size, options.size, generator=torch.Generator().manual_seed(1))
        seconds, _ = timed(refine.edge_aware_maps, maps, image, TOKEN_PIXELS, runs=3)
        print(f"{f'{concepts} concepts':<20} {seconds * 1000:>8.1f}")


if __name__ == "__main__":
    main()
