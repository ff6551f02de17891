"""The concept stream of one MM-DiT double block (ConceptAttention, Helbling et al. 2025).

K concept tokens reuse the TEXT stream's weights of the block. Their queries attend over
[concept keys; image keys] with [concept values; image values]; image and text tokens never
attend to them, so the generated image does not change. The per-layer saliency score is the dot
product of concept and image attention outputs in the head-concatenated space, before the
output projection.
"""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch
from einops import einsum, rearrange
from torch import Tensor

# Rotates queries and keys [B, H, K, D] by the concepts' RoPE positions.
Rope = Callable[[Tensor, Tensor], tuple[Tensor, Tensor]] | None


class ModulationParams(Protocol):
    shift: Tensor
    scale: Tensor
    gate: Tensor


@dataclass(frozen=True)
class Modulation:
    """ModulationParams as plain tensors [B, 1, C], for families whose blocks return bare chunks (gate None
    where a block has none)."""

    shift: Tensor
    scale: Tensor
    gate: Tensor | None


@dataclass(frozen=True)
class TextStreamWeights:
    """The text-stream modules of one double block, as callables over [B, L, C] tensors.

    qkv returns [B, L, 3 * H * D], queries then keys then values, heads within each. proj, norm2 and mlp
    are None where the text stream ends in this block (its outputs are never used): the concepts are
    scored there and not updated."""

    num_heads: int
    norm1: Callable[[Tensor], Tensor]
    qkv: Callable[[Tensor], Tensor]
    qk_norm: Callable[[Tensor, Tensor, Tensor], tuple[Tensor, Tensor]]
    proj: Callable[[Tensor], Tensor] | None
    norm2: Callable[[Tensor], Tensor] | None
    mlp: Callable[[Tensor], Tensor] | None
    # the MLP's gated output adds to the block's input, not to the attention's residual (AuraFlow's double blocks:
    # the attention reaches the stream through the MLP's input alone)
    mlp_adds_to_input: bool = False
    # a norm on the projection's and the MLP's outputs before their gates (Mochi's sandwich norm); None: none
    update_norm: Callable[[Tensor], Tensor] | None = None
    # the MLP's input comes from the block's input, not from the attention's residual (Boogu's double blocks: the
    # attention and the MLP read the same input; their gated outputs add up)
    mlp_reads_input: bool = False
    # the linear layers a plain-callable qkv, proj or mlp runs (Qwen-Image's separate q, k and v; a projection or
    # MLP with norms around it), whose casts the concepts share (a module's own are found in it)
    qkv_layers: tuple = ()
    proj_layers: tuple = ()
    mlp_layers: tuple = ()

    @property
    def ends_here(self) -> bool:
        return self.proj is None

    def mlp_base(self, block_input: Tensor, after_attention: Tensor) -> Tensor:
        """What the MLP's gated output is added to."""
        return block_input if self.mlp_adds_to_input else after_attention

    def mlp_source(self, block_input: Tensor, after_attention: Tensor) -> Tensor:
        """What the MLP's input is normed and modulated from."""
        return block_input if self.mlp_reads_input else after_attention


@dataclass(frozen=True)
class ImageAttention:
    """What the block's own joint attention computed for the image tokens.

    keys/values: [B, H, N, D] with RoPE already applied to the keys; outputs: [B, N, H*D],
    the image attention outputs before the output projection.
    """

    keys: Tensor
    values: Tensor
    outputs: Tensor


SCORED_TOKENS_AT_ONCE = 8192  # image tokens whose outputs are scored together (a 1024² Flux image: 4096)


@dataclass(frozen=True)
class ConceptAttentionResult:
    outputs: Tensor  # [B, K, H*D] concept attention outputs, before the output projection
    output_scores: Tensor  # [B, K, N] float32, concept . image attention outputs
    cross_attention_scores: Tensor  # [B, K, N] float32, baseline: concept queries . image keys


def modulate(x: Tensor, mod: ModulationParams) -> Tensor:
    return x * (1 + mod.scale) + mod.shift


def qkv_input(concepts: Tensor, attn_mod: ModulationParams, weights: TextStreamWeights) -> Tensor:
    """What the qkv layer takes: the concepts normed and modulated."""
    return modulate(weights.norm1(concepts), attn_mod)


def concept_qkv(concepts: Tensor, attn_mod: ModulationParams, weights: TextStreamWeights, rope: Rope = None
                ) -> tuple[Tensor, Tensor, Tensor]:
    """The concepts' queries, keys and values [B, H, K, D] from the text stream's weights.

    rope rotates queries and keys by the concepts' positions; None where those are zero (Flux.1), since a
    rotation by angle zero is the identity.
    """
    q, k, v = rearrange(
        weights.qkv(qkv_input(concepts, attn_mod, weights)),
        "B K (three H D) -> three B H K D", three=3, H=weights.num_heads,
    )
    q, k = weights.qk_norm(q, k, v)
    if rope is not None:
        q, k = rope(q, k)
    return q, k, v


