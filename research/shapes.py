"""Procedural "coloured shapes" scenes: image, caption and exact per-word masks from one seed.

Each scene holds one or two large, upright, non-overlapping shapes of distinct colours and kinds on a
plain, lightly textured background. Masks come from the same geometry as the pixels, so they
are the ground truth a concept saliency map should recover.

Train / held-out split: training draws seeds from TRAIN_SEEDS (0, 1, 2, ...); held-out scenes
use seeds >= HELD_OUT_SEED_OFFSET, which training never reaches, so no held-out scene is ever
seen during training.
"""

from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

import cv2
import numpy as np
import torch
from torch import Tensor

# 16 x 16 image tokens (8-pixel latent cells in 2 x 2 patches). At 192 pixels (12 x 12 tokens) the
# shapes were 3-6 tokens wide, and ConceptAttention's masks, which spill about half a token past an
# outline, lost most on the narrowest (research/log.md, "A finer token grid").
IMAGE_SIZE = 256

# Supersampling factor: geometry is rasterised hard-edged at 4x, then box-averaged down, which
# gives anti-aliased pixels while the masks (coverage >= 0.5) follow exactly the same polygons.
SUPERSAMPLE = 4

SHAPES = ("circle", "square", "triangle", "cross", "star")

COLOURS: dict[str, tuple[float, float, float]] = {
    "red": (0.86, 0.08, 0.08),
    "green": (0.10, 0.70, 0.15),
    "blue": (0.10, 0.25, 0.90),
    "yellow": (0.97, 0.85, 0.10),
    "purple": (0.55, 0.15, 0.75),
    "orange": (1.00, 0.50, 0.00),
}

BACKGROUNDS: dict[str, tuple[float, float, float]] = {
    "gray": (0.50, 0.50, 0.50),
    "white": (0.93, 0.93, 0.93),
    "black": (0.08, 0.08, 0.08),
}

VOCABULARY: tuple[str, ...] = (
    "<pad>",  # index 0, so zero-padding a token batch means "no word"
    "<unk>",
    "a",
    "an",
    "and",
    "on",
    "background",
    *COLOURS,
    *SHAPES,
    *BACKGROUNDS,
)
WORD_TO_ID: dict[str, int] = {word: index for index, word in enumerate(VOCABULARY)}

HELD_OUT_SEED_OFFSET = 10_000_000
TRAIN_SEEDS = range(0, HELD_OUT_SEED_OFFSET)

# Nominal size of a shape in pixels: a circle's diameter. Other shapes' circumscribed circles are
# larger by OUTLINE_REACH, so that all shapes look about as big (an axis-aligned square inside a
# 64-pixel circle would be only 45 pixels wide).
MIN_SHAPE_SIZE = 85  # 64-100 pixels while the scenes were 192 pixels, scaled with them
MAX_SHAPE_SIZE = 133
OUTLINE_REACH = {"circle": 1.0, "square": 1.15, "triangle": 1.15, "cross": 1.0, "star": 1.05}
# Clear pixels kept between two shapes and between a shape and the image edge, so anti-aliased
# edges never share a pixel, every mask stays disjoint and the shapes read as separate objects.
GAP_PIXELS = 5
TWO_OBJECT_PROBABILITY = 0.8  # mostly two, so captions need colour-shape binding
PLACEMENT_TRIES = 60
# Shapes are drawn upright. With free rotation a rotated square reads as a diamond and a star as
# a blob at 16 pixels per token: 134k training images (4.2M parameters) still drew blobs and the
# concept maps did not tell shapes apart (mIoU 0.10, below the all-background floor).
UPRIGHT = 0.0


class SceneObject(NamedTuple):
    shape: str
    colour: str
    mask: np.ndarray  # [H, W] bool


@dataclass
class Scene:
    """One rendered scene. image: [H, W, 3] float32 in [0, 1]; masks: word -> [H, W] bool."""

    seed: int
    image: np.ndarray
    caption: str
    objects: list[SceneObject]
    background: str
    masks: dict[str, np.ndarray]


def caption_words(caption: str) -> list[str]:
    """The words of a caption, in order (captions are lower-case words separated by spaces)."""
    return caption.lower().split()


def word_ids(caption: str) -> list[int]:
    """Vocabulary indices of a caption's words; unknown words map to <unk>."""
    unknown = WORD_TO_ID["<unk>"]
    return [WORD_TO_ID.get(word, unknown) for word in caption_words(caption)]


def article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def held_out_seeds(count: int, skip: int = 0) -> range:
    """`count` held-out seeds (never used for training), after the first `skip` of them."""
    if skip < 0:
        raise ValueError(f"skip {skip}: held-out scenes start at seed {HELD_OUT_SEED_OFFSET}, so skip 0 or more "
                         f"(a negative skip would reach training scenes)")
    return range(HELD_OUT_SEED_OFFSET + skip, HELD_OUT_SEED_OFFSET + skip + count)


