"""Installs the concept stream on a cloned ComfyUI model, for any ModelFamily (nodes/family.py).

A DIFFUSION_MODEL wrapper opens a per-call stream state (concept tokens, modulation vector,
which batch rows are the positive prompt); each joint block up to the last chosen one gets a
patches_replace entry that runs ComfyUI's own block with an attention override. The override
sees the joint attention's q/k/v and output as the block computes them, so the concept queries
reuse them instead of recomputing anything, and the image and text streams are untouched.
Families whose forward gives its blocks no patches_replace entry (block_entry "attention": CogVideoX)
are reached through the attention alone: the wrapper puts one override in the call's
transformer_options, which counts the joint attention calls (call i is block i). Both entries run the
same ConceptStep. Previous replacements and overrides on the model are chained, never replaced.

An OUTER_SAMPLE wrapper gives every sampling run that uses the model its own Recording, and files
it with the latent the run returned (nodes/recorder.py), so that any sampler node can run the patched
model and a collector finds the maps of the very run that made its LATENT.

Where a family's forward keeps the last replacement's returned dict alive (Flux's forward_orig), the
blocks it names get replacements too, which only empty that dict (family.release_after_stream).
"""

import logging
import math
from contextlib import contextmanager
from dataclasses import dataclass, field

import comfy.patcher_extension
import torch
from torch import Tensor

from ..ca_core.aggregate import ConceptScoreAggregator, softmax_over
from ..ca_core.few_rows import few_row_linears
from ..ca_core.layers import step_index
from ..ca_core.maps import ConceptMaps, token_grid_maps
from ..ca_core.stream import attend_concepts, attention_residual, concept_qkv, mlp_input, mlp_residual
from .recorder import ConceptRecorder
from .shared_casts import SharedCasts

STATE_KEY = "concept_attention_stream"
WRAPPER_KEY = "concept_attention"
# How ComfyUI's TorchCompileModel (comfy_api.torch_helpers, also used by compile nodes of other packs) marks a
# compiled MODEL: an APPLY_MODEL wrapper and its compile options.
COMPILE_WRAPPER_KEY = "torch.compile"
COMPILE_OPTIONS_KEY = "torch_compile_kwargs"
# Which prompt's batch rows the stream follows; ComfyUI labels them in cond_or_uncond.
PROMPTS = {"positive": 0, "negative": 1}
PROMPT_CHOICES = ("positive", "negative", "both")


def chosen_prompts(choice: str) -> tuple[str, ...]:
    """The prompts a `prompt` input names: positive, negative or both."""
    if choice not in PROMPT_CHOICES:
        raise ValueError(f"prompt must be one of {PROMPT_CHOICES}, got {choice!r}")
    return tuple(PROMPTS) if choice == "both" else (choice,)


def is_compiled(model) -> bool:
    """Whether a MODEL carries ComfyUI's torch.compile wrapper."""
    wrappers = model.wrappers.get(comfy.patcher_extension.WrappersMP.APPLY_MODEL, {})
    return COMPILE_OPTIONS_KEY in model.model_options or bool(wrappers.get(COMPILE_WRAPPER_KEY))


class CompiledModelError(ValueError):
    pass


