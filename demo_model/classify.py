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


def shape_features(mask: np.ndarray) -> np.ndarray | None:
    """Circularity, solidity, extent and polygon corners of the largest blob; None if no blob."""
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
                     min(corners, 12) / 12])


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