def attend_concepts(
    concepts: Tensor,
    attn_mod: ModulationParams,
    weights: TextStreamWeights,
    image: ImageAttention,
    score_tokens: int | Tensor | None = None,
    rope: Rope = None,
    qkv: tuple[Tensor, Tensor, Tensor] | None = None,
    attended: tuple[Tensor, Tensor, torch.dtype] | None = None,
) -> ConceptAttentionResult:
    """Concept queries over [concept keys; image keys], and the per-layer scores.

    score_tokens limits the scores to the generated image's tokens: the first score_tokens image
    tokens (reference latents after them), or their indices in grid order where references
    interleave with them; the concepts still attend over every image token.
    qkv: the concepts' concept_qkv, where it was computed already; attended: their attention over these image keys
    and values where it was computed already, before the image's own (attend_ahead).
    """
    if attended is None:
        attended = attend_ahead(qkv if qkv is not None else concept_qkv(concepts, attn_mod, weights, rope), image)
    outputs, cross_attention_scores, dtype = attended

    scored = slice(None) if score_tokens is None else (
        score_tokens if isinstance(score_tokens, Tensor) else slice(score_tokens))
    # float32: at Flux's width the dot products are large and bf16 would blur the softmax. A chunk of tokens at a
    # time: a float32 copy of a 4096² image's outputs [N, C] alone would take 800 MB.
    output_scores = torch.cat([einsum(outputs, chunk.float(), "B K C, B N C -> B K N")
                               for chunk in image.outputs[:, scored].split(SCORED_TOKENS_AT_ONCE, dim=1)], dim=-1)
    return ConceptAttentionResult(outputs.to(dtype), output_scores, cross_attention_scores[..., scored])


def attend_ahead(qkv: tuple[Tensor, Tensor, Tensor], image: ImageAttention) -> tuple[Tensor, Tensor, torch.dtype]:
    """The concepts' attention over [concepts; image keys and values] (concept_attention), and their values' dtype:
    what attend_concepts scores once the image's attention outputs are there. Image outputs are not read."""
    q, k, v = qkv
    return (*concept_attention(q, k, v, image.keys, image.values), v.dtype)


def concept_attention(q: Tensor, k: Tensor, v: Tensor, image_keys: Tensor, image_values: Tensor
                      ) -> tuple[Tensor, Tensor]:
    """softmax(q [k; image keys]^T / sqrt(D)) [v; image values] in float32, heads concatenated [B, K, H*D],
    and the cross-attention baseline [B, K, N] from the same logits.

    The two softmax parts are weighted and summed rather than the image's keys and values concatenated after
    the concepts': that concatenation copies both, per block, which costs the concepts' K queries more than
    their attention does. One batch row at a time keeps the image's [H, N, D] views as strided as the block
    left them (CogVideoX's heads interleave in the token's channels). A large image's keys and values are
    taken to float32 a chunk of tokens at a time (a 4096² Flux image's would take 800 MB each).
    """
    scale = q.shape[-1] ** -0.5
    outputs, cross = [], []
    starts = range(0, image_keys.shape[2], SCORED_TOKENS_AT_ONCE)
    for row in range(q.shape[0]):
        query = q[row].float() * scale
        to_image = torch.cat([query @ image_keys[row, :, start:start + SCORED_TOKENS_AT_ONCE].float().transpose(-1, -2)
                              for start in starts], dim=-1)  # [H, K, N]
        to_concepts = query @ k[row].float().transpose(-1, -2)  # [H, K, K]
        cross.append(to_image.mean(dim=0))  # the baseline: concept queries . image keys, mean over heads
        peak = torch.maximum(to_image.amax(dim=-1, keepdim=True), to_concepts.amax(dim=-1, keepdim=True))
        to_image, to_concepts = to_image.sub_(peak).exp_(), to_concepts.sub_(peak).exp_()
        total = to_image.sum(dim=-1, keepdim=True) + to_concepts.sum(dim=-1, keepdim=True)
        image_part = sum(to_image[..., start:start + SCORED_TOKENS_AT_ONCE]
                         @ image_values[row, :, start:start + SCORED_TOKENS_AT_ONCE].float() for start in starts)
        head_outputs = (image_part + to_concepts @ v[row].float()).div_(total)
        outputs.append(rearrange(head_outputs, "H K D -> K (H D)"))
    return torch.stack(outputs), torch.stack(cross)


def update_concepts(
    concepts: Tensor,
    attention_outputs: Tensor,
    attn_mod: ModulationParams,
    mlp_mod: ModulationParams,
    weights: TextStreamWeights,
) -> Tensor:
    """The text stream's residual and MLP update, applied to the concept tokens."""
    after_attention = attention_residual(concepts, attention_outputs, attn_mod, weights.proj, weights.update_norm)
    mlp_output = weights.mlp(mlp_input(weights.mlp_source(concepts, after_attention), mlp_mod, weights.norm2))
    return mlp_residual(weights.mlp_base(concepts, after_attention), mlp_output, mlp_mod, weights.update_norm)


# update_concepts in its steps, for callers that run them as the block's own layers run
def attention_residual(concepts: Tensor, attention_outputs: Tensor, attn_mod: ModulationParams, proj,
                       update_norm: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    return concepts + attn_mod.gate * normed(proj(attention_outputs), update_norm)


def mlp_input(concepts: Tensor, mlp_mod: ModulationParams, norm2) -> Tensor:
    return modulate(norm2(concepts), mlp_mod)


def mlp_residual(concepts: Tensor, mlp_output: Tensor, mlp_mod: ModulationParams,
                 update_norm: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    return concepts + mlp_mod.gate * normed(mlp_output, update_norm)


def normed(update: Tensor, update_norm: Callable[[Tensor], Tensor] | None) -> Tensor:
    return update if update_norm is None else update_norm(update)