class StopAfterLastLayer(Exception):
    """Raised after the last chosen block when only the maps are wanted (segmentation)."""


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

        def grid_maps(space_name):
            return torch.cat([token_grid_maps(self.aggregators[prompt].mean(space_name), self.grid).cpu()
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
        )


@dataclass
class StreamState:
    """One model call's concept stream; lives only inside transformer_options of that call."""

    diffusion_model: object
    family: object
    recording: Recording
    rows: slice | Tensor  # batch rows of the chosen prompts (a slice when contiguous: no copies)
    chunk_prompts: list[str]  # the prompt of each chunk those rows hold (a prompt's chunks average into one map)
    concepts: Tensor  # [rows, K, C]
    conditioning: object  # the family's concept modulation input for these rows
    rope: object  # the concepts' RoPE (None: positions zero)
    score_tokens: int
    step: int
    returned: dict | None = None  # what the last double-block replacement handed back to ComfyUI
    scored: bool = False  # a chosen block ran and was scored in this call
    # a block of this call ran no joint attention (a cache skipped it): the concepts cannot follow the blocks
    # after it, so this call scores nothing more
    stalled: bool = False


class ConceptAttentionPatch:
    def __init__(self, family, concept_context: Tensor, layers: tuple[int, ...], steps: tuple[int, int],
                 softmax: bool = True, stop_after_last_layer: bool = False, concept_positions: list[int] | None = None,
                 prompts: tuple[str, ...] = ("positive",), names: list[str] | None = None, space: str = "output"):
        self.family = family
        self.names = names or [f"concept {i}" for i in range(concept_context.shape[1])]
        self.space = space  # the map space the user chose; both are always recorded
        self.concept_context = concept_context
        self.concept_positions = concept_positions
        self.layers = layers
        self.steps = steps
        concepts = concept_context.shape[1]
        self.softmax = softmax_over(concepts, softmax)
        self.one_concept_raw = softmax and concepts == 1
        self.prompts = prompts
        self.stop_after_last_layer = stop_after_last_layer
        self.recorder = ConceptRecorder()
        self.open_recording: Recording | None = None  # the sampling run in progress
        self.last_recording: Recording | None = None  # the latest finished one
        self._timestep_of_sigma = None

    def new_recording(self) -> Recording:
        return Recording(prompts=self.prompts, softmax=self.softmax, one_concept_raw=self.one_concept_raw)

    @contextmanager
    def recording(self):
        """Hold one Recording open across several sampling runs (segmentation's noise draws)."""
        recording = self.new_recording()
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

    def install(self, model):
        """Patch a model.clone() in place; the caller's model is never touched.

        A compiled model's clone runs uncompiled: its compiled module is shared with the caller's model, and
        ComfyUI's compile guards ignore transformer_options, so a graph traced with (or without) the stream's
        replacements would be reused by runs without (or with) them. The caller's model stays compiled."""
        if is_compiled(model):
            model.remove_wrappers_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, COMPILE_WRAPPER_KEY)
            model.model_options.pop(COMPILE_OPTIONS_KEY, None)
            logging.warning("ConceptAttention: the concept maps' sampling run uses this model uncompiled "
                            "(torch.compile cannot hold the concept stream); other samplers keep it compiled.")
        self._timestep_of_sigma = model.get_model_object("model_sampling").timestep
        self.latent_pixels = self.family.latent_pixels(model)
        self.token_pixels = self.family.token_pixels(model)
        transformer_options = model.model_options.get("transformer_options", {})
        previous = transformer_options.get("patches_replace", {}).get("dit", {})
        diffusion_model = model.get_model_object("diffusion_model")
        last = max(self.layers)
        if self.family.block_entry == "patches_replace":  # else the model call's AttentionEntry reaches them
            for index in range(last + 1):
                block_patch = BlockPatch(self, index, previous.get(("double_block", index)))
                model.set_model_patch_replace(block_patch, "dit", "double_block", index)
            for following in self.family.release_after_stream(diffusion_model, last):
                release = ReleaseReturnedPatch(self, previous.get(following), following[0] == "double_block")
                model.set_model_patch_replace(release, "dit", *following)
        hook = getattr(comfy.patcher_extension.WrappersMP, self.family.hook)
        model.add_wrapper_with_key(hook, WRAPPER_KEY, self.wrap_model_call)
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY,
                                   self.wrap_sampling_run)
        return model

    def wrap_sampling_run(self, executor, *args, **kwargs):
        """One sampling run (any sampler node, any guider): record it, and file it with its output."""
        if self.open_recording is not None:  # a recording held open around several runs
            return executor(*args, **kwargs)
        sampled = getattr(executor.class_obj, "model_patcher", None)  # the guider's MODEL
        if sampled is not None and is_compiled(sampled):
            raise CompiledModelError(
                "this MODEL was compiled (TorchCompileModel or another compile node) after the Concept Attention "
                "node: a compiled graph cannot run the concept stream. Move the compile node before the Concept "
                "Attention node (the maps' run then uses the model uncompiled, other samplers stay compiled), or "
                "bypass it"
            )
        recording = self.new_recording()
        sigmas = args[3] if len(args) > 3 else kwargs.get("sigmas")  # outer_sample(noise, latent, sampler, sigmas..)
        recording.run_steps = len(sigmas) - 1 if sigmas is not None else None
        self.open_recording = recording
        try:
            output = executor(*args, **kwargs)
        finally:  # an interrupt or error leaves nothing open and files nothing
            self.open_recording = None
        self.last_recording = recording
        self.recorder.file(recording, output)
        return output

    def collect(self, latent: Tensor) -> ConceptMaps:
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

    def wrap_model_call(self, executor, *args, **kwargs):
        call = self.family.bind_call(executor, args, kwargs)
        state = self._open_stream(call)
        if state is None:
            return executor(*args, **kwargs)
        # keyed by patch, so a second concept patch on the same model keeps its own stream
        options = {**call.transformer_options}
        options[STATE_KEY] = {**options.get(STATE_KEY, {}), self: state}
        entry = None
        if self.family.block_entry == "attention":
            entry = AttentionEntry(self, state, options.get("optimized_attention_override"))
            options["optimized_attention_override"] = entry
        args, kwargs = call.with_transformer_options(options)
        with self.family.watch_call(call.diffusion_model, state.conditioning):
            output = executor(*args, **kwargs)
            if entry is not None:  # the last block's update, while what the family watched is still at hand
                entry.finish_pending()
        if not state.scored:  # the call returned without running the chosen blocks: a step-skipping cache
            state.recording.skipped_steps.add(state.step)
        return output

    @few_row_linears
    def _open_stream(self, call) -> StreamState | None:
        recording = self.open_recording
        if recording is None:  # a model call outside any sampling run: nothing to record
            return None
        x, transformer_options = call.x, call.transformer_options
        step = self._step(call.timestep, transformer_options)
        if not self.steps[0] <= step < self.steps[1]:
            return None
        recording.calls_in_range += 1
        labels = transformer_options.get("cond_or_uncond") or [0]
        chunk = x.shape[0] // len(labels)
        wanted = {PROMPTS[prompt] for prompt in self.prompts}
        chosen = [i for i, label in enumerate(labels) if label in wanted]
        if not chosen:
            return None
        if chosen == list(range(chosen[0], chosen[-1] + 1)):
            rows = slice(chosen[0] * chunk, (chosen[-1] + 1) * chunk)
        else:
            rows = torch.cat([torch.arange(i * chunk, (i + 1) * chunk) for i in chosen]).to(x.device)
        diffusion_model = call.diffusion_model
        xs = x[rows]
        context = self.concept_context.to(device=x.device, dtype=call.dtype).expand(xs.shape[0], -1, -1)
        grid = self.family.token_grid(diffusion_model, x)
        if recording.grid not in (None, grid):
            raise RuntimeError(f"the image token grid changed mid-run from {recording.grid} to {grid}")
        recording.grid = grid
        if len(grid) == 3:
            recording.video_frames = self.family.video_frame_tokens(diffusion_model, x.shape[2])
        label_prompt = {label: prompt for prompt, label in PROMPTS.items()}
        conditioning = self.family.concept_conditioning(call, rows)
        return StreamState(
            diffusion_model=diffusion_model,
            family=self.family,
            recording=recording,
            rows=rows,
            chunk_prompts=[label_prompt[labels[i]] for i in chosen],
            concepts=self.family.embed_concepts(diffusion_model, context, conditioning),
            conditioning=conditioning,
            rope=self.family.concept_rope(diffusion_model, call, self.concept_positions or [0] * context.shape[1]),
            score_tokens=math.prod(grid),
            step=step,
        )

    def _step(self, timestep: Tensor, transformer_options) -> int:
        sigmas = transformer_options.get("sample_sigmas")
        if sigmas is None:  # a lone model call outside a sampler (segmentation): step 0
            return 0
        schedule = self._timestep_of_sigma(sigmas.to(timestep.device)).float().tolist()
        return step_index(float(timestep.flatten()[0]), schedule)

    def run_block(self, index: int, state: StreamState, args: dict, call_block) -> dict:
        """Run the block with an attention override, and advance the concept stream alongside it: each
        concept step runs right after the text layer it reuses, on that call's cast weights
        (nodes/shared_casts.py); steps whose layer was not shared run after the block, as usual."""
        step = ConceptStep(self, index, state, args)
        options = args.get("transformer_options") or {}
        outer_override = options.get("optimized_attention_override")

        def override(func, *attn_args, **attn_kwargs):
            out = attend(outer_override, func, attn_args, attn_kwargs)
            if step.attended is None:  # the block's one joint attention
                step.attend(*attn_args[:3], out)
            return out

        with step.shared_casts().watching():
            result = call_block({**args, "transformer_options": {**options, "optimized_attention_override": override}})
        if step.attended is None:  # the block was skipped (a block cache reused its output): nothing to follow or score
            state.stalled = True
            return result
        step.finish()
        return result



