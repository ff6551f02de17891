"""Which shape and colour a generated demo image shows: contour features, nearest neighbour.

Calibrated on rendered ground truth (single-object scenes), so it needs no training data of its
own; used to gate the demo model's sample quality before its concept maps are measured.
"""

from functools import lru_cache

import cv2
import numpy as np

from .shapes import BACKGROUNDS, COLOURS, SHAPES, make_scene

CALIBRATION_SEEDS = range(20_000_000, 20_000_600)  # apart from training and held-out seeds


def object_mask(image: np.ndarray) -> np.ndarray:
    """Pixels that differ clearly from the background (estimated from the image border)."""
    border = np.concatenate([image[0], image[-1], image[:, 0], image[:, -1]])
    background = np.median(border, axis=0)
    mask = (np.linalg.norm(image - background, axis=-1) > 0.25).astype(np.uint8)
    return cv2.morphologyEx(mask, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))


# A concavity counts when it is this deep, relative to the square root of the blob's area: a star has
# five, a cross four, the convex shapes none, on sharp renders and through the codec's blur alike.
DEEP_CONCAVITY = 0.125


def deep_concavities(contour: np.ndarray) -> int:
    """How many deep notches a contour's outline has (convexity defects deeper than DEEP_CONCAVITY)."""
    defects = cv2.convexityDefects(contour, cv2.convexHull(contour, returnPoints=False))
    if defects is None:
        return 0
    depths = defects.reshape(-1, 4)[:, 3] / 256.0  # OpenCV stores depths in 1/256 pixel
    return int((depths > DEEP_CONCAVITY * np.sqrt(cv2.contourArea(contour))).sum())


def shape_features(mask: np.ndarray) -> np.ndarray | None:
    """Circularity, solidity, extent, polygon corners and deep concavities of the largest blob; None if no blob.

    The concavity count is scaled to weigh most (one notch more or less is 0.5 apart): it tells a star
    from a cross where the others, blurred by the codec, do not.
    """
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    contour = max(contours, key=cv2.contourArea)
    area = cv2.contourArea(contour)
    if area < 200:
        return None
    perimeter = cv2.arcLength(contour, True)
    hull_area = cv2.contourArea(cv2.convexHull(contour))
    rect = cv2.minAreaRect(contour)
    corners = len(cv2.approxPolyDP(contour, 0.04 * perimeter, True))
    return np.array([4 * np.pi * area / perimeter**2, area / hull_area, area / max(rect[1][0] * rect[1][1], 1),
                     min(corners, 12) / 12, min(deep_concavities(contour), 8) / 2])


@lru_cache(maxsize=1)
def _calibration() -> tuple[np.ndarray, list[str]]:
    features, labels = [], []
    for seed in CALIBRATION_SEEDS:
        scene = make_scene(seed)
        for obj in scene.objects:
            f = shape_features(obj.mask.astype(np.uint8))
            if f is not None:
                features.append(f)
                labels.append(obj.shape)
    return np.stack(features), labels


def classify_shape(mask: np.ndarray, k: int = 5) -> str | None:
    """The shape whose rendered examples look most like this mask's blob (k nearest neighbours)."""
    f = shape_features(mask.astype(np.uint8))
    if f is None:
        return None
    features, labels = _calibration()
    nearest = np.argsort(np.linalg.norm(features - f, axis=1))[:k]
    votes = [labels[i] for i in nearest]
    return max(SHAPES, key=votes.count)


def classify_colour(image: np.ndarray, mask: np.ndarray) -> str | None:
    if mask.sum() == 0:
        return None
    mean = image[mask.astype(bool)].mean(axis=0)
    return min(COLOURS, key=lambda name: np.linalg.norm(mean - np.asarray(COLOURS[name])))


def single_object_prompt(shape: str, colour: str, background: str) -> str:
    article = "an" if colour[0] in "aeiou" else "a"
    if background not in BACKGROUNDS:
        raise ValueError(f"unknown background {background!r}")
    return f"{article} {colour} {shape} on a {background} background"
