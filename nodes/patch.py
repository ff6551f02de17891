"""Installs the concept stream on a cloned ComfyUI model, for any ModelFamily (nodes/family.py).

A DIFFUSION_MODEL wrapper opens a per-call stream state (concept tokens, modulation vector,
which batch rows are the positive prompt); each joint block up to the last chosen one gets a
patches_replace entry that runs ComfyUI's own block with an attention override. The override
sees the joint attention's q/k/v and output as the block computes them, so the concept queries
reuse them instead of recomputing anything, and the image and text streams are untouched.
Previous replacements and overrides on the model are chained, never replaced.

Where a family's forward keeps the last replacement's returned dict alive (Flux's forward_orig), the
blocks it names get replacements too, which only empty that dict (family.release_after_stream).
"""

from dataclasses import dataclass

import comfy.patcher_extension
import torch
from torch import Tensor

from ..ca_core.aggregate import ConceptScoreAggregator
from ..ca_core.layers import step_index
from ..ca_core.maps import ConceptMaps, token_grid_maps
from ..ca_core.stream import attend_concepts, update_concepts

STATE_KEY = "concept_attention_stream"
WRAPPER_KEY = "concept_attention"


class StopAfterLastLayer(Exception):
    """Raised after the last chosen block when only the maps are wanted (segmentation)."""


@dataclass
class StreamState:
    """One model call's concept stream; lives only inside transformer_options of that call."""

    diffusion_model: object
    family: object
    rows: slice | Tensor  # batch rows of the positive prompt (a slice when contiguous: no copies)
    chunks: int  # how many positive chunks those rows hold (averaged into one map)
    concepts: Tensor  # [rows, K, C]
    conditioning: object  # the family's concept modulation input for these rows
    rope: object  # the concepts' RoPE (None: positions zero)
    score_tokens: int
    returned: dict | None = None  # what the last double-block replacement handed back to ComfyUI