def attend(outer_override, func, args: tuple, kwargs: dict):
    """One attention call, through the override the stream's own displaced (chained, never replaced)."""
    return outer_override(func, *args, **kwargs) if outer_override else func(*args, **kwargs)


class ConceptStep:
    """The concept stream's step through one joint block, shared by both ways of reaching a block
    (ModelFamily.block_entry): the concepts' q/k/v and attention over [concepts; image] once the block's joint
    attention has run (attend), then the scores and the residual and MLP update (finish). The steps that
    reuse a text layer can instead run right after that layer's own call, on its cast weight (shared_casts)."""

    def __init__(self, patch: "ConceptAttentionPatch", index: int, state: StreamState, block_args: dict):
        self.patch, self.index, self.state, self.block_args = patch, index, state, block_args
        self.weights = patch.family.text_stream(state.diffusion_model, index)
        # the concepts are not updated after the last scored block, nor where the text stream ends
        self.last = index == max(patch.layers) or self.weights.ends_here
        self.mlp_layers = list(self.weights.mlp) if isinstance(self.weights.mlp, torch.nn.Sequential) else []
        self.done: dict = {}  # what the concepts' steps computed so far in this block

    @property
    def attended(self):
        return self.done.get("attended")

    @few_row_linears
    def modulations(self):
        if "modulations" not in self.done:
            self.done["modulations"] = self.patch.family.concept_modulations(
                self.state.diffusion_model, self.index, self.block_args, self.state.conditioning, self.state.rows)
        return self.done["modulations"]

    def shared_casts(self) -> SharedCasts:
        """The steps that run right after the text layer they reuse, while the block runs."""
        shared, weights, done = SharedCasts(), self.weights, self.done
        for layer in self.patch.family.modulation_layers(self.state.diffusion_model, self.index):
            shared.after(layer, self.modulations)
        if isinstance(weights.qkv, torch.nn.Module):  # separate q/k/v layers: the concepts' q/k/v come later
            shared.after(weights.qkv, lambda: done.setdefault(
                "qkv", few_row_linears(concept_qkv)(self.state.concepts, self.modulations()[0], weights, self.state.rope)))
        if not self.last:
            shared.after(weights.proj, self.after_attention)
            for position, layer in enumerate(self.mlp_layers):
                if isinstance(getattr(layer, "weight", None), Tensor):
                    shared.after(layer, lambda at=position: self.through_mlp(at))
        return shared

    @few_row_linears
    def attend(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor) -> None:
        """The concepts over [concepts; image], from the block's joint attention (q/k/v and output as the
        attention call got and returned them)."""
        state, family, rows = self.state, self.patch.family, self.state.rows
        image = family.image_attention(state.diffusion_model, self.index, q[rows], k[rows], v[rows], out[rows],
                                       family.text_tokens(self.block_args), state.score_tokens)
        self.done["attended"] = attend_concepts(state.concepts, self.modulations()[0], self.weights, image,
                                                state.score_tokens, rope=state.rope, qkv=self.done.get("qkv"))
        if self.last and self.patch.stop_after_last_layer:
            # only the maps are wanted: skip the rest of this block and everything after it
            self.add_scores()
            raise StopAfterLastLayer()

    @few_row_linears
    def finish(self) -> None:
        """The block's scores, where it is a chosen layer, and the concepts' update for the next block."""
        if self.index in self.patch.layers:
            self.add_scores()
        if not self.last:
            self.after_attention()
            self.through_mlp(len(self.mlp_layers))
            self.state.concepts = mlp_residual(self.done["residual"], self.done["mlp"], self.modulations()[1])

    @few_row_linears
    def after_attention(self) -> None:
        """The concepts' attention residual (through the projection), once."""
        done = self.done
        if "residual" not in done and "attended" in done:
            done["residual"] = attention_residual(self.state.concepts, done["attended"].outputs,
                                                  self.modulations()[0], self.weights.proj)

    @few_row_linears
    def through_mlp(self, upto: int) -> None:
        """The concepts through the MLP's layers up to and including `upto` (all of them past the end, or the
        whole MLP where it is not a sequence of layers); done["mlp"] is its output once complete."""
        done, weights, mlp_layers = self.done, self.weights, self.mlp_layers
        if "residual" not in done or "mlp" in done:
            return
        if not mlp_layers:
            done["mlp"] = weights.mlp(mlp_input(done["residual"], self.modulations()[1], weights.norm2))
            return
        value = done.get("mlp_value")
        if value is None:
            value = mlp_input(done["residual"], self.modulations()[1], weights.norm2)
        for layer in mlp_layers[done.get("mlp_next", 0):upto + 1]:
            value = layer(value)
        done["mlp_value"], done["mlp_next"] = value, min(upto + 1, len(mlp_layers))
        if done["mlp_next"] == len(mlp_layers):
            done["mlp"] = value

    def add_scores(self) -> None:
        """Fold this layer's scores in: each prompt's chunks of the batch average into one map."""
        state, concept = self.state, self.attended
        state.scored = True
        state.recording.steps.add(state.step)
        chunk_prompts = state.chunk_prompts
        for space, scores in (("output", concept.output_scores), ("cross_attention", concept.cross_attention_scores)):
            chunks = scores.reshape(len(chunk_prompts), -1, *scores.shape[1:])
            for prompt, aggregator in state.recording.aggregators.items():
                mine = [i for i, chunk_prompt in enumerate(chunk_prompts) if chunk_prompt == prompt]
                if len(mine) == len(chunk_prompts):
                    aggregator.add(space, chunks.mean(dim=0))
                elif mine:
                    aggregator.add(space, chunks[mine].mean(dim=0))


