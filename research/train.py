"""Train the demo model: rectified flow on procedural coloured shapes, on the CPU.

    python -m research.train --out research/run --minutes 60        # resumes if out has a checkpoint

Checkpoints (weights, EMA, optimiser, data position, loss log) are written every few minutes, so
training can stop at any time and resume in a later run. Deterministic from --seed.
"""

import argparse
import collections
import json
import math
import multiprocessing
import random
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, fields
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import load_file, save_file

from demo_model.codec import PATCH_SIZE as CODEC_PATCH
from demo_model.codec import PatchPCACodec, fit_pca_codec
from demo_model.config import DESIGN_FIELDS, DemoConfig
from demo_model.text import RUN_FILE, TextConfig, TextEncoder, WordTokenizer, run_text_config

from .evaluation import PIXELS_PER_TOKEN, token_masks
from .export import weights_metadata
from .flux_twin import WORD_MAP_SIDES, FluxTwin, float16_megabytes
from .shapes import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_SEED_OFFSET,
    IMAGE_SIZE,
    SHAPES,
    VOCABULARY,
    WORD_TO_ID,
    Scene,
    article,
    make_batch,
)
from .widen import added_weights, widened_from

CAPTION_DROPOUT = 0.1  # empty captions, so classifier-free guidance works
# Captions of bare words ("circle", "red square"), most of them a single word: ConceptAttention
# encodes each concept alone, and at 3 % single words (to 258k images) the lone encodings of all
# words were near copies of each other (cosine 0.75-0.91; two shape words inside one caption: -0.1
# to 0.5), so the concept streams of "circle" and "star" could hardly differ. 15 % single words
# had not changed that after 160k more images (0.82-0.93).
WORDS_ONLY = 0.25
SINGLE_WORD = 0.6  # of the bare-word captions
# Full captions without their colour words ("a circle and a square on a gray background"). Colour
# explains most of each image, so with colours always given the model learnt to ignore the shape
# words: at 236k images, swapping the shapes in a caption raised the loss by 1 %, swapping the
# colours by 30 %. Without colours, only the shape words tell the model what to draw.
# At 0.2, image tokens still attended to both shape words alike, and the shape
# words to both objects alike (the colour words to their own object, 94 %), so more: with two
# objects and no colours, telling the blobs apart needs the shape words bound to their objects.
WITHOUT_COLOURS = 0.35
# Share of flow times drawn uniformly instead of logit-normally (SD3/Flux). Logit-normal times
# almost never reach the high-noise end (t > 0.9: 1.4 % of steps, t > 0.95: 0.16 %), where a
# sampler decides the layout and where the caption is the only clue to an object's shape (below
# t ~ 0.8 the noisy outline shows it). Trained that way to 470k images, the model's one-step
# predictions were sharp shapes at t <= 0.6 but speckled noise at t >= 0.95, and it drew
# fragmented blobs whatever the caption said.
UNIFORM_TIMES = 0.5


# Extra loss weight on the latent cells an object's outline crosses, and on their neighbours. The
# outline is all that tells a circle from a square, yet it is a small part of the image: with the
# first text design, knowing the shape words was worth 3 % of the loss at t = 0.9 and the colour
# words 25 %, and after 80k scenes of the second design the shape words were still worth 0.2 %.
OUTLINE_WEIGHT = 4.0

# Flow times where the caption decides an object's outline: above it the position is still unsure,
# below it the noisy outline shows. One-step predictions of held-out scenes are blobs in the right
# place at t ~ 0.8 and sharp shapes at t <= 0.6, and swapping the shape words costs nothing at
# t = 0.7 and 1 % at t = 0.9: the shape words only pay in this window, so train it more.
SHAPE_WINDOW = (0.75, 0.97)
# The grounding loss leaves out the flow times above this: there the noisy image barely shows where
# an object is, so no attention could find it.
GROUNDING_MAX_TIME = 0.9
# The first double block the grounding loss reads: not block 0, whose image keys are the raw patches,
# in which a shape word cannot find its object. It reads on to TrainingMix.grounded_through.
FIRST_GROUNDED_BLOCK = 1
DATA_FILE = "data.json"  # a run's TrainingMix
# What runs recorded before a TrainingMix field existed trained with (fields not listed: 0, not drawn).
MIX_BEFORE_RECORDED = {"without_colours": WITHOUT_COLOURS, "retrieval_stated": 1.0}