class ConceptAttentionPatch:
    def __init__(self, family, concept_context: Tensor, layers: tuple[int, ...], steps: tuple[int, int],
                 softmax: bool = True, stop_after_last_layer: bool = False, concept_positions: list[int] | None = None):
        self.family = family
        self.concept_context = concept_context
        self.concept_positions = concept_positions
        self.layers = layers
        self.steps = steps
        self.stop_after_last_layer = stop_after_last_layer
        self.aggregator = ConceptScoreAggregator(softmax=softmax)
        self.grid: tuple[int, int] | None = None
        self.contributing_steps: set[int] = set()
        self._timestep_of_sigma = None

    def install(self, model):
        """Patch a model.clone() in place; the caller's model is never touched."""
        self._timestep_of_sigma = model.get_model_object("model_sampling").timestep
        transformer_options = model.model_options.get("transformer_options", {})
        previous = transformer_options.get("patches_replace", {}).get("dit", {})
        diffusion_model = model.get_model_object("diffusion_model")
        last = max(self.layers)
        for index in range(last + 1):
            block_patch = BlockPatch(self, index, previous.get(("double_block", index)))
            model.set_model_patch_replace(block_patch, "dit", "double_block", index)
        for following in self.family.release_after_stream(diffusion_model, last):
            release = ReleaseReturnedPatch(self, previous.get(following), following[0] == "double_block")
            model.set_model_patch_replace(release, "dit", *following)
        hook = getattr(comfy.patcher_extension.WrappersMP, self.family.hook)
        model.add_wrapper_with_key(hook, WRAPPER_KEY, self.wrap_model_call)
        return model

    def wrap_model_call(self, executor, *args, **kwargs):
        call = self.family.bind_call(executor, args, kwargs)
        state = self._open_stream(call)
        if state is None:
            return executor(*args, **kwargs)
        # keyed by patch, so a second concept patch on the same model keeps its own stream
        options = call.transformer_options
        args, kwargs = call.with_transformer_options({**options, STATE_KEY: {**options.get(STATE_KEY, {}), self: state}})
        return executor(*args, **kwargs)

    def _open_stream(self, call) -> StreamState | None:
        x, transformer_options = call.x, call.transformer_options
        step = self._step(call.timestep, transformer_options)
        if not self.steps[0] <= step < self.steps[1]:
            return None
        labels = transformer_options.get("cond_or_uncond") or [0]
        chunk = x.shape[0] // len(labels)
        positive = [i for i, label in enumerate(labels) if label == 0]
        if not positive:
            return None
        if positive == list(range(positive[0], positive[-1] + 1)):
            rows = slice(positive[0] * chunk, (positive[-1] + 1) * chunk)
        else:
            rows = torch.cat([torch.arange(i * chunk, (i + 1) * chunk) for i in positive]).to(x.device)
        diffusion_model = call.diffusion_model
        xs = x[rows]
        context = self.concept_context.to(device=x.device, dtype=x.dtype).expand(xs.shape[0], -1, -1)
        grid = self.family.token_grid(diffusion_model, x)
        if self.grid not in (None, grid):
            raise RuntimeError(f"the image token grid changed mid-run from {self.grid} to {grid}")
        self.grid = grid
        self.contributing_steps.add(step)
        return StreamState(
            diffusion_model=diffusion_model,
            family=self.family,
            rows=rows,
            chunks=len(positive),
            concepts=self.family.embed_concepts(diffusion_model, context),
            conditioning=self.family.concept_conditioning(call, rows),
            rope=self.family.concept_rope(diffusion_model, call, self.concept_positions or [0] * context.shape[1]),
            score_tokens=grid[0] * grid[1],
        )

    def _step(self, timestep: Tensor, transformer_options) -> int:
        sigmas = transformer_options.get("sample_sigmas")
        if sigmas is None:  # a lone model call outside a sampler (segmentation): step 0
            return 0
        schedule = self._timestep_of_sigma(sigmas.to(timestep.device)).float().tolist()
        return step_index(float(timestep.flatten()[0]), schedule)

    def run_block(self, index: int, state: StreamState, args: dict, call_block) -> dict:
        """Run the block with an attention override, then advance the concept stream."""
        family, diffusion_model = self.family, state.diffusion_model
        weights = family.text_stream(diffusion_model, index)
        attn_mod, mlp_mod = family.concept_modulations(diffusion_model, index, args, state.conditioning, state.rows)
        text_tokens = family.text_tokens(args)
        last = index == max(self.layers)
        options = args.get("transformer_options") or {}
        outer_override = options.get("optimized_attention_override")
        attended = []

        def override(func, *attn_args, **attn_kwargs):
            out = outer_override(func, *attn_args, **attn_kwargs) if outer_override else func(*attn_args, **attn_kwargs)
            if not attended:  # the block's one joint attention
                q, k, v = attn_args[:3]
                image = family.image_attention(diffusion_model, index, q[state.rows], k[state.rows], v[state.rows],
                                               out[state.rows], text_tokens)
                attended.append(attend_concepts(state.concepts, attn_mod, weights, image, state.score_tokens,
                                                rope=state.rope))
                if last and self.stop_after_last_layer:
                    # only the maps are wanted: skip the rest of this block and everything after it
                    self._add_scores(attended[0], state.chunks)
                    raise StopAfterLastLayer()
            return out

        result = call_block({**args, "transformer_options": {**options, "optimized_attention_override": override}})
        if not attended:
            raise RuntimeError(f"joint block {index} ran no attention through ComfyUI's attention function")
        concept = attended[0]
        if index in self.layers:
            self._add_scores(concept, state.chunks)
        if not last:
            state.concepts = update_concepts(state.concepts, concept.outputs, attn_mod, mlp_mod, weights)
        return result

    def _add_scores(self, concept, chunks: int) -> None:
        """Fold one layer's scores in, averaging the positive chunks of the batch into one map."""
        for space, scores in (("output", concept.output_scores), ("cross_attention", concept.cross_attention_scores)):
            self.aggregator.add(space, scores.reshape(chunks, -1, *scores.shape[1:]).mean(dim=0))

    def concept_maps(self, names: list[str], image_size: tuple[int, int], space: str, token_pixels: int) -> ConceptMaps:
        if self.aggregator.contributions == 0:
            raise RuntimeError(
                f"no concept maps were made: steps {self.steps[0]}-{self.steps[1] - 1} never ran; "
                "widen the step range"
            )
        return ConceptMaps(
            names=names,
            maps=token_grid_maps(self.aggregator.mean("output"), self.grid).cpu(),
            cross_attention_maps=token_grid_maps(self.aggregator.mean("cross_attention"), self.grid).cpu(),
            image_size=image_size,
            token_pixels=token_pixels,
            space=space,
            layers=self.layers,
            steps=tuple(sorted(self.contributing_steps)),
            softmax=self.aggregator.softmax,
        )


def stream_state(args: dict, patch: ConceptAttentionPatch) -> StreamState | None:
    """This patch's stream for the current model call, if the call opened one."""
    return (args.get("transformer_options") or {}).get(STATE_KEY, {}).get(patch)


def run_displaced(previous, args: dict, extra: dict) -> dict:
    """Run the replacement this one displaced, else ComfyUI's own block."""
    return previous(args, extra) if previous is not None else extra["original_block"](args)


class BlockPatch:
    """The patches_replace entry for one double block; chains any replacement it displaced."""

    def __init__(self, patch: ConceptAttentionPatch, index: int, previous):
        self.patch = patch
        self.index = index
        self.previous = previous

    def __call__(self, args: dict, extra: dict) -> dict:
        def call_block(block_args):
            return run_displaced(self.previous, block_args, extra)

        state = stream_state(args, self.patch)
        if state is None:
            return call_block(args)
        state.returned = self.patch.run_block(self.index, state, args, call_block)
        return state.returned


class ReleaseReturnedPatch:
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
