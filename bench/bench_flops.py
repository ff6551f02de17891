"""Analytic multiply-accumulate counts of a Flux forward and of the concept stream.

Counts matmuls and attention only (norms, RoPE, activations are memory-bound noise next to them).
Per token, a double block's stream (qkv 3C^2, proj C^2, MLP 2*r*C^2) and a single block
(linear1 (3+r)C^2, linear2 (1+r)C^2) cost the same 12C^2 at r = 4, so on Flux.1 (19 double, 38
single) the double blocks are about a third of the model.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Geometry:
    hidden: int = 3072
    mlp_ratio: float = 4.0
    depth: int = 19
    single: int = 38
    context_in: int = 4096
    vec_in: int = 768
    latent_channels: int = 16
    patch: int = 2

    def image_tokens(self, side: int) -> int:
        return (side // 8 // self.patch) ** 2


def _block_macs(c: int, r: float, tokens: int) -> float:
    linear = (4 + 2 * r) * c * c * tokens  # qkv + proj + MLP (double stream), or linear1 + linear2 (single)
    attention = 2 * tokens * tokens * c  # q.k^T and attention.v over all heads
    return linear + attention


def forward_macs(g: Geometry, image: int, text: int, batch: int = 1) -> dict[str, float]:
    """One plain model call, split into embed / double / single / final."""
    c, r, tokens = g.hidden, g.mlp_ratio, image + text
    pixels_in = g.latent_channels * g.patch * g.patch
    embed = (pixels_in * c * image + g.context_in * c * text
             + 2 * (256 * c + c * c) + (g.vec_in * c + c * c))  # img_in, txt_in, time/guidance/vector MLPs
    double_mod = 2 * 6 * c * c  # img_mod + txt_mod on the vector
    single_mod = 3 * c * c
    final = 2 * c * c + c * pixels_in * image
    return {
        "embed": batch * embed,
        "double": batch * g.depth * (double_mod + _block_macs(c, r, tokens)),
        "single": batch * g.single * (single_mod + _block_macs(c, r, tokens)),
        "final": batch * final,
    }


def concept_macs(g: Geometry, image: int, concepts: int, last_layer: int, batch: int = 1) -> float:
    """The concept stream through double blocks 0..last_layer (it is updated on all but the last)."""
    c, r, k = g.hidden, g.mlp_ratio, concepts
    vector = 2 * (256 * c + c * c) + (g.vec_in * c + c * c)  # the concept modulation vector
    embed = g.context_in * c * k  # txt_in on the concept embeddings
    per_block = (6 * c * c  # txt_mod on the concept vector
                 + 3 * c * c * k  # qkv
                 + 2 * k * (k + image) * c  # attention over [concepts; image]
                 + 2 * k * image * c)  # output scores and cross-attention scores
    update = (1 + 2 * r) * c * c * k  # proj + MLP, skipped after the last layer
    blocks = last_layer + 1
    return batch * (vector + embed + blocks * per_block + (blocks - 1) * update)


def sampler_ratio(g: Geometry, side: int, text: int, concepts: int, last_layer: int) -> float:
    """Concept Attention Sampler / KSampler per model call."""
    n = g.image_tokens(side)
    plain = sum(forward_macs(g, n, text).values())
    return (plain + concept_macs(g, n, concepts, last_layer)) / plain


def segment_ratio(g: Geometry, side: int, text: int, concepts: int, last_layer: int) -> float:
    """Segment Image's partial pass (embed + double blocks 0..last_layer + stream) / one full forward."""
    n = g.image_tokens(side)
    parts = forward_macs(g, n, text)
    partial = parts["embed"] + parts["double"] * (last_layer + 1) / g.depth + concept_macs(g, n, concepts, last_layer)
    return partial / sum(parts.values())