class AttentionEntry:
    """The stream's way into joint blocks that have no patches_replace entry (block_entry "attention"): one
    attention override in the model call's transformer_options. The call's joint attention calls are its
    blocks' in order (call i is block i); up to the last chosen block, each runs the block's ConceptStep right
    after the attention returns. Its scores and the concepts' update (finish) wait for the next block's attention
    call, by which time the block's own MLP modulation has run (a family may read it, ModelFamily.watch_call).
    The concepts' steps cast the text layers' weights again (no shared casts)."""

    def __init__(self, patch: "ConceptAttentionPatch", state: StreamState, outer_override):
        self.patch, self.state, self.outer_override = patch, state, outer_override
        self.calls = 0
        self.pending: ConceptStep | None = None  # the last block attended and not yet finished

    def __call__(self, func, *args, **kwargs):
        out = attend(self.outer_override, func, args, kwargs)
        index, self.calls = self.calls, self.calls + 1
        self.finish_pending()
        if index <= max(self.patch.layers):
            # the family reads what it needs (text tokens, ...) from the attention call's arguments by name
            q, k, v = args[:3]
            call_args = {**kwargs, "conditioning": self.state.conditioning}
            step = ConceptStep(self.patch, index, self.state, {**call_args, "q": q, "k": k, "v": v})
            step.attend(q, k, v, out)
            # the finish waits for the next block: keep none of this block's full-size q/k/v alive until then
            step.block_args = call_args
            self.pending = step
        return out

    def finish_pending(self) -> None:
        """Finish the block attended last (also once the model call returns)."""
        step, self.pending = self.pending, None
        if step is not None:
            step.finish()


