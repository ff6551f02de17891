"""Recording a sampling run's concept scores, and the run lifecycle around it.

Every sampling run that uses the patched model (any sampler node, any guider) gets its own Recording: a
running mean per prompt, the token grid and the steps that contributed. It is filed with the latent the run
returned (recorder.py), so that a collector finds the maps of the very run that made its LATENT. A
segmentation holds one Recording open across its noise draws.
"""

import math
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import comfy.samplers
import torch

from ...ca_core.aggregate import ConceptScoreAggregator
from ...ca_core.maps import ConceptMaps, token_grid_maps
from .context_windows import ContextWindows
from .recorder import ConceptRecorder

# Which prompt's batch rows the stream follows; ComfyUI labels them in cond_or_uncond.
PROMPTS = {"positive": 0, "negative": 1}
PROMPT_CHOICES = ("positive", "negative", "both")


def chosen_prompts(choice: str) -> tuple[str, ...]:
    """The prompts a `prompt` input names: positive, negative or both."""
    if choice not in PROMPT_CHOICES:
        raise ValueError(f"prompt must be one of {PROMPT_CHOICES}, got {choice!r}")
    return tuple(PROMPTS) if choice == "both" else (choice,)


def step_range(start_step: int, end_step: int, steps: int | None = None) -> tuple[int, int]:
    """The scored steps [start_step, end_step); with the run's step count known, a range that can never
    be scored is refused before any sampling."""
    if start_step >= end_step:
        raise ValueError(f"start_step {start_step} must be below end_step {end_step}")
    if steps is not None and start_step >= steps:
        raise ValueError(f"start_step {start_step} is past the last step: this run has {steps} steps (0-{steps - 1}), "
                         f"so no step would be scored; set start_step below {steps} (0 scores them all)")
    return start_step, end_step


def check_prompt_runs(prompt: str, cfg: float) -> None:
    """Negative-prompt maps need the negative prompt to run; ComfyUI skips it at cfg 1 (comfy.samplers)."""
    if prompt in ("negative", "both") and math.isclose(cfg, 1.0):
        raise ValueError(f"prompt is {prompt}, but at cfg 1.0 ComfyUI never runs the negative prompt, so it would "
                         "have no maps: raise cfg above 1, or set prompt to positive")


def check_guider_runs_negative(prompt: str, guider) -> None:
    """check_prompt_runs for a sampling run's guider (KSampler's, or SamplerCustomAdvanced's): where the guider
    is ComfyUI's plain CFG guidance, the negative prompt runs only if it has one and cfg is not 1. Guiders with
    their own guidance (dual CFG, other packs') are left to the run."""
    if prompt not in ("negative", "both") or not isinstance(getattr(guider, "original_conds", None), dict):
        return
    own_guidance = type(guider).predict_noise is not comfy.samplers.CFGGuider.predict_noise
    if own_guidance:
        return
    if "negative" not in guider.original_conds:
        raise ValueError(f"prompt is {prompt}, but this guider ({type(guider).__name__}) has no negative prompt, so "
                         "it would have no maps: use CFGGuider with a negative prompt and cfg above 1 (or KSampler), "
                         "or set prompt to positive")
    if not (getattr(guider, "model_options", None) or {}).get("disable_cfg1_optimization", False):
        check_prompt_runs(prompt, getattr(guider, "cfg", 1.0))


