"""The concept stream's step through one joint block, and the two ways into a block (BlockEntry).

A model call's StreamState holds the concept tokens as they flow from block to block. Each joint block up to
the last chosen one runs a ConceptStep: the concepts' q/k/v and attention over [concepts; image] at the block's
joint attention (attend; where their q/k/v rode in the text's own call, the attention runs before the image's,
attend_ahead, so that only its outputs wait through the block's peak), then the scores and the residual and MLP
update (finish). The steps that reuse a text layer run right after that layer's own call, on its cast weight
(shared_casts.py).
- BlockEntry.PATCHES_REPLACE: a patches_replace entry per block (BlockPatch) runs ComfyUI's own block with an
  attention override, which sees the joint attention's q/k/v and output as the block computes them.
- BlockEntry.ATTENTION: one attention override for the model call (AttentionEntry); the call's i-th joint
  attention call is block i's.
Previous replacements and overrides are chained, never replaced.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

from ...ca_core.aggregate import TokenWindow
from ...ca_core.few_rows import few_row_linears
from ...ca_core.stream import (
    ConceptAttentionResult,
    ModulationParams,
    attend_ahead,
    attend_concepts,
    attention_residual,
    concept_qkv,
    mlp_input,
    mlp_residual,
    qkv_input,
)
from .recording import Recording
from .shared_casts import SharedCasts, first_layer_input, linear_layers

STATE_KEY = "concept_attention_stream"


class StopAfterLastLayer(Exception):
    """Raised after the last chosen block when only the maps are wanted (segmentation)."""


@dataclass(frozen=True, eq=False)  # compared by identity: two patches never share a stream
class StreamPlan:
    """What every block's step needs to know of the patch: the family, the chosen blocks, and whether the
    model may stop after the last of them (segmentation wants only the maps)."""

    family: object  # a ModelFamily (nodes/families/base.py)
    layers: tuple[int, ...]
    stop_after_last_layer: bool = False

    @property
    def last_layer(self) -> int:
        return max(self.layers)


@dataclass
class StreamState:
    """One model call's concept stream; lives only inside transformer_options of that call."""

    diffusion_model: object
    recording: Recording
    rows: slice | Tensor  # batch rows of the chosen prompts (a slice when contiguous: no copies)
    chunk_prompts: list[str]  # the prompt of each chunk those rows hold (a prompt's chunks average into one map)
    concepts: Tensor  # [rows, K, C]
    conditioning: object  # the family's concept modulation input for these rows
    rope: object  # the concepts' RoPE (None: positions zero)
    score_tokens: int | Tensor  # the generated image's tokens (ModelFamily.scored_image_tokens)
    step: int
    returned: dict | None = None  # what the last double-block replacement handed back to ComfyUI
    scored: bool = False  # a chosen block ran and was scored in this call
    # a block of this call ran no joint attention (a cache skipped it): the concepts cannot follow the blocks
    # after it, so this call scores nothing more
    stalled: bool = False
    # how many of the stream's first tokens are the concepts, one each, and scored; None: every token (a family may
    # carry more tokens per concept: HiDream's Llama ones, ModelFamily.embed_concepts)
    concept_count: int | None = None
    window: TokenWindow | None = None  # a context window's place in the whole clip (context_windows.py)


def stream_state(args: dict, plan: StreamPlan) -> StreamState | None:
    """This plan's stream for the current model call, if the call opened one."""
    return (args.get("transformer_options") or {}).get(STATE_KEY, {}).get(plan)