def _unit_outline(shape: str) -> np.ndarray:
    """[N, 2] polygon centred on 0 whose farthest vertex is at distance OUTLINE_REACH[shape]."""
    if shape == "circle":
        angles = np.linspace(0.0, 2.0 * np.pi, 96, endpoint=False)
        points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    elif shape == "square":
        points = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])
    elif shape == "triangle":
        angles = -np.pi / 2 + np.arange(3) * 2.0 * np.pi / 3
        points = np.stack([np.cos(angles), np.sin(angles)], axis=1)
    elif shape == "cross":
        arm, half_width = 1.0, 0.34
        points = np.array([
            [-half_width, -arm], [half_width, -arm], [half_width, -half_width], [arm, -half_width],
            [arm, half_width], [half_width, half_width], [half_width, arm], [-half_width, arm],
            [-half_width, half_width], [-arm, half_width], [-arm, -half_width], [-half_width, -half_width],
        ])
    elif shape == "star":
        angles = -np.pi / 2 + np.arange(10) * np.pi / 5
        # Fat inner radius: thin spikes would vanish at the latent's 1/8 resolution.
        radii = np.where(np.arange(10) % 2 == 0, 1.0, 0.5)
        points = np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    else:
        raise ValueError(f"unknown shape {shape!r}; expected one of {SHAPES}")
    return points / np.linalg.norm(points, axis=1).max() * OUTLINE_REACH[shape]


_OUTLINES = {shape: _unit_outline(shape) for shape in SHAPES}


def _outline(shape: str, centre: np.ndarray, size: float, angle: float) -> np.ndarray:
    """[N, 2] polygon (x, y) in pixels: the unit outline rotated, scaled to `size`, moved to `centre`."""
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    return _OUTLINES[shape] @ rotation.T * (size / 2.0) + centre


def _raster(outline: np.ndarray, scale: int, size: tuple[int, int] = (IMAGE_SIZE, IMAGE_SIZE)) -> np.ndarray:
    """[rows*scale, cols*scale] float32 hard-edged (0/1) raster of the polygon; size is (rows, cols)."""
    # Pixel centres sit at +0.5, so the raster's sample for point p is at p * scale - 0.5.
    vertices = np.round(outline * scale - 0.5).astype(np.int32)
    raster = np.zeros((size[0] * scale, size[1] * scale), np.float32)
    cv2.fillPoly(raster, [vertices], 1.0, lineType=cv2.LINE_8)
    return raster


def _coverage(outline: np.ndarray) -> np.ndarray:
    """[H, W] float32 fraction of each pixel the polygon covers (box-filtered 4x raster)."""
    # Only the shape's bounding box is supersampled: a full 4x canvas costs ~10x more.
    low = np.clip(np.floor(outline.min(axis=0)).astype(int) - 1, 0, IMAGE_SIZE)
    high = np.clip(np.ceil(outline.max(axis=0)).astype(int) + 1, 0, IMAGE_SIZE)
    (x0, y0), (x1, y1) = low, high
    fine = _raster(outline - low, SUPERSAMPLE, (y1 - y0, x1 - x0))
    coverage = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.float32)
    coverage[y0:y1, x0:x1] = cv2.resize(fine, (x1 - x0, y1 - y0), interpolation=cv2.INTER_AREA)
    return coverage


def _background(rng: np.random.Generator, colour: tuple[float, float, float]) -> np.ndarray:
    """[H, W, 3] plain colour with a faint linear gradient and faint smooth noise."""
    axis = (np.arange(IMAGE_SIZE, dtype=np.float32) + 0.5) / IMAGE_SIZE - 0.5
    angle = rng.uniform(0.0, 2.0 * np.pi)
    gradient = rng.uniform(0.02, 0.08) * (np.cos(angle) * axis[None, :] + np.sin(angle) * axis[:, None])
    # Low-resolution noise upsampled: texture without high frequencies the codec cannot hold.
    coarse = rng.normal(0.0, 0.015, size=(6, 6)).astype(np.float32)
    noise = cv2.resize(coarse, (IMAGE_SIZE, IMAGE_SIZE), interpolation=cv2.INTER_CUBIC)
    shade = (gradient + noise).astype(np.float32)
    return np.clip(np.asarray(colour, np.float32)[None, None, :] + shade[..., None], 0.0, 1.0)


