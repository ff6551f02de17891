"""Prompts for box- and point-prompted segmenters (SAM 3, SAM 2): each object's box and peak points, from a
concept's mask and map, in pixels."""

import json
from dataclasses import dataclass

import cv2
import numpy as np
import torch
from torch import Tensor

from .masks import split_objects

# Colours of the preview: boxes and the points inside the objects green, the other concepts' points red.
OBJECT_COLOUR = (0.25, 0.95, 0.35)
OTHER_COLOUR = (1.0, 0.25, 0.25)


@dataclass(frozen=True)
class ObjectPrompt:
    """One object: its bounding box (x, y, width, height) and its peak points (x, y), in pixels."""

    box: tuple[int, int, int, int]
    points: tuple[tuple[int, int], ...]

    def box_dict(self) -> dict:
        """The box as ComfyUI's BOUNDING_BOX reads it (SAM3 Detect's `bboxes`)."""
        x, y, width, height = self.box
        return {"x": x, "y": y, "width": width, "height": height}


def object_prompts(mask: Tensor, score: Tensor, points_per_object: int, spacing: float) -> list[ObjectPrompt]:
    """The prompts of each connected region of a [H, W] mask, largest first: its box, and up to
    points_per_object peaks of the [H, W] score inside it, spacing pixels apart at least."""
    objects, count = split_objects(mask[None])
    return prompts_of(objects[:count], score, points_per_object, spacing)


def prompts_of(objects: Tensor, score: Tensor, points_per_object: int, spacing: float) -> list[ObjectPrompt]:
    """object_prompts for objects already split ([N, H, W], masks.split_objects)."""
    return [_object_prompt(region >= 0.5, score, points_per_object, spacing) for region in objects]


def _object_prompt(region: Tensor, score: Tensor, points_per_object: int, spacing: float) -> ObjectPrompt:
    rows, columns = torch.nonzero(region, as_tuple=True)
    x0, y0 = int(columns.min()), int(rows.min())
    box = (x0, y0, int(columns.max()) - x0 + 1, int(rows.max()) - y0 + 1)
    return ObjectPrompt(box, peak_points(score, region, points_per_object, spacing))


def peak_points(score: Tensor, region: Tensor, count: int, spacing: float) -> tuple[tuple[int, int], ...]:
    """Up to count (x, y) maxima of score inside the [H, W] bool region, greedily, each at least spacing pixels
    from the others. Points keep away from the region's edge (half its deepest inner distance, at most half the
    spacing), since a segmenter reads a point on an edge as either side of it."""
    solid = region.cpu().numpy().astype(np.uint8)
    depth = cv2.distanceTransform(np.pad(solid, 1), cv2.DIST_L2, 5)[1:-1, 1:-1]
    inner = depth >= min(depth.max() / 2, spacing / 2)
    values = np.where(inner, score.detach().cpu().float().numpy(), -np.inf)
    rows, columns = np.mgrid[:values.shape[0], :values.shape[1]]
    points = []
    for _ in range(count):
        y, x = np.unravel_index(int(np.argmax(values)), values.shape)
        if not np.isfinite(values[y, x]):
            break
        points.append((int(x), int(y)))
        values[(rows - y) ** 2 + (columns - x) ** 2 < spacing ** 2] = -np.inf
    return tuple(points)


def points_json(points: list[tuple[int, int]]) -> str:
    """Points as the JSON that KJNodes' Points Editor writes and SAM3 Detect and the SAM 2 packs read."""
    return json.dumps([{"x": x, "y": y} for x, y in points])


def draw_prompts(image: Tensor, prompts: list[ObjectPrompt], other_points: list[tuple[int, int]],
                 with_points: bool = True) -> Tensor:
    """A [H, W, 3] image with the objects' boxes (and points) drawn in green and the other points in red."""
    canvas = image[..., :3].detach().cpu().float().numpy().copy()  # drawn on, so never the caller's memory
    height, width = canvas.shape[:2]
    thickness = max(1, round(min(height, width) / 256))
    radius = 2 * thickness + 2
    for prompt in prompts:
        x, y, box_width, box_height = prompt.box
        cv2.rectangle(canvas, (x, y), (x + box_width - 1, y + box_height - 1), OBJECT_COLOUR, thickness)
    if with_points:
        for points, colour in [([p for prompt in prompts for p in prompt.points], OBJECT_COLOUR),
                               (other_points, OTHER_COLOUR)]:
            for point in points:
                cv2.circle(canvas, point, radius + thickness, (0.0, 0.0, 0.0), -1, cv2.LINE_AA)
                cv2.circle(canvas, point, radius, colour, -1, cv2.LINE_AA)
    return torch.from_numpy(canvas)