def attention_output_like(args: tuple, kwargs: dict) -> Tensor | None:
    """A tensor shaped as ComfyUI's attention call optimized_attention(q, k, v, heads, mask, attn_precision,
    skip_reshape, skip_output_reshape) returns, holding no memory (on the meta device): what a family's image_attention
    cuts the image's outputs from, where only the keys and values are wanted. None where the call is not of that
    shape."""
    if len(args) < 3 or not all(isinstance(t, Tensor) for t in args[:3]):
        return None
    q, _, v = args[:3]
    heads = args[3] if len(args) > 3 else kwargs.get("heads")
    skip_reshape = args[6] if len(args) > 6 else kwargs.get("skip_reshape", False)
    skip_output_reshape = args[7] if len(args) > 7 else kwargs.get("skip_output_reshape", False)
    if skip_reshape and q.dim() == 4 and v.dim() == 4:
        batch, heads, tokens, dim = q.shape[0], q.shape[1], q.shape[2], v.shape[-1]
    elif not skip_reshape and q.dim() == 3 and v.dim() in (3, 4) and isinstance(heads, int):
        # values [B, L, H * D], or [B, L, H, D] as SD3's blocks hand them over
        batch, tokens, dim = q.shape[0], q.shape[1], v.shape[2:].numel() // heads
    else:
        return None
    shape = (batch, heads, tokens, dim) if skip_output_reshape else (batch, tokens, heads * dim)
    return torch.empty(shape, dtype=v.dtype, device="meta")


def attend(outer_override, func, args: tuple, kwargs: dict):
    """One attention call, through the override the stream's own displaced (chained, never replaced)."""
    return outer_override(func, *args, **kwargs) if outer_override else func(*args, **kwargs)


