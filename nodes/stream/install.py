"""Installs the concept stream on a cloned ComfyUI model, for any ModelFamily (nodes/families/base.py).

The family's wrapper (Hook: DIFFUSION_MODEL, or APPLY_MODEL) opens a per-call StreamState (concept tokens,
their modulation input, which batch rows are the chosen prompts) in the call's transformer_options; the
blocks are reached through the family's BlockEntry (step.py). An OUTER_SAMPLE wrapper gives every sampling run
that uses the model its own Recording, and files it with the latent the run returned (recording.py), so that
any sampler node can run the patched model and a collector finds the maps of the very run that made its LATENT.
"""

import logging

import comfy.patcher_extension
import torch
from torch import Tensor

from ...ca_core.aggregate import softmax_over
from ...ca_core.few_rows import few_row_linears
from ...ca_core.layers import step_index
from ..families.base import MODEL_CALL_OPTIONS, BlockEntry
from .context_windows import ContextWindows
from .recording import PROMPTS, RunRecordings, check_guider_runs_negative, step_range
from .step import STATE_KEY, AttentionEntry, BlockPatch, ReleaseReturnedPatch, StreamPlan, StreamState

WRAPPER_KEY = "concept_attention"
# How ComfyUI's TorchCompileModel (comfy_api.torch_helpers, also used by compile nodes of other packs) marks a
# compiled MODEL: an APPLY_MODEL wrapper and its compile options.
COMPILE_WRAPPER_KEY = "torch.compile"
COMPILE_OPTIONS_KEY = "torch_compile_kwargs"


def is_compiled(model) -> bool:
    """Whether a MODEL carries ComfyUI's torch.compile wrapper."""
    wrappers = model.wrappers.get(comfy.patcher_extension.WrappersMP.APPLY_MODEL, {})
    return COMPILE_OPTIONS_KEY in model.model_options or bool(wrappers.get(COMPILE_WRAPPER_KEY))


class CompiledModelError(ValueError):
    pass