def _layout(rng: np.random.Generator, shapes: list[str]) -> list[np.ndarray]:
    """Outlines (size, centre, angle) for `shapes` that keep GAP_PIXELS clear of each other.

    The whole layout is resampled on a clash, not just the last shape: a first shape dropped
    in the middle would otherwise leave no room and force the second one to shrink.
    """
    sizes = rng.uniform(MIN_SHAPE_SIZE, MAX_SHAPE_SIZE, size=len(shapes))
    # Trials rasterise at 1x (cheap); growing by one more pixel covers the anti-aliased fringe
    # the final 4x render may add on each side beyond the 1x raster.
    keep_clear = np.ones((2 * GAP_PIXELS + 5, 2 * GAP_PIXELS + 5), np.uint8)
    while True:
        for _ in range(PLACEMENT_TRIES):
            outlines: list[np.ndarray] = []
            occupied = np.zeros((IMAGE_SIZE, IMAGE_SIZE), np.uint8)
            for shape, size in zip(shapes, sizes, strict=True):
                radius = size / 2.0 * OUTLINE_REACH[shape] + GAP_PIXELS
                centre = rng.uniform(radius, IMAGE_SIZE - radius, size=2)
                outline = _outline(shape, centre, size, UPRIGHT)
                footprint = (_raster(outline, 1) > 0).astype(np.uint8)
                if (occupied & footprint).any():
                    break
                outlines.append(outline)
                if len(outlines) < len(shapes):
                    occupied |= cv2.dilate(footprint, keep_clear)
            else:
                return outlines
        # Rare: shrink a little rather than search forever (still deterministic).
        sizes = np.maximum(sizes * 0.95, MIN_SHAPE_SIZE * 0.75)


def is_centred(seed: int, centred_share: float) -> bool:
    """Whether the training scene for `seed` is a centred single object (its own draw, so the
    scene's other random choices stay those of the ordinary scene)."""
    return centred_share > 0 and np.random.default_rng([seed, 1]).random() < centred_share


def is_same_colour(seed: int, same_colour_share: float) -> bool:
    """Whether the training scene for `seed` paints its objects in one colour (its own draw, like
    is_centred's)."""
    return same_colour_share > 0 and np.random.default_rng([seed, 2]).random() < same_colour_share


def make_scene(seed: int, centred: bool = False, same_colour: bool = False) -> Scene:
    """The scene for `seed`: identical image, caption and masks every call for the same seed.

    centred: one object in the middle of the image instead of the usual layout (training only).
    same_colour: both objects in the first one's colour (training only), so that telling them
    apart, in the image and in the caption, takes their shapes.
    """
    rng = np.random.default_rng(seed)
    background = str(rng.choice(list(BACKGROUNDS)))
    count = 2 if rng.random() < TWO_OBJECT_PROBABILITY else 1
    if centred:  # after the count's draw, which fixes the draws after it; runs resume on the same scenes
        count = 1
    shapes = [str(s) for s in rng.choice(SHAPES, size=count, replace=False)]
    colours = [str(c) for c in rng.choice(list(COLOURS), size=count, replace=False)]
    if same_colour:  # after the colours' draw, so the draws after it stay the ordinary scene's
        colours = [colours[0]] * count

    image = _background(rng, BACKGROUNDS[background])
    if centred:
        size = rng.uniform(MIN_SHAPE_SIZE, MAX_SHAPE_SIZE)
        outlines = [_outline(shapes[0], np.full(2, IMAGE_SIZE / 2.0), size, UPRIGHT)]
    else:
        outlines = _layout(rng, shapes)
    objects: list[SceneObject] = []
    for shape, colour, outline in zip(shapes, colours, outlines, strict=True):
        coverage = _coverage(outline)
        # Alpha-blend in place: coverage is the anti-aliasing weight.
        image += coverage[..., None] * (np.asarray(COLOURS[colour], np.float32) - image)
        objects.append(SceneObject(shape, colour, coverage >= 0.5))

    # Object order in the caption is independent of drawing order.
    order = rng.permutation(count)
    phrases = [f"{article(objects[i].colour)} {objects[i].colour} {objects[i].shape}" for i in order]
    caption = f"{' and '.join(phrases)} on a {background} background"

    masks: dict[str, np.ndarray] = {}
    for obj in objects:
        masks[obj.shape] = obj.mask
        masks[obj.colour] = masks[obj.colour] | obj.mask if obj.colour in masks else obj.mask
    covered = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
    for obj in objects:
        covered |= obj.mask
    masks["background"] = ~covered
    return Scene(seed, np.clip(image, 0.0, 1.0, out=image), caption, objects, background, masks)


def make_batch(seeds: Iterable[int], centred_share: float = 0.0, same_colour_share: float = 0.0
               ) -> tuple[Tensor, list[str], list[Scene]]:
    """Scenes for `seeds` as a batch: images [B, 3, H, W] float32 in [0, 1], captions, scenes.

    centred_share: the share of scenes that are a centred single object (see is_centred);
    same_colour_share: the share whose objects share a colour (see is_same_colour).
    """
    scenes = [make_scene(int(seed), is_centred(int(seed), centred_share), is_same_colour(int(seed), same_colour_share))
              for seed in seeds]
    images = torch.empty(len(scenes), 3, IMAGE_SIZE, IMAGE_SIZE)
    for index, scene in enumerate(scenes):
        images[index] = torch.from_numpy(scene.image).permute(2, 0, 1)
    return images, [scene.caption for scene in scenes], scenes
