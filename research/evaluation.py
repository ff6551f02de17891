"""How well the demo model's concept maps segment held-out scenes, and how well it draws.

Host-agnostic: the caller passes functions that run the product's own nodes (Segment Image,
Concept Mask, sampling), so the same measurement serves the semantic test and the benchmark.
"""

import itertools
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from demo_model.codec import PATCH_SIZE as CODEC_PATCH
from demo_model.config import DemoConfig

from .classify import classify_colour, classify_shape, object_mask, single_object_prompt
from .shapes import COLOURS, SHAPES, article, held_out_seeds, make_scene

BACKGROUND = "background"

# (image [1, H, W, 3], concepts [a, b, background], caption) -> {reading: masks}, where a reading's
# masks are either [1, H, W] class indices (one concept per pixel: an argmax) or [1, K, H, W] bool, one
# mask per concept (e.g. thresholded: they may overlap or leave pixels out)
SegmentFn = Callable[[torch.Tensor, list[str], str], dict[str, torch.Tensor]]
# (prompt, seed) -> image [H, W, 3] numpy in 0..1
GenerateFn = Callable[[str, int], np.ndarray]


FATES = ("own word", "other object", "background")


@dataclass
class ObjectPixelFates:
    """Which concept wins each object's pixels: the object's own word, the other object's word, or
    background. It splits a low mIoU into binding failures (other object) and objectness failures
    (background), which call for different remedies; one- and two-object scenes are kept apart
    because only the second can fail on binding."""

    counts: dict[str, np.ndarray] = field(default_factory=lambda: defaultdict(lambda: np.zeros(len(FATES))))

    def add(self, winner: np.ndarray, object_masks: list[np.ndarray]) -> None:
        """winner: [H, W] index into [objects..., background]; object_masks: one [H, W] bool per object."""
        scenes = f"{len(object_masks)} object" + ("s" if len(object_masks) > 1 else "")
        background = len(object_masks)
        for index, mask in enumerate(object_masks):
            picked = winner[mask]
            own, lost = int((picked == index).sum()), int((picked == background).sum())
            self.counts[scenes] += (own, picked.size - own - lost, lost)

    def shares(self) -> dict[str, dict[str, float]]:
        return {scenes: dict(zip(FATES, (count / count.sum()).tolist(), strict=True))
                for scenes, count in sorted(self.counts.items()) if count.sum()}


REGIONS = ("own object", "other object", "background")

PIXELS_PER_TOKEN = CODEC_PATCH * DemoConfig.patch_size  # each image token: 2x2 latent cells of 8x8 pixels


def whole_tokens_wide(mask: np.ndarray) -> int:
    """An object's width in whole image tokens: the diameter of the circle of its area, so that a star
    and a square of one area are alike. A token-grid map blurs an outline over about a token, so the
    narrower the object, the more of it that blur takes."""
    return int(2.0 * np.sqrt(mask.sum() / np.pi) / PIXELS_PER_TOKEN)


def width_band(tokens: int) -> str:
    """The one-token band of a whole_tokens_wide width, as reported ("5-6 tokens")."""
    return f"{tokens}-{tokens + 1} tokens"