class ConceptAttentionPatch(RunRecordings):
    def __init__(self, family, concept_context: Tensor, layers: tuple[int, ...], steps: tuple[int, int],
                 softmax: bool = True, stop_after_last_layer: bool = False, concept_positions: list[int] | None = None,
                 prompts: tuple[str, ...] = ("positive",), names: list[str] | None = None, space: str = "output"):
        concepts = concept_context.shape[1]
        super().__init__(names=names or [f"concept {i}" for i in range(concepts)], layers=layers, steps=steps,
                         softmax=softmax_over(concepts, softmax), one_concept_raw=softmax and concepts == 1,
                         prompts=prompts, space=space)  # space: the map space the user chose; both are recorded
        self.family = family
        self.plan = StreamPlan(family, layers, stop_after_last_layer)
        self.concept_context = concept_context
        self.concept_positions = concept_positions
        self._timestep_of_sigma = None

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
        if self.family.block_entry is BlockEntry.PATCHES_REPLACE:  # else the model call's AttentionEntry
            self._install_block_patches(model)
        for name, module in self.family.object_patches(model.get_model_object("diffusion_model")).items():
            model.add_object_patch(f"diffusion_model.{name}", module)
        model.add_wrapper_with_key(self.family.hook.wrapper_type, WRAPPER_KEY, self.wrap_model_call)
        model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.OUTER_SAMPLE, WRAPPER_KEY,
                                   self.wrap_sampling_run)
        return model

    def _install_block_patches(self, model) -> None:
        """A patches_replace entry per block up to the last chosen one, chaining what it displaces; and where the
        family's forward keeps the last returned dict alive, entries that release it (release_after_stream)."""
        transformer_options = model.model_options.get("transformer_options", {})
        previous = transformer_options.get("patches_replace", {}).get("dit", {})
        last = self.plan.last_layer
        for index in range(last + 1):
            model.set_model_patch_replace(BlockPatch(self.plan, index, previous.get(("double_block", index))),
                                          "dit", "double_block", index)
        diffusion_model = model.get_model_object("diffusion_model")
        for following in self.family.release_after_stream(diffusion_model, last):
            release = ReleaseReturnedPatch(self.plan, previous.get(following), following[0] == "double_block")
            model.set_model_patch_replace(release, "dit", *following)

    def wrap_sampling_run(self, executor, *args, **kwargs):
        """One sampling run (any sampler node, any guider): record it, and file it with its output."""
        if self.open_recording is not None:  # a recording held open around several runs
            run_settings(self.open_recording, executor, args, kwargs)
            return executor(*args, **kwargs)
        sampled = getattr(executor.class_obj, "model_patcher", None)  # the guider's MODEL
        if sampled is not None and is_compiled(sampled):
            raise CompiledModelError(
                "this MODEL was compiled (TorchCompileModel or another compile node) after the Concept Attention "
                "node: a compiled graph cannot run the concept stream. Move the compile node before the Concept "
                "Attention node (the maps' run then uses the model uncompiled, other samplers stay compiled), or "
                "bypass it"
            )
        sigmas = args[3] if len(args) > 3 else kwargs.get("sigmas")  # outer_sample(noise, latent, sampler, sigmas..)
        run_steps = len(sigmas) - 1 if sigmas is not None else None
        # what the Sampler node refuses before sampling, refused here before the run's first model call
        step_range(*self.steps, run_steps)
        check_guider_runs_negative(self.prompt_choice, executor.class_obj)
        windows = ContextWindows.of_run(executor.class_obj, args[0] if args else kwargs.get("noise"))
        with self.recording(run_steps=run_steps) as recording:
            run_settings(recording, executor, args, kwargs, windows)
            output = executor(*args, **kwargs)
        self.recorder.file(recording, output)
        return output

    def wrap_model_call(self, executor, *args, **kwargs):
        call = self.family.bind_call(executor, args, kwargs)
        state = self._open_stream(call)
        if state is None:
            return executor(*args, **kwargs)
        # keyed by plan, so a second concept patch on the same model keeps its own stream
        options = {**call.transformer_options}
        options[STATE_KEY] = {**options.get(STATE_KEY, {}), self.plan: state}
        entry = None
        if self.family.block_entry is BlockEntry.ATTENTION:
            # chain an override already set where the model's attention would have run it, never where it would not
            outer = options.get("optimized_attention_override") if self.family.passes_attention_options else None
            entry = AttentionEntry(self.plan, state, outer)
            options["optimized_attention_override"] = entry
        args, kwargs = call.with_transformer_options(options)
        call_options = MODEL_CALL_OPTIONS.set(options)
        try:
            with self.family.watch_call(call.diffusion_model, state.conditioning):
                output = executor(*args, **kwargs)
                if entry is not None:  # the last block's update, while what the family watched is still at hand
                    entry.finish_pending()
        finally:
            if entry is not None:
                entry.close()
            MODEL_CALL_OPTIONS.reset(call_options)
        if not state.scored:  # the call returned without running the chosen blocks: a step-skipping cache
            with state.recording.lock:
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
        with recording.lock:
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
        grid = call_grid = self.family.token_grid(diffusion_model, x)
        window, latent_frames = None, x.shape[2] if x.ndim == 5 else None
        if transformer_options.get("context_window") is not None:  # a context window's frames of a longer clip
            if recording.windows is None:
                raise RuntimeError("this model call samples a context window, but its sampling run named no context "
                                   "handler to place the window's frames with: sample with ComfyUI's own guider")
            window = recording.windows.token_window(transformer_options["context_window"], call_grid, x)
            grid, latent_frames = recording.windows.grid(grid), recording.windows.frames
        with recording.lock:
            if recording.grid not in (None, grid):
                raise RuntimeError(f"the image token grid changed mid-run from {recording.grid} to {grid}")
            recording.grid = grid
            if len(grid) == 3:
                recording.video_frames = self.family.video_frame_tokens(diffusion_model, latent_frames)
        label_prompt = {label: prompt for prompt, label in PROMPTS.items()}
        conditioning = self.family.concept_conditioning(call, rows)
        positions = self.concept_positions or [0] * context.shape[1]
        return StreamState(
            diffusion_model=diffusion_model,
            recording=recording,
            rows=rows,
            chunk_prompts=[label_prompt[labels[i]] for i in chosen],
            concepts=self.embedded_concepts(recording, diffusion_model, context, conditioning, positions),
            conditioning=conditioning,
            rope=self.family.concept_rope(diffusion_model, call, positions),
            score_tokens=self.family.scored_image_tokens(call, call_grid),
            window=window,
            step=step,
            concept_count=context.shape[1],
        )

    def embedded_concepts(self, recording, diffusion_model, context: Tensor, conditioning, positions: list[int]):
        """The concepts in the text stream's width (family.embed_concepts). Where the embedding takes nothing of the
        call and the run's weights stay as they are, it is worked out once per sampling run: its refiners and
        adapters (Krea 2's txtfusion over 12 tapped layers, Z-Image's context refiner) would give the same rows at
        every step. A run with hooks (whose keyframes patch weights in place mid-run) embeds them at every call."""
        if self.family.concept_embedding_per_call or not recording.steady_weights:
            return self.family.embed_concepts(diffusion_model, context, conditioning, positions)
        key = (id(diffusion_model), tuple(context.shape), context.dtype, context.device, tuple(positions))
        with recording.lock:
            embedded = recording.embedded_concepts.get(key)
        if embedded is None:
            embedded = self.family.embed_concepts(diffusion_model, context, conditioning, positions)
            with recording.lock:
                recording.embedded_concepts[key] = embedded
        return embedded.clone()  # the stream updates its concepts block by block

    def _step(self, timestep: Tensor, transformer_options) -> int:
        sigmas = transformer_options.get("sample_sigmas")
        if sigmas is None:  # a lone model call outside a sampler (segmentation): step 0
            return 0
        schedule = self._timestep_of_sigma(sigmas.to(timestep.device)).float().tolist()
        return step_index(float(timestep.flatten()[0]), schedule)


def run_settings(recording, executor, args: tuple, kwargs: dict, windows=None) -> None:
    """What a recording needs to know of the sampling run about to start: its context windows (refused before the
    run where they cannot be mapped; `windows` where already worked out) and whether its weights stay as they are."""
    if windows is None:
        windows = ContextWindows.of_run(executor.class_obj, args[0] if args else kwargs.get("noise"))
    recording.windows = windows
    recording.steady_weights = not run_has_hooks(executor.class_obj)


def run_has_hooks(guider) -> bool:
    """Whether a sampling run's conditioning or model carries hooks (Create Hook LoRA, hook keyframes): their
    weights are patched into the model, in place, as the run goes."""
    conds = getattr(guider, "original_conds", None) or getattr(guider, "conds", None) or {}
    if any(cond.get("hooks") is not None for group in conds.values() for cond in group if isinstance(cond, dict)):
        return True
    patcher = getattr(guider, "model_patcher", None)
    return bool(getattr(patcher, "forced_hooks", None))