class ConceptStep:
    """The concepts through joint block `index`, shared by both block entries."""

    def __init__(self, plan: StreamPlan, index: int, state: StreamState, block_args: dict):
        self.plan, self.index, self.state, self.block_args = plan, index, state, block_args
        self.weights = plan.family.text_stream(state.diffusion_model, index)
        # the concepts are not updated after the last scored block, nor where the text stream ends
        self.last = index == plan.last_layer or self.weights.ends_here
        # what the concepts' steps computed so far in this block
        self._modulations: tuple[ModulationParams, ModulationParams] | None = None
        self._tokens: Tensor | None = None
        self.qkv: tuple[Tensor, Tensor, Tensor] | None = None  # made right after the text's own q/k/v layers
        self.attended: ConceptAttentionResult | None = None
        self._ahead: tuple | None = None  # their attention, made before the image's (attend_ahead)
        self.residual: Tensor | None = None  # after the attention's residual update
        self._mlp_input: Tensor | None = None
        self.layers: dict[str, tuple] = {}  # the linear layers of the concepts' qkv, proj and mlp steps
        self.then = None  # run once the concepts' MLP ran on the text's casts
        self.mlp_output: Tensor | None = None

    @few_row_linears
    def modulations(self) -> tuple[ModulationParams, ModulationParams]:
        if self._modulations is None:
            self._modulations = self.plan.family.concept_modulations(
                self.state.diffusion_model, self.index, self.block_args, self.state.conditioning, self.state.rows)
        return self._modulations

    @property
    def tokens(self) -> Tensor:
        """The concept tokens this block runs: the stream's own, then any the family adds for this block alone
        (ModelFamily.block_concepts), which leave with the block."""
        if self._tokens is None:
            self._tokens = self.plan.family.block_concepts(self.state.diffusion_model, self.index,
                                                           self.state.concepts, self.state.conditioning)
        return self._tokens

    def shared_casts(self, before_attention: bool = True, after_attention: bool = True) -> SharedCasts:
        """The steps that run right after the text layers they reuse, while the block runs: those before the
        block's attention (the modulation, q/k/v) and those after it (the projection, the MLP)."""
        shared, weights = SharedCasts(), self.weights
        if before_attention:
            for layer in self.plan.family.modulation_layers(self.state.diffusion_model, self.index):
                shared.after(layer, self.modulations)
            # the concepts' q/k/v are kept for their attention, at the block's joint attention, where that saves a
            # cast; on full-precision weights they are made at the attention, not held through the image's
            self.layers["qkv"] = linear_layers(weights.qkv, weights.qkv_layers)
            shared.after(self.layers["qkv"], self.stage_qkv, rows=self.qkv_rows, cast_only=True)
        if after_attention and not self.last:
            self.layers["proj"] = linear_layers(weights.proj, weights.proj_layers)
            self.layers["mlp"] = linear_layers(weights.mlp, weights.mlp_layers)
            shared.after(self.layers["proj"], self.after_attention, rows=self.proj_rows)
            shared.after(self.layers["mlp"], self.after_mlp, rows=self.mlp_rows)
        return shared

    def after_mlp(self) -> None:
        """The concepts' MLP right after the text's; then whatever waits for it (AttentionEntry: the update)."""
        self.through_mlp()
        if self.then is not None:
            self.then()

    # The concepts' input to the first of a step's layers to run, for the text's own call of it to take along.

    @few_row_linears
    def qkv_rows(self) -> Tensor | None:
        if self.qkv is not None:
            return None
        return first_layer_input(self.weights.qkv, qkv_input(self.tokens, self.modulations()[0], self.weights),
                                 self.layers["qkv"])

    @few_row_linears
    def proj_rows(self) -> Tensor | None:
        if self.attended is None or self.residual is not None:
            return None
        return first_layer_input(self.weights.proj, self.attended.outputs, self.layers["proj"])

    @few_row_linears
    def mlp_rows(self) -> Tensor | None:
        if self.residual is None or self.mlp_output is not None:
            return None
        return first_layer_input(self.weights.mlp, self.mlp_input(), self.layers["mlp"])

    @few_row_linears
    def mlp_input(self) -> Tensor:
        """The concepts' input to the MLP, once their attention's residual is in."""
        if self._mlp_input is None:
            self._mlp_input = mlp_input(self.weights.mlp_source(self.tokens, self.residual), self.modulations()[1],
                                        self.weights.norm2)
        return self._mlp_input

    @few_row_linears
    def stage_qkv(self) -> None:
        """The concepts' q/k/v right after the text's own qkv layer, on its cast weight."""
        if self.qkv is None:
            self.qkv = concept_qkv(self.tokens, self.modulations()[0], self.weights, self.state.rope)

    def attend_ahead(self, attn_args: tuple, attn_kwargs: dict) -> None:
        """Where the concepts' q/k/v were made in the text's own call (a cast shared), their attention over the
        image's keys and values runs before the image's own attention, the peak of the block: only their outputs
        wait through it, not their q/k/v. (Rows of the batch taken by index would copy the image's keys and values
        there: those attend after it.)"""
        state, rows = self.state, self.state.rows
        out_like = attention_output_like(attn_args, attn_kwargs)
        if self.qkv is None or not isinstance(rows, slice) or out_like is None:
            return
        q, k, v = attn_args[:3]
        image = self.plan.family.image_attention(state.diffusion_model, self.index, q[rows], k[rows], v[rows],
                                                 out_like[rows], self.plan.family.text_tokens(self.block_args),
                                                 state.score_tokens)
        self._ahead, self.qkv = attend_ahead(self.qkv, image), None

    @few_row_linears
    def attend(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor) -> None:
        """The concepts over [concepts; image], from the block's joint attention (q/k/v and output as the
        attention call got and returned them)."""
        state, family, rows = self.state, self.plan.family, self.state.rows
        image = family.image_attention(state.diffusion_model, self.index, q[rows], k[rows], v[rows], out[rows],
                                       family.text_tokens(self.block_args), state.score_tokens)
        self.attended = attend_concepts(self.tokens, self.modulations()[0], self.weights, image,
                                        state.score_tokens, rope=state.rope, qkv=self.qkv, attended=self._ahead)
        self.qkv = self._ahead = None
        if self.last and self.plan.stop_after_last_layer and self.state.window is None:
            # only the maps are wanted: skip the rest of this block and everything after it (not in a context
            # window, whose sampler goes on to the next window with this one's output)
            self.add_scores()
            raise StopAfterLastLayer()

    @few_row_linears
    def finish(self) -> None:
        """The block's scores, where it is a chosen layer, and the concepts' update for the next block."""
        if self.index in self.plan.layers:
            self.add_scores()
        if not self.last:
            self.after_attention()
            self.through_mlp()
            carried = self.state.concepts.shape[1]  # the tokens the family added for this block leave with it
            self.state.concepts = mlp_residual(self.weights.mlp_base(self.tokens, self.residual),
                                               self.mlp_output, self.modulations()[1],
                                               self.weights.update_norm)[:, :carried]

    @few_row_linears
    def after_attention(self) -> None:
        """The concepts' attention residual (through the projection), once."""
        if self.residual is None and self.attended is not None:
            self.residual = attention_residual(self.tokens, self.attended.outputs, self.modulations()[0],
                                               self.weights.proj, self.weights.update_norm)

    @few_row_linears
    def through_mlp(self) -> None:
        """The concepts through the MLP, once."""
        if self.residual is not None and self.mlp_output is None:
            self.mlp_output = self.weights.mlp(self.mlp_input())
            self._mlp_input = None

    def add_scores(self) -> None:
        """Fold this layer's scores in: each prompt's chunks of the batch average into one map."""
        state, concept = self.state, self.attended
        state.scored = True
        chunk_prompts = state.chunk_prompts
        folds = []
        for space, scores in (("output", concept.output_scores), ("cross_attention", concept.cross_attention_scores)):
            scores = scores[:, :state.concept_count]
            chunks = scores.reshape(len(chunk_prompts), -1, *scores.shape[1:])
            for prompt, aggregator in state.recording.aggregators.items():
                mine = [i for i, chunk_prompt in enumerate(chunk_prompts) if chunk_prompt == prompt]
                if len(mine) == len(chunk_prompts):
                    folds.append((aggregator, space, chunks.mean(dim=0)))
                elif mine:
                    folds.append((aggregator, space, chunks[mine].mean(dim=0)))
        with state.recording.lock:  # other devices' calls (MultiGPU CFG Split) fold into the same means
            state.recording.steps.add(state.step)
            for aggregator, space, scores in folds:
                aggregator.add(space, scores, state.window)