@dataclass(frozen=True)
class TrainingMix:
    """What a run draws beyond the plain scenes and times, recorded in the run (DATA_FILE) so that a
    resumed run keeps it. The defaults are the current design.

    centred_scenes: share of scenes that are one object in the middle of the image. Elsewhere an
      object's position is still unsure when its outline is decided, and averaged over positions a
      circle and a square look alike (after 900k scenes the model drew shapeless blobs). Centred,
      the shape word alone says where the outline goes.
    shape_window_times: share of flow times drawn uniformly in SHAPE_WINDOW.
    without_colours: share of captions with their colour words removed (WITHOUT_COLOURS).
    same_colour_objects: share of scenes whose objects share one colour. Objects of distinct colours
      can be told apart, and bound to their caption phrases, by colour alone: the shape words then
      bind to their objects only weakly (image -> shape 0.6-0.7 after 2.3M scenes, colour 1.0), and a
      shape concept looks at the other object almost as much as at its own.
    grounding: weight of grounding_loss next to the flow loss (0: none).
    grounding_side: which attention it grounds (FluxTwin word maps): "text", each word's attention on
      the image, or "image", the image tokens' attention on each word.
    retrieval: weight of retrieval_loss next to the flow loss (0: none).
    retrieval_stated: weight in retrieval_loss of the words whose colour the training caption names
      (colour_stated). Those can answer from the caption's colour word; the rest (captions without
      colours, bare shape words) only by gathering from their object in the image, as a lone concept must.
    grounded_through: the last double block the grounding loss reads, from FIRST_GROUNDED_BLOCK on
      (None: every block). The cross-attention baseline reads exactly what the loss grounds, concept
      queries against image keys; grounding only the first blocks binds the words there and leaves
      the blocks the maps are read from (the last four) to what denoising makes of them, as in Flux.
    """

    centred_scenes: float = 0.25
    shape_window_times: float = 0.3
    without_colours: float = WITHOUT_COLOURS
    same_colour_objects: float = 0.0
    grounding: float = 0.0
    grounding_side: str = "text"
    retrieval: float = 0.0
    retrieval_stated: float = 1.0
    grounded_through: int | None = None

    def grounded_blocks(self) -> slice:
        """The double blocks (of FluxTwin's word maps) the grounding loss reads."""
        return slice(FIRST_GROUNDED_BLOCK, None if self.grounded_through is None else self.grounded_through + 1)

    @classmethod
    def of_run(cls, run: Path) -> "TrainingMix":
        """The mix a run began with; what its file lacks (or a run from before the file) is what the
        run trained with: 0, or MIX_BEFORE_RECORDED's value."""
        path = run / DATA_FILE
        recorded = json.loads(path.read_text()) if path.exists() else {}
        known = {field.name: field.default for field in fields(cls)}
        shares_ok = isinstance(recorded, dict) and set(recorded) <= set(known) and all(
            _recordable(name, value) for name, value in recorded.items())
        if not shares_ok:
            raise ValueError(f"{path}: expected shares in 0..1 for some of {sorted(known)} (grounding_side: one of "
                             f"{WORD_MAP_SIDES}; grounded_through: a block from {FIRST_GROUNDED_BLOCK}, or null), "
                             f"got {recorded}")
        before = {**{name: 0.0 for name in known}, "grounding_side": known["grounding_side"], "grounded_through": None,
                  **MIX_BEFORE_RECORDED}
        return cls(**{name: recorded.get(name, before[name]) for name in known})


def learning_rate(step: int, lr: float, warmup_steps: int = 0, decay_steps: int | None = None) -> float:
    """The learning rate of a run's step (counted from 0): a linear ramp to lr over warmup_steps,
    then, with decay_steps, a half cosine down to 0 at step decay_steps, where the run ends. A run
    at a constant rate wanders: checkpoints minutes apart differed in the margin over
    cross-attention by up to 0.04."""
    rate = lr * min(1.0, (step + 1) / warmup_steps) if warmup_steps else lr
    if decay_steps is not None:
        rate *= 0.5 * (1 + math.cos(math.pi * min(step, decay_steps) / decay_steps))
    return rate


def _recordable(name: str, value) -> bool:
    if name == "grounding_side":
        return value in WORD_MAP_SIDES
    if name == "grounded_through":
        return value is None or type(value) is int and value >= FIRST_GROUNDED_BLOCK
    return isinstance(value, float) and 0.0 <= value <= 1.0


def outline_weights(scenes: list[Scene], cell: int = CODEC_PATCH) -> torch.Tensor:
    """[B, 1, H/cell, W/cell] loss weights: 1, plus OUTLINE_WEIGHT on and next to object outlines."""
    covered = torch.stack([torch.from_numpy(np.any([obj.mask for obj in scene.objects], axis=0))
                           for scene in scenes]).float()[:, None]
    share = F.avg_pool2d(covered, cell)
    crossed = ((share > 0) & (share < 1)).float()
    return 1.0 + OUTLINE_WEIGHT * F.max_pool2d(crossed, 3, stride=1, padding=1)