@dataclass
class Recording:
    """What the concept stream recorded over one sampling run (or one segmentation): a running mean per
    prompt, the token grid and the steps that contributed."""

    prompts: tuple[str, ...]
    softmax: bool
    one_concept_raw: bool = False
    aggregators: dict = field(default_factory=dict)
    grid: tuple[int, ...] | None = None  # (rows, columns), or (frames, rows, columns) for video
    video_frames: tuple[int, ...] = ()  # the token frame of each decoded video frame (family.video_frame_tokens)
    steps: set = field(default_factory=set)  # steps whose chosen blocks ran and were scored
    skipped_steps: set = field(default_factory=set)  # steps whose model call ran without the chosen blocks
    calls_in_range: int = 0  # model calls within the step range, whichever prompts they ran
    run_steps: int | None = None  # how many steps the sampling run had (None: a segmentation's lone calls)
    windows: ContextWindows | None = None  # the run's context windows over a long clip, if it samples in windows
    # the concepts as embedded in this run, by what they depend on (install.ConceptAttentionPatch.embedded_concepts)
    embedded_concepts: dict = field(default_factory=dict, repr=False, compare=False)
    steady_weights: bool = False  # the run's weights stay as they are throughout (no hooks patch them mid-run)
    # held while a model call changes the recording: MultiGPU CFG Split runs calls on several threads at once
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def skipped_in(self, step_range: tuple[int, int]) -> set:
        """Steps of the range that ran (or, with a known step count, should have) but gave no scores."""
        skipped = set(self.skipped_steps)
        if self.run_steps is not None:
            skipped |= set(range(step_range[0], min(step_range[1], self.run_steps)))
        return skipped - self.steps

    def __post_init__(self):
        self.aggregators = {prompt: ConceptScoreAggregator(softmax=self.softmax) for prompt in self.prompts}

    def concept_maps(self, names: list[str], image_size: tuple[int, int], space: str, token_pixels: int,
                     layers: tuple[int, ...], step_range: tuple[int, int]) -> ConceptMaps:
        """The maps, prompt by prompt along the batch (positive images first, then negative)."""
        chosen = f"steps {step_range[0]}-{step_range[1] - 1}"
        if not self.calls_in_range and self.run_steps is not None and step_range[0] >= self.run_steps:
            raise RuntimeError(
                f"no concept maps were made: {chosen} never ran: the run had {self.run_steps} steps "
                f"(0-{self.run_steps - 1}); set start_step below the run's step count, or widen the step range"
            )
        missing = [prompt for prompt, aggregator in self.aggregators.items() if aggregator.contributions == 0]
        if len(missing) == len(self.aggregators) and (self.skipped_steps or not self.calls_in_range):
            raise RuntimeError(
                f"no concept maps were made: the model ran {chosen} without the chosen joint blocks. A "
                "step-skipping cache (First Block Cache, TeaCache, EasyCache, ...) reused its cached result "
                "there instead of running the blocks. Start the cache after the chosen steps (its start "
                "setting), lower its threshold, widen the step range to steps where the blocks run, or "
                "bypass the cache node for this run"
            )
        if missing:
            raise RuntimeError(
                f"no {missing[0]}-prompt maps were made: the sampler never ran the {missing[0]} prompt "
                "(ComfyUI skips the negative prompt when cfg is 1.0): raise cfg above 1, or set prompt to "
                "positive"
            )

        def grid_maps(space_name, raw=False):
            return torch.cat([token_grid_maps(self.aggregators[prompt].mean(space_name, raw), self.grid).cpu()
                              for prompt in self.prompts])

        return ConceptMaps(
            names=names,
            maps=grid_maps("output"),
            cross_attention_maps=grid_maps("cross_attention"),
            image_size=image_size,
            token_pixels=token_pixels,
            space=space,
            layers=layers,
            steps=tuple(sorted(self.steps)),
            skipped_steps=tuple(sorted(self.skipped_in(step_range))),
            softmax=self.softmax,
            prompts=self.prompts,
            one_concept_raw=self.one_concept_raw,
            frames=self.grid[0] if len(self.grid) == 3 else 1,
            video_frames=self.video_frames,
            raw_maps=grid_maps("output", raw=True) if self.softmax else None,
            raw_cross_attention_maps=grid_maps("cross_attention", raw=True) if self.softmax else None,
        )


class RunRecordings:
    """The recordings of a patched model's runs: the one in progress, the latest finished, and those filed
    for the collectors (recorder.py)."""

    def __init__(self, names: list[str], layers: tuple[int, ...], steps: tuple[int, int], softmax: bool,
                 one_concept_raw: bool, prompts: tuple[str, ...], space: str):
        self.names, self.layers, self.steps, self.space = names, layers, steps, space
        self.softmax, self.one_concept_raw, self.prompts = softmax, one_concept_raw, prompts
        self.recorder = ConceptRecorder()
        self.open_recording: Recording | None = None  # the sampling run in progress
        self.last_recording: Recording | None = None  # the latest finished one
        self.latent_pixels = self.token_pixels = None  # set when installed on a model

    @property
    def prompt_choice(self) -> str:
        """The `prompt` input these recordings follow: positive, negative or both."""
        return "both" if len(self.prompts) > 1 else self.prompts[0]

    def new_recording(self) -> Recording:
        return Recording(prompts=self.prompts, softmax=self.softmax, one_concept_raw=self.one_concept_raw)

    @contextmanager
    def recording(self, run_steps: int | None = None):
        """One Recording, open while the run samples (or across a segmentation's noise draws), finished only if
        it returns: an interrupt or error leaves nothing open and files nothing."""
        recording = self.new_recording()
        recording.run_steps = run_steps
        self.open_recording = recording
        try:
            yield recording
        finally:
            self.open_recording = None
        self.last_recording = recording

    @property
    def aggregator(self) -> ConceptScoreAggregator:
        """The latest finished run's positive-prompt scores (measurements and tests)."""
        return self.last_recording.aggregators[self.prompts[0]]

    def collect(self, latent: torch.Tensor) -> ConceptMaps:
        """The maps of the sampling run that returned `latent` (a LATENT's samples)."""
        recording = self.recorder.find(latent)
        height, width = latent.shape[-2:]
        return self.maps_of(recording, (height * self.latent_pixels, width * self.latent_pixels))

    def maps_of(self, recording: Recording, image_size: tuple[int, int]) -> ConceptMaps:
        return recording.concept_maps(self.names, image_size, self.space, self.token_pixels, self.layers, self.steps)

    def concept_maps(self, names: list[str], image_size: tuple[int, int], space: str,
                     token_pixels: int | None = None) -> ConceptMaps:
        """The latest finished run's maps."""
        if self.last_recording is None:
            raise RuntimeError("no sampling run has used the patched model yet")
        return self.last_recording.concept_maps(names, image_size, space, token_pixels or self.token_pixels,
                                                self.layers, self.steps)