def run_block(plan: StreamPlan, index: int, state: StreamState, args: dict, call_block) -> dict:
    """Run the block with an attention override, and advance the concept stream alongside it: each concept
    step runs right after the text layer it reuses, on that call's cast weights (shared_casts.py); steps whose
    layer was not shared run after the block, as usual."""
    step = ConceptStep(plan, index, state, args)
    options = args.get("transformer_options") or {}
    outer_override = options.get("optimized_attention_override")

    def override(func, *attn_args, **attn_kwargs):
        if step.attended is not None:
            return attend(outer_override, func, attn_args, attn_kwargs)
        step.attend_ahead(attn_args, attn_kwargs)  # the block's one joint attention
        out = attend(outer_override, func, attn_args, attn_kwargs)
        step.attend(*attn_args[:3], out)
        return out

    with step.shared_casts().watching():
        result = call_block({**args, "transformer_options": {**options, "optimized_attention_override": override}})
    if step.attended is None:  # the block was skipped (a block cache reused its output): nothing to follow or score
        state.stalled = True
        return result
    step.finish()
    return result


class AttentionEntry:
    """The stream's way into joint blocks that have no patches_replace entry (BlockEntry.ATTENTION): one
    attention override in the model call's transformer_options. The call's attention calls are its blocks' joint
    attentions in order, as the family numbers them (ModelFamily.block_of_attention_call: call i is block i, save
    where refiners attend first); up to the last chosen block, each runs the block's ConceptStep right after the
    attention returns.

    The concepts' steps run on the casts of the text's own calls of the layers (shared_casts.py): the next block's
    step is made ahead of it (the first block's when the model call begins, each next one's once the concepts'
    update of the block before is in), watching its modulation and q/k/v layers; from its attention to its end, its
    projection and MLP layers. Once the concepts' MLP has run, the block is finished (its scores and the concepts'
    update): the block's own MLP modulation has run by then (a family may read it, ModelFamily.watch_call). Where
    a layer is not shared (a kernel of its own), the finish waits for the next block's attention call, and the
    steps run as usual."""

    def __init__(self, plan: StreamPlan, state: StreamState, outer_override):
        self.plan, self.state, self.outer_override = plan, state, outer_override
        self.calls = 0
        self.pending: ConceptStep | None = None  # the last block attended and not yet finished
        self.upcoming: ConceptStep | None = None  # the next block's step, made before its attention
        self.watching: list[SharedCasts] = []
        self._prepare(0)

    def __call__(self, func, *args, **kwargs):
        number, self.calls = self.calls, self.calls + 1
        index = self.plan.family.block_of_attention_call(number, kwargs, self.state.conditioning)
        if index is None:  # a refiner's attention, outside the joint blocks
            return attend(self.outer_override, func, args, kwargs)
        self.finish_pending()  # the block before, where its MLP was not shared: before this block's peak
        step, self.upcoming = self.upcoming, None
        self.close()
        if index > self.plan.last_layer:
            return attend(self.outer_override, func, args, kwargs)
        # the family reads what it needs (text tokens, ...) from the attention call's arguments by name
        q, k, v = args[:3]
        call_args = {**kwargs, "conditioning": self.state.conditioning}
        if step is None or step.index != index:
            step = ConceptStep(self.plan, index, self.state, call_args)
        step.block_args = {**call_args, "q": q, "k": k, "v": v}
        step.attend_ahead(args, kwargs)
        out = attend(self.outer_override, func, args, kwargs)
        step.attend(q, k, v, out)
        # the finish waits for the concepts' MLP: keep none of this block's full-size q/k/v alive until then
        step.block_args = call_args
        step.then = self.finish_pending
        self.pending = step
        self._watch(step.shared_casts(before_attention=False))
        return out

    def finish_pending(self) -> None:
        """Finish the block attended last (once the concepts' MLP ran, else at the next block's attention call or
        once the model call returns), and make the next block's step ahead of it."""
        step, self.pending = self.pending, None
        if step is not None:
            self.close()
            step.finish()
            self._prepare(step.index + 1)

    def _prepare(self, index: int) -> None:
        """Block `index`'s step, made before the block runs, watching its modulation and q/k/v layers."""
        if index <= self.plan.last_layer and not self.state.stalled:
            self.upcoming = ConceptStep(self.plan, index, self.state, {"conditioning": self.state.conditioning})
            self._watch(self.upcoming.shared_casts(after_attention=False))

    def _watch(self, casts: SharedCasts) -> None:
        casts.start()
        self.watching.append(casts)

    def close(self) -> None:
        """Stop watching layers (also where the model call raised)."""
        while self.watching:
            self.watching.pop().stop()


