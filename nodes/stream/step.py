"""The concept stream's step through one joint block, and the two ways into a block (BlockEntry).

A model call's StreamState holds the concept tokens as they flow from block to block. Each joint block up to
the last chosen one runs a ConceptStep: the concepts' q/k/v and attention over [concepts; image] once the
block's joint attention has run (attend), then the scores and the residual and MLP update (finish). The
steps that reuse a text layer run right after that layer's own call, on its cast weight (shared_casts.py).
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
    attend_concepts,
    attention_residual,
    concept_qkv,
    mlp_input,
    mlp_residual,
    qkv_input,
)
from .recording import Recording
from .shared_casts import SharedCasts

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
        self.mlp_layers = list(self.weights.mlp) if isinstance(self.weights.mlp, torch.nn.Sequential) else []
        # what the concepts' steps computed so far in this block
        self._modulations: tuple[ModulationParams, ModulationParams] | None = None
        self._tokens: Tensor | None = None
        self.qkv: tuple[Tensor, Tensor, Tensor] | None = None  # computed on separate q/k/v layers' own call
        self.attended: ConceptAttentionResult | None = None
        self.residual: Tensor | None = None  # after the attention's residual update
        self.mlp_value: Tensor | None = None  # through the MLP's layers up to mlp_next
        self.mlp_next = 0
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

    def shared_casts(self) -> SharedCasts:
        """The steps that run right after the text layer they reuse, while the block runs."""
        shared, weights = SharedCasts(), self.weights
        for layer in self.plan.family.modulation_layers(self.state.diffusion_model, self.index):
            shared.after(layer, self.modulations)
        if isinstance(weights.qkv, torch.nn.Module):  # the concepts' q/k/v come later, at the joint attention
            shared.after(weights.qkv, self.stage_qkv, rows=self.qkv_rows)
        elif weights.qkv_layers:  # separate q, k and v layers: after the last of them
            shared.after_all(weights.qkv_layers, self.stage_qkv)
        if not self.last:
            shared.after(weights.proj, self.after_attention)
            for position, layer in enumerate(self.mlp_layers):
                if isinstance(getattr(layer, "weight", None), Tensor):
                    shared.after(layer, lambda at=position: self.through_mlp(at),
                                 rows=self.mlp_rows if position == 0 else None)
        return shared

    @few_row_linears
    def qkv_rows(self) -> Tensor | None:
        """The concepts' input to the qkv layer, for the text's own call of it to take along."""
        if self.qkv is not None:
            return None
        return qkv_input(self.tokens, self.modulations()[0], self.weights)

    @few_row_linears
    def mlp_rows(self) -> Tensor | None:
        """The concepts' input to the MLP's first layer, once their attention's residual is in."""
        if self.residual is None or self.mlp_output is not None or self.mlp_next > 0:
            return None
        if self.mlp_value is None:
            self.mlp_value = mlp_input(self.weights.mlp_source(self.tokens, self.residual), self.modulations()[1],
                                       self.weights.norm2)
        return self.mlp_value

    @few_row_linears
    def stage_qkv(self) -> None:
        """The concepts' q/k/v right after the text's own qkv layer, on its cast weight."""
        if self.qkv is None:
            self.qkv = concept_qkv(self.tokens, self.modulations()[0], self.weights, self.state.rope)

    @few_row_linears
    def attend(self, q: Tensor, k: Tensor, v: Tensor, out: Tensor) -> None:
        """The concepts over [concepts; image], from the block's joint attention (q/k/v and output as the
        attention call got and returned them)."""
        state, family, rows = self.state, self.plan.family, self.state.rows
        image = family.image_attention(state.diffusion_model, self.index, q[rows], k[rows], v[rows], out[rows],
                                       family.text_tokens(self.block_args), state.score_tokens)
        self.attended = attend_concepts(self.tokens, self.modulations()[0], self.weights, image,
                                        state.score_tokens, rope=state.rope, qkv=self.qkv)
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
            self.through_mlp(len(self.mlp_layers))
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
    def through_mlp(self, upto: int) -> None:
        """The concepts through the MLP's layers up to and including `upto` (all of them past the end, or the
        whole MLP where it is not a sequence of layers); mlp_output once complete."""
        if self.residual is None or self.mlp_output is not None:
            return
        source = self.weights.mlp_source(self.tokens, self.residual)
        if not self.mlp_layers:
            self.mlp_output = self.weights.mlp(mlp_input(source, self.modulations()[1], self.weights.norm2))
            return
        value = self.mlp_value
        if value is None:
            value = mlp_input(source, self.modulations()[1], self.weights.norm2)
        for layer in self.mlp_layers[self.mlp_next:upto + 1]:
            value = layer(value)
        self.mlp_value, self.mlp_next = value, min(upto + 1, len(self.mlp_layers))
        if self.mlp_next == len(self.mlp_layers):
            self.mlp_output = value

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


class AttentionEntry:
    """The stream's way into joint blocks that have no patches_replace entry (BlockEntry.ATTENTION): one
    attention override in the model call's transformer_options. The call's attention calls are its blocks' joint
    attentions in order, as the family numbers them (ModelFamily.block_of_attention_call: call i is block i, save
    where refiners attend first); up to the last chosen block, each runs the block's ConceptStep right after the
    attention returns. Its scores and the concepts' update (finish) wait for the next block's attention
    call, by which time the block's own MLP modulation has run (a family may read it, ModelFamily.watch_call).
    The concepts' steps cast the text layers' weights again (no shared casts)."""

    def __init__(self, plan: StreamPlan, state: StreamState, outer_override):
        self.plan, self.state, self.outer_override = plan, state, outer_override
        self.calls = 0
        self.pending: ConceptStep | None = None  # the last block attended and not yet finished

    def __call__(self, func, *args, **kwargs):
        out = attend(self.outer_override, func, args, kwargs)
        number, self.calls = self.calls, self.calls + 1
        index = self.plan.family.block_of_attention_call(number, kwargs, self.state.conditioning)
        if index is None:  # a refiner's attention, outside the joint blocks
            return out
        self.finish_pending()
        if index <= self.plan.last_layer:
            # the family reads what it needs (text tokens, ...) from the attention call's arguments by name
            q, k, v = args[:3]
            call_args = {**kwargs, "conditioning": self.state.conditioning}
            step = ConceptStep(self.plan, index, self.state, {**call_args, "q": q, "k": k, "v": v})
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