def word_regions(scenes: list[Scene], grid: tuple[int, int]) -> torch.Tensor:
    """[B, vocabulary, rows * cols] bool: for each scene and word, the image tokens the word names (a
    shape: its object; a colour: the objects of that colour; "background" and the background's colour:
    the background); no tokens for the other words."""
    regions = torch.zeros(len(scenes), len(VOCABULARY), grid[0] * grid[1], dtype=torch.bool)
    for index, scene in enumerate(scenes):
        named = {**scene.masks, scene.background: scene.masks["background"]}
        for word, mask in named.items():
            regions[index, WORD_TO_ID[word]] = torch.from_numpy(token_masks(mask, grid))
    return regions


def grounding_loss(maps: torch.Tensor, targets: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """How far the caption's words' attention maps spill outside what they name (TokenCompose's token
    loss, Wang et al. 2024): the mean over the words that name a region, the blocks and the flow times
    below GROUNDING_MAX_TIME of (1 - the share of the word's map that falls on its region)^2.
    maps: [blocks, B, T, N] (FluxTwin's word maps); targets: [B, T, N] bool, each caption token's region."""
    inside = (maps * targets).sum(-1) / maps.sum(-1).clamp_min(1e-8)
    grounded = (targets.any(-1) & (t < GROUNDING_MAX_TIME)[:, None]).to(maps.dtype)
    return ((1 - inside).pow(2) * grounded).sum() / (grounded.sum() * maps.shape[0]).clamp_min(1)


# What retrieval_loss asks a word's state to tell: the colour of what it names.
RETRIEVED_COLOURS = (*COLOURS, *BACKGROUNDS)
RETRIEVED_COLOUR_IDS = tuple(WORD_TO_ID[name] for name in RETRIEVED_COLOURS)


def named_colours(caption: str) -> dict[str, int]:
    """{shape word or "background": index in RETRIEVED_COLOURS of what it names} from a scene's full
    caption ("a red circle and a blue square on a gray background")."""
    words = caption.split()
    return {word: RETRIEVED_COLOURS.index(before) for before, word in zip(words, words[1:], strict=False)
            if before in RETRIEVED_COLOURS and (word in SHAPES or word == "background")}


def retrieval_targets(captions: list[str], ids: torch.Tensor) -> torch.Tensor:
    """[B, T] int64: for each token of the training captions (ids), the RETRIEVED_COLOURS index of
    what it names in its scene (full caption), or -1 for words that name no object or background."""
    targets = torch.full(ids.shape, -1, dtype=torch.int64)
    for row, caption in enumerate(captions):
        colours = named_colours(caption)
        for position, token in enumerate(ids[row].tolist()):
            targets[row, position] = colours.get(VOCABULARY[token], -1)
    return targets


def colour_stated(ids: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """[B, T] bool: the scored words (retrieval_targets) whose colour the training caption itself
    names ("red circle"), so that their state can tell it from the text alone, without the image."""
    in_caption = (ids[:, :, None] == torch.tensor(RETRIEVED_COLOUR_IDS)).any(1)  # [B, colours]
    return (targets >= 0) & torch.gather(in_caption, 1, targets.clamp_min(0))


def retrieval_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the colour each word's state tells ([B, T, colours] logits) against what the
    word names (retrieval_targets; -1: not scored), averaged over the scored words with their weights
    ([B, T], default 1); 0 when no scored word has weight."""
    scored = targets >= 0
    weights = scored.to(logits.dtype) if weights is None else weights.to(logits.dtype) * scored
    total = weights.sum()
    if total == 0:
        return logits.sum() * 0.0
    return (F.cross_entropy(logits[scored], targets[scored], reduction="none") * weights[scored]).sum() / total


def training_times(count: int, shape_window: float = 0.0) -> torch.Tensor:
    """Flow times in (0, 1) for a batch: logit-normal, with UNIFORM_TIMES of them uniform, and then
    a `shape_window` share of them uniform in SHAPE_WINDOW."""
    logit_normal = torch.sigmoid(torch.randn(count))
    uniform = torch.rand(count).clamp(1e-4, 1 - 1e-4)
    times = torch.where(torch.rand(count) < UNIFORM_TIMES, uniform, logit_normal)
    if shape_window == 0.0:  # no further draws, so runs from before the window resume identically
        return times
    low, high = SHAPE_WINDOW
    in_window = low + (high - low) * torch.rand(count)
    return torch.where(torch.rand(count) < shape_window, in_window, times)


def training_caption(caption: str, rng: random.Random, colourless_share: float = WITHOUT_COLOURS) -> str:
    draw = rng.random()
    if draw < CAPTION_DROPOUT:
        return ""
    if draw < CAPTION_DROPOUT + WORDS_ONLY:
        words = [w for w in caption.split() if w not in ("a", "and", "on")]
        count = 1 if rng.random() < SINGLE_WORD else rng.randint(2, min(3, len(words)))
        return " ".join(rng.sample(words, k=count))
    if draw < CAPTION_DROPOUT + WORDS_ONLY + colourless_share:
        return without_colours(caption)
    return caption


def without_colours(caption: str) -> str:
    """The caption with its object colours removed, articles mended ("an orange star" -> "a star")."""
    words = [w for w in caption.split() if w not in COLOURS]
    following = words[1:] + [""]
    return " ".join(article(after) if word in ("a", "an") else word
                    for word, after in zip(words, following, strict=True))


_worker_codec: PatchPCACodec | None = None


def _start_worker(codec_state: dict[str, torch.Tensor]) -> None:
    global _worker_codec
    torch.set_num_threads(1)  # one core per worker; the workers together feed the trainer
    _worker_codec = PatchPCACodec.from_state_dict(codec_state)


Batch = tuple[torch.Tensor, list[str], torch.Tensor, torch.Tensor]
# The model's image-token grid: the codec's cells, patchified by the Flux model in 2x2.
TOKEN_GRID = (IMAGE_SIZE // PIXELS_PER_TOKEN,) * 2


def _encoded_scenes(seeds: range, shares: tuple[float, float], codec: PatchPCACodec | None = None) -> Batch:
    """Latents [B, 16, h, w], captions, outline_weights and word_regions of the scenes for `seeds` (in a
    worker: its own codec); shares: the centred and same-colour shares of make_batch."""
    images, captions, scenes = make_batch(seeds, *shares)
    with torch.no_grad():
        latents = (codec if codec is not None else _worker_codec).encode(images)
    return latents, captions, outline_weights(scenes), word_regions(scenes, TOKEN_GRID)


def scene_batches(codec: PatchPCACodec, first_seed: int, batch: int, workers: int = 0,
                  centred_share: float = 0.0, same_colour_share: float = 0.0) -> Iterator[Batch]:
    """Latents, captions, loss weights and word regions of the consecutive seed ranges from `first_seed`, in order.

    With workers, scenes are drawn and encoded ahead in that many processes (drawing is ~3 ms a
    scene on one core, which would starve a GPU); the batches are the same as without.
    """
    ranges = (range(start, start + batch) for start in range(first_seed, 2**62, batch))
    shares = (centred_share, same_colour_share)
    if workers == 0:
        for seeds in ranges:
            yield _encoded_scenes(seeds, shares, codec)
        return
    context = multiprocessing.get_context("spawn")  # no fork of a process that may hold CUDA or threads
    with context.Pool(workers, _start_worker, (codec.state_dict(),)) as pool:
        ahead = collections.deque(pool.apply_async(_encoded_scenes, (next(ranges), shares))
                                  for _ in range(2 * workers))
        while True:
            batch_ahead = ahead.popleft().get()
            ahead.append(pool.apply_async(_encoded_scenes, (next(ranges), shares)))
            yield batch_ahead


class Trainer:
    def __init__(self, out: Path, seed: int, batch: int, lr: float, init_from: Path | None = None,
                 compile_model: bool = False, device: str = "cpu", first_seed: int = 0, warmup_steps: int = 0,
                 mix: TrainingMix | None = None, decay_steps: int | None = None, design: DemoConfig | None = None,
                 added_weights_lr_scale: float | None = None):
        self.out = out
        self.batch = batch
        self.lr, self.warmup_steps, self.decay_steps = lr, warmup_steps, decay_steps
        self.device = torch.device(device)
        if self.device.type == "cuda":
            # full fp32 matmuls are several times slower there; TF32's rounding is noise next to the loss's
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        out.mkdir(parents=True, exist_ok=True)
        torch.manual_seed(seed)
        self.rng = random.Random(seed)
        self.tokenizer = WordTokenizer(VOCABULARY)
        self.config = self._design(out, design)
        self.model = FluxTwin(self.config).to(self.device)
        # a resumed run keeps the text design it began with; a new one takes the current design
        text_config = run_text_config(out) if (out / "checkpoint.pt").exists() else TextConfig()
        (out / RUN_FILE).write_text(text_config.to_json())
        resuming = (out / "checkpoint.pt").exists()
        self.mix = TrainingMix.of_run(out) if resuming else mix or TrainingMix()
        if resuming and mix is not None and mix != self.mix:
            raise ValueError(f"{out} began with {self.mix}; a resumed run keeps its mix, so leave out the mix options "
                             f"or start a new --out for {mix}")
        if self.mix.grounded_through is not None and self.mix.grounded_through >= self.config.depth:
            raise ValueError(f"grounded_through {self.mix.grounded_through}: the model has double blocks 0-"
                             f"{self.config.depth - 1}, so ground through at most {self.config.depth - 1}")
        (out / DATA_FILE).write_text(json.dumps(asdict(self.mix)))
        self.text = TextEncoder(len(VOCABULARY), dim=self.config.context_in_dim, config=text_config).to(self.device)
        # torch.compile fuses the many small ops of this narrow model: ~1.5x faster steps on a 2-core
        # CPU after ~100 s of compiling. Weights are shared, so checkpoints stay plain state dicts.
        self.forward = torch.compile(self.model) if compile_model else self.model
        self._init_zero_gates()
        # retrieval_loss's linear readout of the words' states: training only, not part of the exported model
        # (normalised first: the residual stream's scale is large and varies by token)
        self.retrieval_head = (torch.nn.Sequential(torch.nn.LayerNorm(self.config.hidden_size, elementwise_affine=False),
                                                   torch.nn.Linear(self.config.hidden_size, len(RETRIEVED_COLOURS)))
                               .to(self.device) if self.mix.retrieval else None)
        trained = list(self.model.parameters()) + list(self.text.parameters())
        if self.retrieval_head is not None:
            trained += list(self.retrieval_head.parameters())
        self.optimiser = torch.optim.AdamW(trained, lr=lr, weight_decay=0.0)
        self.step = 0
        self.last_grounding = self.last_retrieval = 0.0
        self.first_seed = self.next_seed = first_seed  # a resumed run goes on from its checkpoint's instead
        codec_path = out / "codec.safetensors"
        # weights a widened start (research.widen) added may learn at a rate of their own: the design they
        # were widened from and that rate's multiple of lr, recorded in the checkpoint and kept on resume
        self.added_weights: dict | None = None
        self.added_weights_lr_scale = added_weights_lr_scale
        if added_weights_lr_scale is not None and not (out / "checkpoint.pt").exists():
            source = widened_from(init_from) if init_from is not None else None
            if source is None:
                raise ValueError(f"{init_from or 'a run from scratch'} has no weights added by widening, which "
                                 f"added_weights_lr_scale speeds up: start from python -m research.widen's output, "
                                 f"or leave out --added-weights-lr-scale")
            self.added_weights = {"widened_from": asdict(source), "lr_scale": added_weights_lr_scale}
        if init_from is not None and not (out / "checkpoint.pt").exists():
            # a new run continuing shipped weights (e.g. where the old run's checkpoint was not kept)
            shipped_design = DemoConfig(**json.loads(weights_metadata(init_from)["config"]))
            if shipped_design != self.config:
                raise ValueError(f"{init_from} is another design ({shipped_design.design_text()}) than this run's "
                                 f"({self.config.design_text()}): leave out --design to continue those weights, or "
                                 f"leave out --init-from to train the new design from scratch")
            shipped = load_file(init_from)
            save_file({k[6:]: v for k, v in shipped.items() if k.startswith("codec.")}, codec_path)
            self.model.load_state_dict({k[6:]: v for k, v in shipped.items() if k.startswith("model.")})
            # weights of the first text design bring mixing layers this design may not have
            missing, unexpected = self.text.load_state_dict(
                {k[5:]: v for k, v in shipped.items() if k.startswith("text.")}, strict=False)
            if missing or any(not key.startswith("encoder.") for key in unexpected):
                raise ValueError(f"{init_from} does not fit the text encoder: missing {missing}, unexpected {unexpected}")
        self.ema = {k: v.detach().clone() for k, v in self.weights().items()}
        if codec_path.exists():
            self.codec = PatchPCACodec.from_state_dict(load_file(codec_path))
        else:
            images, _, _ = make_batch(range(512))
            self.codec = fit_pca_codec(images)
            save_file({k: v.contiguous() for k, v in self.codec.state_dict().items()}, codec_path)
        (out / "config.json").write_text(json.dumps(asdict(self.config)))
        if (out / "checkpoint.pt").exists():
            self._load(out / "checkpoint.pt")
        self.added_entries = self._added_entries()
        self.added_scale = self.added_weights["lr_scale"] if self.added_weights else 1.0

    def _added_entries(self) -> list[tuple[torch.nn.Parameter, torch.Tensor]]:
        """The transformer weights holding entries widening added, each with the mask of those entries."""
        if self.added_weights is None:
            return []
        masks = added_weights(DemoConfig(**self.added_weights["widened_from"]), self.config)
        return [(parameter, masks[name].to(self.device))
                for name, parameter in self.model.named_parameters() if masks[name].any()]

    @staticmethod
    def _design(out: Path, design: DemoConfig | None) -> DemoConfig:
        """A new run's design (the current one unless chosen); a resumed run keeps the one it recorded."""
        if not (out / "checkpoint.pt").exists():
            return design or DemoConfig()
        recorded = DemoConfig(**json.loads((out / "config.json").read_text()))
        if design is not None and design != recorded:
            raise ValueError(f"{out} began as {recorded.design_text()}; a resumed run keeps its design, so leave out "
                             f"--design or start a new --out for {design.design_text()}")
        return recorded

    def _init_zero_gates(self) -> None:
        """Start each block as the identity (adaLN-zero), the usual DiT initialisation."""
        with torch.no_grad():
            for module in self.model.modules():
                if module.__class__.__name__ == "Modulation":
                    module.lin.weight.zero_()
                    module.lin.bias.zero_()
            self.model.final_layer.linear.weight.zero_()
            self.model.final_layer.linear.bias.zero_()

    def weights(self) -> dict[str, torch.Tensor]:
        return {**{f"model.{k}": v for k, v in self.model.state_dict().items()},
                **{f"text.{k}": v for k, v in self.text.state_dict().items()}}

    def _load(self, path: Path) -> None:
        state = torch.load(path, weights_only=False, map_location=self.device)
        self.model.load_state_dict({k[6:]: v for k, v in state["weights"].items() if k.startswith("model.")})
        self.text.load_state_dict({k[5:]: v for k, v in state["weights"].items() if k.startswith("text.")})
        self.ema = state["ema"]
        self.optimiser.load_state_dict(state["optimiser"])
        if self.retrieval_head is not None:
            self.retrieval_head.load_state_dict(state["retrieval_head"])
        self.step, self.next_seed, self.first_seed = state["step"], state["next_seed"], state.get("first_seed", 0)
        # a resumed run keeps the schedule it began with: its cosine is laid out over its whole length
        recorded = state.get("decay_steps")
        if self.decay_steps is not None and self.decay_steps != recorded:
            raise ValueError(f"{self.out} began with decay_steps {recorded}; a resumed run keeps its schedule, so "
                             f"leave out --decay-steps or start a new --out")
        self.decay_steps = recorded
        self.added_weights = state.get("added_weights")
        recorded_scale = self.added_weights["lr_scale"] if self.added_weights else None
        if self.added_weights_lr_scale is not None and self.added_weights_lr_scale != recorded_scale:
            raise ValueError(f"{self.out} began with added_weights_lr_scale {recorded_scale}; a resumed run keeps it, "
                             f"so leave out --added-weights-lr-scale or start a new --out")
        self.rng.setstate(state["rng"])
        torch.set_rng_state(state["torch_rng"].cpu())

    def save(self) -> None:
        state = {"weights": self.weights(), "ema": self.ema, "optimiser": self.optimiser.state_dict(),
                 "step": self.step, "next_seed": self.next_seed, "first_seed": self.first_seed,
                 "decay_steps": self.decay_steps, "added_weights": self.added_weights, "rng": self.rng.getstate(),
                 "torch_rng": torch.get_rng_state(), "config": asdict(self.config)}
        if self.retrieval_head is not None:
            state["retrieval_head"] = self.retrieval_head.state_dict()
        torch.save(state, self.out / "checkpoint.tmp")
        (self.out / "checkpoint.tmp").replace(self.out / "checkpoint.pt")
        save_file({k: v.contiguous().cpu() for k, v in self.ema.items()}, self.out / "ema.safetensors")

    def batches(self, workers: int = 0) -> Iterator[Batch]:
        """The training batches from where the run stands (next_seed), drawn ahead by `workers`."""
        return scene_batches(self.codec, self.next_seed, self.batch, workers, self.mix.centred_scenes,
                             self.mix.same_colour_objects)

    def train_step(self, x0: torch.Tensor, captions: list[str], weights: torch.Tensor, regions: torch.Tensor) -> float:
        """One step on the batch that starts at next_seed: latents x0 [B, 16, h, w], captions,
        per-cell loss weights [B, 1, h, w] (the loss is divided by their mean) and word_regions
        [B, vocabulary, N] (for the mix's grounding loss). Returns the flow loss; the grounding
        loss is left in last_grounding."""
        self.next_seed += len(captions)
        ids = torch.tensor([self.tokenizer.ids(training_caption(c, self.rng, self.mix.without_colours))
                            for c in captions])
        context, pooled = self.text(ids.to(self.device))
        # Drawn on the CPU whatever the device, so a run resumes identically on either.
        t = training_times(x0.shape[0], self.mix.shape_window_times)
        noise = torch.randn_like(x0)
        x0, t, noise = x0.to(self.device), t.to(self.device), noise.to(self.device)
        weights = weights.to(self.device)
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        outputs = self.forward(xt, t, context, pooled, word_maps_side=self.mix.grounding_side if self.mix.grounding
                               else None, text_states=bool(self.mix.retrieval))
        velocity, extras = (outputs[0], list(outputs[1:])) if isinstance(outputs, tuple) else (outputs, [])
        grounding = retrieval = torch.zeros((), device=self.device)
        if self.mix.grounding:
            targets = torch.gather(regions, 1, ids[:, :, None].expand(-1, -1, regions.shape[-1])).to(self.device)
            grounding = grounding_loss(extras.pop(0)[self.mix.grounded_blocks()], targets, t)
        if self.mix.retrieval:
            targets = retrieval_targets(captions, ids)
            word_weights = torch.where(colour_stated(ids, targets), self.mix.retrieval_stated, 1.0).to(self.device)
            targets = targets.to(self.device)
            targets[t >= GROUNDING_MAX_TIME] = -1
            retrieval = retrieval_loss(self.retrieval_head(extras.pop(0)), targets, word_weights)
        squared_error = (velocity - (noise - x0)).pow(2)
        flow_loss = (weights * squared_error).mean() / weights.mean()
        loss = flow_loss + self.mix.grounding * grounding + self.mix.retrieval * retrieval
        self.last_grounding, self.last_retrieval = float(grounding.detach()), float(retrieval.detach())
        # A fresh optimiser's first steps move every weight by about lr: ramp up rather than knock
        # a trained model (--init-from) off course.
        for group in self.optimiser.param_groups:
            group["lr"] = learning_rate(self.step, self.lr, self.warmup_steps, self.decay_steps)
        self.optimiser.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(self.model.parameters()) + list(self.text.parameters()), 1.0)
        starts = [parameter.detach().clone() for parameter, _ in self.added_entries]
        self.optimiser.step()
        with torch.no_grad():  # Adam moves each entry by about lr whatever its gradient's size: scale the move
            for (parameter, added), start in zip(self.added_entries, starts, strict=True):
                parameter.copy_(torch.where(added, start + (parameter - start) * self.added_scale, parameter))
        self.step += 1
        decay = min(0.999, (1 + self.step) / (10 + self.step))
        with torch.no_grad():
            for name, value in self.weights().items():
                self.ema[name].lerp_(value, 1 - decay)
        return flow_loss.item()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("research/run"))
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save-every", type=float, default=5.0, help="minutes between checkpoints")
    parser.add_argument("--init-from", type=Path, default=None,
                        help="start a new run from shipped weights (demo_model/weights/demo_model.safetensors)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (faster after a slow start)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (scripts/train_demo_on_gpu.sh)")
    parser.add_argument("--workers", type=int, default=0,
                        help="processes that draw scenes ahead (0: draw in the training process)")
    parser.add_argument("--warmup-steps", type=int, default=0, help="steps over which the learning rate ramps up")
    parser.add_argument("--decay-steps", type=int, default=None,
                        help="a new run's length in steps: the learning rate falls along a half cosine to 0 there, "
                             "and the run ends (default: a constant rate, until --minutes)")
    parser.add_argument("--without-colours", type=float, default=None,
                        help=f"a new run's share of captions without colour words (default {WITHOUT_COLOURS})")
    parser.add_argument("--same-colour-objects", type=float, default=None,
                        help="a new run's share of scenes whose objects share a colour (default 0)")
    parser.add_argument("--grounding", type=float, default=None,
                        help="a new run's weight of the grounding loss on the caption words' attention (default 0)")
    parser.add_argument("--grounding-side", choices=WORD_MAP_SIDES, default=None,
                        help="a new run's grounded attention: each word's on the image (text) or the image's on "
                             "each word (image); default text")
    parser.add_argument("--retrieval", type=float, default=None,
                        help="a new run's weight of the retrieval loss: each shape word's state must tell its "
                             "object's colour (default 0)")
    parser.add_argument("--retrieval-stated", type=float, default=None,
                        help="a new run's weight, in the retrieval loss, of the words whose colour the training caption "
                             "names (0: only words that must find their colour in the image; default 1)")
    parser.add_argument("--grounded-through", type=int, default=None,
                        help=f"a new run's last double block the grounding loss reads, from {FIRST_GROUNDED_BLOCK} "
                             "(default: every block)")
    parser.add_argument("--design", default=None,
                        help="a new run's transformer, e.g. hidden_size=160,num_heads=5 (fields: "
                             f"{', '.join(DESIGN_FIELDS)}; default: the current design)")
    parser.add_argument("--added-weights-lr-scale", type=float, default=None,
                        help="a new run from widened weights (python -m research.widen): the learning rate of the "
                             "entries widening added, as a multiple of the rest's (default: the same)")
    parser.add_argument("--first-seed", type=int, default=0,
                        help="training seed a new run starts from (e.g. past the scenes earlier runs saw)")
    args = parser.parse_args()
    if not 0 <= args.first_seed < HELD_OUT_SEED_OFFSET:
        parser.error(f"--first-seed must be in 0..{HELD_OUT_SEED_OFFSET - 1}: higher seeds are the held-out scenes")
    if args.without_colours is not None and not 0.0 <= args.without_colours <= 1.0 - CAPTION_DROPOUT - WORDS_ONLY:
        parser.error(f"--without-colours must be in 0..{1.0 - CAPTION_DROPOUT - WORDS_ONLY:.2f} (the rest of the "
                     f"captions are dropped or bare words)")
    if args.same_colour_objects is not None and not 0.0 <= args.same_colour_objects <= 1.0:
        parser.error("--same-colour-objects must be in 0..1")
    if args.grounding is not None and not 0.0 <= args.grounding <= 1.0:
        parser.error("--grounding must be in 0..1")
    if args.retrieval is not None and not 0.0 <= args.retrieval <= 1.0:
        parser.error("--retrieval must be in 0..1")
    if args.retrieval_stated is not None and not 0.0 <= args.retrieval_stated <= 1.0:
        parser.error("--retrieval-stated must be in 0..1")
    if args.decay_steps is not None and args.decay_steps <= args.warmup_steps:
        parser.error(f"--decay-steps must be more than --warmup-steps ({args.warmup_steps})")
    if args.added_weights_lr_scale is not None and not args.added_weights_lr_scale > 0:
        parser.error("--added-weights-lr-scale must be more than 0")
    if args.grounded_through is not None and args.grounded_through < FIRST_GROUNDED_BLOCK:
        parser.error(f"--grounded-through must be a double block from {FIRST_GROUNDED_BLOCK} on")
    chosen = {name: value for name, value in (("without_colours", args.without_colours),
                                              ("same_colour_objects", args.same_colour_objects),
                                              ("grounding", args.grounding),
                                              ("grounding_side", args.grounding_side),
                                              ("retrieval", args.retrieval),
                                              ("retrieval_stated", args.retrieval_stated),
                                              ("grounded_through", args.grounded_through)) if value is not None}
    mix = TrainingMix(**chosen) if chosen else None
    try:
        design = DemoConfig.from_design(args.design) if args.design is not None else None
    except ValueError as error:
        parser.error(f"--{error}")
    trainer = Trainer(args.out, args.seed, args.batch, args.lr, args.init_from, args.compile, args.device,
                      args.first_seed, args.warmup_steps, mix, args.decay_steps, design, args.added_weights_lr_scale)
    print(f"design: {trainer.config.design_text()} ({float16_megabytes(trainer.config):.1f} MB as float16)", flush=True)
    if trainer.added_weights is not None:
        start_design = DemoConfig(**trainer.added_weights["widened_from"]).design_text()
        print(f"weights added by widening or deepening {start_design} learn at "
              f"{trainer.added_weights['lr_scale']} x the learning rate", flush=True)
    log = (args.out / "loss.jsonl").open("a")
    start = last_save = time.time()
    losses, groundings, retrievals = [], [], []
    batches = trainer.batches(args.workers)

    def write_log() -> None:
        entry = {"step": trainer.step, "loss": sum(losses) / len(losses), "images": trainer.next_seed - trainer.first_seed,
                 "minutes": round((time.time() - start) / 60, 2)}
        if trainer.mix.grounding:
            entry["grounding"] = sum(groundings) / len(groundings)
        if trainer.mix.retrieval:
            entry["retrieval"] = sum(retrievals) / len(retrievals)
        log.write(json.dumps(entry) + "\n")
        log.flush()
        print(entry, flush=True)
        losses.clear()
        groundings.clear()
        retrievals.clear()

    while time.time() - start < args.minutes * 60:
        if trainer.next_seed + args.batch > HELD_OUT_SEED_OFFSET:
            print(f"stopping: the next batch would reach the held-out seeds ({HELD_OUT_SEED_OFFSET})", flush=True)
            break
        if trainer.decay_steps is not None and trainer.step >= trainer.decay_steps:
            print(f"stopping: the learning rate has decayed to 0 at step {trainer.decay_steps}", flush=True)
            break
        losses.append(trainer.train_step(*next(batches)))
        groundings.append(trainer.last_grounding)
        retrievals.append(trainer.last_retrieval)
        if trainer.step % 50 == 0:
            write_log()
        if time.time() - last_save > args.save_every * 60:
            trainer.save()
            last_save = time.time()
    if losses:
        write_log()
    trainer.save()


if __name__ == "__main__":
    main()