def run_displaced(previous, args: dict, extra: dict) -> dict:
    """Run the replacement this one displaced, else ComfyUI's own block."""
    return previous(args, extra) if previous is not None else extra["original_block"](args)


class SharedAcrossClones:
    """ComfyUI deep-copies model_options when a node clones the MODEL (before 0.33): a copied replacement would
    look for its own copy of the plan, which no model call opens. The clones share the one entry."""

    def __deepcopy__(self, memo):
        return self


class BlockPatch(SharedAcrossClones):
    """The patches_replace entry for one double block; chains any replacement it displaced."""

    def __init__(self, plan: StreamPlan, index: int, previous):
        self.plan, self.index, self.previous = plan, index, previous

    def __call__(self, args: dict, extra: dict) -> dict:
        def call_block(block_args):
            return run_displaced(self.previous, block_args, extra)

        state = stream_state(args, self.plan)
        if state is None or state.stalled:
            return call_block(args)
        state.returned = run_block(self.plan, self.index, state, args, call_block)
        return state.returned


class ReleaseReturnedPatch(SharedAcrossClones):
    """A replacement after the stream: empties the dict the previous replacement returned (ComfyUI has read it
    by now), then runs the block or the replacement it displaced. On a double block its own dict is released in
    turn at the first single block (where a family's forward keeps it alive: ModelFamily.release_after_stream)."""

    def __init__(self, plan: StreamPlan, previous, release_own_later: bool):
        self.plan, self.previous, self.release_own_later = plan, previous, release_own_later

    def __call__(self, args: dict, extra: dict) -> dict:
        state = stream_state(args, self.plan)
        if state is not None and state.returned is not None:
            state.returned.clear()
            state.returned = None
        result = run_displaced(self.previous, args, extra)
        if state is not None and self.release_own_later:
            state.returned = result
        return result