def token_masks(mask: np.ndarray, grid: tuple[int, int]) -> np.ndarray:
    """[rows * cols] bool: the image tokens of a [H, W] pixel mask (a token is in when half its pixels are)."""
    rows, cols = grid
    height, width = mask.shape
    if height % rows or width % cols:
        raise ValueError(f"a {height}x{width} mask does not divide into a {rows}x{cols} token grid")
    coverage = mask.reshape(rows, height // rows, cols, width // cols).mean(axis=(1, 3))
    return (coverage >= 0.5).reshape(-1)


@dataclass
class ConceptAttentionShares:
    """Where each object's concept looks in the image, per double block, in two-object scenes: the
    share of its attention over the image tokens on its own object, on the other object and on the
    background, next to those regions' share of the tokens (what attention blind to the word would
    give). A concept's attention output is what ConceptAttention compares with the image's, so a
    concept that looks at both objects alike cannot tell them apart in the maps."""

    attention: dict[int, np.ndarray] = field(default_factory=lambda: defaultdict(lambda: np.zeros(len(REGIONS))))
    area: dict[int, np.ndarray] = field(default_factory=lambda: defaultdict(lambda: np.zeros(len(REGIONS))))

    def add(self, block: int, image_attention: np.ndarray, object_tokens: list[np.ndarray]) -> None:
        """image_attention: [2, N] the two objects' concept attention over the N image tokens (any
        scale; each row is normalised); object_tokens: each object's [N] bool token mask."""
        if len(object_tokens) != 2 or image_attention.shape[0] != 2:
            raise ValueError("shares of own and other object need exactly two objects")
        background = ~(object_tokens[0] | object_tokens[1])
        for index, row in enumerate(image_attention):
            regions = (object_tokens[index], object_tokens[1 - index], background)
            weights = row / row.sum()
            self.attention[block] += [weights[region].sum() for region in regions]
            self.area[block] += [region.mean() for region in regions]

    def shares(self) -> dict[int, dict[str, dict[str, float]]]:
        """{block: {"attention" | "area": {region: mean share}}}."""
        return {block: {kind: dict(zip(REGIONS, (sums[block] / sums[block].sum()).tolist(), strict=True))
                        for kind, sums in (("attention", self.attention), ("area", self.area))}
                for block in sorted(self.attention)}


@dataclass
class IoUTable:
    """Intersections and unions summed over images, per class: the usual dataset mIoU; and where
    the object pixels went."""

    intersection: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    union: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    object_pixels: ObjectPixelFates = field(default_factory=ObjectPixelFates)
    # [intersection, union] of the objects' masks (not the background's), per whole_tokens_wide
    by_width: dict[int, np.ndarray] = field(default_factory=lambda: defaultdict(lambda: np.zeros(2)))
    # {scene: {class: [intersection, union]}}, for the margin's interval over scenes (margin_interval)
    by_scene: dict[int, dict[str, np.ndarray]] = field(default_factory=lambda: defaultdict(dict))

    def add(self, name: str, predicted: np.ndarray, truth: np.ndarray, scene: int | None = None) -> None:
        """scene: the scene's seed, to keep its overlaps apart as well (one entry per class and scene)."""
        overlap = float(np.logical_and(predicted, truth).sum()), float(np.logical_or(predicted, truth).sum())
        self.intersection[name] += overlap[0]
        self.union[name] += overlap[1]
        if name != BACKGROUND:
            self.by_width[whole_tokens_wide(truth)] += overlap
        if scene is not None:
            if name in self.by_scene[scene]:
                raise ValueError(f"scene {scene} already has an overlap for {name!r}")
            self.by_scene[scene][name] = np.array(overlap)

    def per_width(self) -> dict[str, float]:
        """The objects' IoU per width band (width_band), narrowest first."""
        return {width_band(tokens): float(sums[0] / sums[1]) for tokens, sums in sorted(self.by_width.items())}

    def per_class(self) -> dict[str, float]:
        return {name: self.intersection[name] / self.union[name] for name in sorted(self.union) if self.union[name]}

    def mean(self) -> float:
        values = list(self.per_class().values())
        return float(np.mean(values)) if values else 0.0


def margin_interval(better: IoUTable, baseline: IoUTable, rounds: int = 2000, confidence: float = 0.95,
                    seed: int = 0) -> tuple[float, float]:
    """How far better.mean() - baseline.mean() could move with other scenes like these: a paired
    bootstrap over scenes (both readings resampled with the same scenes, since a hard scene is hard
    for both), each resample's mIoU summed over its scenes before dividing, as mean() does. Returns
    the central `confidence` interval of the margin."""
    if isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1:
        raise ValueError(f"rounds={rounds!r}: the bootstrap needs a whole number of resamples, at least 1 (2000 is usual)")
    if not 0 < confidence < 1:
        raise ValueError(f"confidence={confidence!r}: give the interval's coverage as a fraction between 0 and 1, "
                         "e.g. 0.95")
    scenes = sorted(better.by_scene)
    if not scenes or scenes != sorted(baseline.by_scene):
        raise ValueError("the margin's interval needs both tables filled scene by scene (add(..., scene=seed)) "
                         f"on the same scenes; got {len(better.by_scene)} and {len(baseline.by_scene)} scenes")
    classes = sorted({name for table in (better, baseline) for overlaps in table.by_scene.values() for name in overlaps})

    def overlaps(table: IoUTable) -> np.ndarray:  # [scenes, classes, intersection | union]
        return np.array([[table.by_scene[scene].get(name, np.zeros(2)) for name in classes] for scene in scenes])

    draws = np.random.default_rng(seed).multinomial(len(scenes), np.full(len(scenes), 1 / len(scenes)), size=rounds)

    def resampled_miou(table: IoUTable) -> np.ndarray:
        sums = np.einsum("rs,sco->rco", draws, overlaps(table))
        with np.errstate(invalid="ignore", divide="ignore"):
            iou = np.where(sums[..., 1] > 0, sums[..., 0] / sums[..., 1], np.nan)
        return np.nanmean(iou, axis=1)

    margins = resampled_miou(better) - resampled_miou(baseline)
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(margins, [tail, 100 - tail])
    return float(low), float(high)


def _check_words(words: str) -> None:
    if words not in ("shape", "colour"):
        raise ValueError(f"words must be 'shape' or 'colour', not {words!r}")


def segmentation_caption(target_concepts: list[str]) -> str:
    """The caption the paper's segmentation experiments give the text stream: the present classes,
    each with its article ("a dog,a cat"), here joined the way the demo's captions join objects."""
    return " and ".join(f"{article(concept)} {concept}" for concept in target_concepts)


def evaluate_segmentation(segment: SegmentFn, images: int = 200, words: str = "shape",
                          skip: int = 0) -> dict[str, IoUTable]:
    """Masks for [present shapes + background] on held-out scenes; an IoU table per reading.

    skip: start past the first held-out scenes (the semantic test's are the first 200), e.g. to compare
    training checkpoints on scenes the semantic test does not use.

    Where the object pixels went is recorded for the argmax readings only: it needs one concept per pixel.

    words="colour" names the objects by their colour words instead: a diagnostic of the method on
    words the model binds more easily (the semantic test is on shapes).
    """
    _check_words(words)
    tables: dict[str, IoUTable] = defaultdict(IoUTable)
    for seed in held_out_seeds(images, skip):
        scene = make_scene(seed)
        objects = [getattr(obj, words) for obj in scene.objects]
        concepts = objects + [BACKGROUND]
        image = torch.from_numpy(scene.image)[None]
        for reading, masks in segment(image, concepts, segmentation_caption(objects)).items():
            masks = masks[0].cpu().numpy()
            if masks.ndim == 2:
                tables[reading].object_pixels.add(masks, [scene.masks[name] for name in objects])
                masks = masks[None] == np.arange(len(concepts))[:, None, None]
            elif masks.shape[0] != len(concepts):
                raise ValueError(f"reading {reading!r} gave {masks.shape[0]} masks for {len(concepts)} concepts")
            for name, mask in zip(concepts, masks, strict=True):
                tables[reading].add(name, mask, scene.masks[name], scene=seed)
    return dict(tables)


def all_background_baseline(images: int = 200, words: str = "shape", skip: int = 0) -> float:
    """mIoU of predicting 'background' everywhere: the floor any real method must clear."""
    _check_words(words)
    table = IoUTable()
    for seed in held_out_seeds(images, skip):
        scene = make_scene(seed)
        everything = np.ones_like(scene.masks[BACKGROUND])
        for obj in scene.objects:
            name = getattr(obj, words)
            table.add(name, ~everything, scene.masks[name])
        table.add(BACKGROUND, everything, scene.masks[BACKGROUND])
    return table.mean()


def evaluate_generation(generate: GenerateFn, seeds_per_shape: int = 10) -> dict[str, float]:
    """Share of single-object prompts whose image shows that shape, and that shape in that colour."""
    shape_hits, both_hits, total = 0, 0, 0
    colours = list(COLOURS)
    for index, shape in enumerate(SHAPES):
        for k in range(seeds_per_shape):
            colour = colours[(index + k) % len(colours)]
            image = generate(single_object_prompt(shape, colour, "gray"), 1000 * index + k)
            mask = object_mask(image)
            shape_ok = classify_shape(mask) == shape
            shape_hits += shape_ok
            both_hits += shape_ok and classify_colour(image, mask) == colour
            total += 1
    return {"shape_accuracy": shape_hits / total, "shape_and_colour_accuracy": both_hits / total, "samples": total}


# A drawn object: (colour, shape) as the classifiers read them.
Drawn = tuple[str | None, str | None]
BINDING_OUTCOMES = ("bound", "swapped", "other")
BINDING_SEED = 5_000  # apart from evaluate_generation's seeds (1000 * shape + k)
SMALLEST_OBJECT_PIXELS = 200  # the shape classifier's own floor: smaller blobs are specks


def two_object_prompt(first: Drawn, second: Drawn, background: str = "gray") -> str:
    """A caption as the training scenes word it: "a red circle and a blue square on a gray background"."""
    phrases = [f"{article(colour)} {colour} {shape}" for colour, shape in (first, second)]
    return f"{' and '.join(phrases)} on {article(background)} {background} background"


def drawn_objects(image: np.ndarray) -> list[Drawn]:
    """The colour and shape of each separate object in an image [H, W, 3] (0..1), largest first."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(object_mask(image), connectivity=8)
    blobs = sorted((i for i in range(1, count) if stats[i, cv2.CC_STAT_AREA] >= SMALLEST_OBJECT_PIXELS),
                   key=lambda i: -stats[i, cv2.CC_STAT_AREA])
    return [(classify_colour(image, labels == i), classify_shape(labels == i)) for i in blobs]


def judge_binding(image: np.ndarray, first: Drawn, second: Drawn) -> str:
    """'bound' when the image shows exactly the two named objects, each shape in its own colour;
    'swapped' when it shows the two shapes in each other's colours; 'other' for anything else
    (a shape missing or misdrawn, a third object, a colour nobody named)."""
    drawn = sorted(drawn_objects(image), key=str)
    if drawn == sorted([first, second], key=str):
        return "bound"
    if drawn == sorted([(first[0], second[1]), (second[0], first[1])], key=str):
        return "swapped"
    return "other"


def binding_pairs(count: int) -> list[tuple[Drawn, Drawn]]:
    """`count` two-object requests: every ordered pair of distinct shapes in turn, two distinct colours each."""
    shape_pairs = list(itertools.permutations(SHAPES, 2))
    colours = list(COLOURS)
    pairs = []
    for i in range(count):
        first_shape, second_shape = shape_pairs[i % len(shape_pairs)]
        # the second colour steps 1..5 places on from the first, so the two always differ
        first_colour, second_colour = colours[i % len(colours)], colours[(i + 1 + i // len(colours) % 5) % len(colours)]
        pairs.append(((first_colour, first_shape), (second_colour, second_shape)))
    return pairs


def evaluate_binding(generate: GenerateFn, prompts: int = 40) -> dict[str, float]:
    """Shares of two-object prompts drawn with each shape in its own colour ('bound'), in each other's
    ('swapped'), or otherwise ('other'). Binding at chance gives as many swapped as bound."""
    outcomes = [judge_binding(generate(two_object_prompt(first, second), BINDING_SEED + i), first, second)
                for i, (first, second) in enumerate(binding_pairs(prompts))]
    return {**{outcome: outcomes.count(outcome) / len(outcomes) for outcome in BINDING_OUTCOMES}, "prompts": len(outcomes)}


BOUNDARY_TOLERANCE = 2  # pixels: boundary_f's default


def boundary(mask: np.ndarray) -> np.ndarray:
    """The mask's pixels that touch a pixel outside it (4-neighbourhood)."""
    eroded = cv2.erode(mask.astype(np.uint8), np.ones((3, 3), np.uint8), borderType=cv2.BORDER_REPLICATE)
    return mask & ~eroded.astype(bool)


def boundary_f(predicted: np.ndarray, truth: np.ndarray, tolerance: int = BOUNDARY_TOLERANCE) -> float:
    """F-score of the two masks' boundaries, a boundary pixel counting as matched within `tolerance` px."""
    found, true = boundary(predicted), boundary(truth)
    if not found.any() or not true.any():
        return float(found.any() == true.any())
    to_true = cv2.distanceTransform((~true).astype(np.uint8), cv2.DIST_L2, 5)
    to_found = cv2.distanceTransform((~found).astype(np.uint8), cv2.DIST_L2, 5)
    precision = float((to_true[found] <= tolerance).mean())
    recall = float((to_found[true] <= tolerance).mean())
    return 0.0 if precision + recall == 0 else 2 * precision * recall / (precision + recall)


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    union = np.logical_or(predicted, truth).sum()
    return float(np.logical_and(predicted, truth).sum() / union) if union else 1.0