def stream_state(args: dict, patch: ConceptAttentionPatch) -> StreamState | None:
    """This patch's stream for the current model call, if the call opened one."""
    return (args.get("transformer_options") or {}).get(STATE_KEY, {}).get(patch)


def run_displaced(previous, args: dict, extra: dict) -> dict:
    """Run the replacement this one displaced, else ComfyUI's own block."""
    return previous(args, extra) if previous is not None else extra["original_block"](args)


class SharedAcrossClones:
    """ComfyUI deep-copies model_options when a node clones the MODEL (before 0.33): a copied replacement would
    look for its own copy of the patch, which no sampling run opens. The clones share the one patch."""

    def __deepcopy__(self, memo):
        return self


class BlockPatch(SharedAcrossClones):
    """The patches_replace entry for one double block; chains any replacement it displaced."""

    def __init__(self, patch: ConceptAttentionPatch, index: int, previous):
        self.patch = patch
        self.index = index
        self.previous = previous

    def __call__(self, args: dict, extra: dict) -> dict:
        def call_block(block_args):
            return run_displaced(self.previous, block_args, extra)

        state = stream_state(args, self.patch)
        if state is None or state.stalled:
            return call_block(args)
        state.returned = self.patch.run_block(self.index, state, args, call_block)
        return state.returned


class ReleaseReturnedPatch(SharedAcrossClones):
    """A replacement after the stream: empties the dict the previous replacement returned (ComfyUI
    has read it by now), then runs the block or the replacement it displaced. On a double block its
    own dict is released in turn at the first single block."""

    def __init__(self, patch: ConceptAttentionPatch, previous, release_own_later: bool):
        self.patch = patch
        self.previous = previous
        self.release_own_later = release_own_later

    def __call__(self, args: dict, extra: dict) -> dict:
        state = stream_state(args, self.patch)
        if state is not None and state.returned is not None:
            state.returned.clear()
            state.returned = None
        result = run_displaced(self.previous, args, extra)
        if state is not None and self.release_own_later:
            state.returned = result
        return result
