"""The concept stream against an independent, loop-over-heads rendering of the paper's equations."""

import dataclasses
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from ca_core.stream import (
    ImageAttention,
    TextStreamWeights,
    attend_concepts,
    concept_attention,
    modulate,
    update_concepts,
)

B, K, N, HEADS, DIM = 2, 3, 10, 4, 32
HEAD_DIM = DIM // HEADS
TOL = {"rtol": 1e-5, "atol": 1e-5}


class RMSNorm(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.scale = nn.Parameter(1 + 0.2 * torch.randn(dim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6) * self.scale


class QKNorm(nn.Module):
    """Flux's QKNorm: RMSNorm per head on queries and keys, cast to the values' dtype."""

    def __init__(self, dim):
        super().__init__()
        self.query_norm, self.key_norm = RMSNorm(dim), RMSNorm(dim)

    def forward(self, q, k, v):
        return self.query_norm(q).to(v), self.key_norm(k).to(v)


def _modulation(seed):
    g = torch.Generator().manual_seed(seed)
    return SimpleNamespace(**{name: 0.5 * torch.randn(B, 1, DIM, generator=g) for name in ("shift", "scale", "gate")})


@pytest.fixture
def setup():
    torch.manual_seed(0)
    weights = TextStreamWeights(
        num_heads=HEADS,
        norm1=nn.LayerNorm(DIM, elementwise_affine=False, eps=1e-6),
        qkv=nn.Linear(DIM, 3 * DIM),
        qk_norm=QKNorm(HEAD_DIM),
        proj=nn.Linear(DIM, DIM),
        norm2=nn.LayerNorm(DIM, elementwise_affine=False, eps=1e-6),
        mlp=nn.Sequential(nn.Linear(DIM, 4 * DIM), nn.GELU(approximate="tanh"), nn.Linear(4 * DIM, DIM)),
    )
    image = ImageAttention(
        keys=torch.randn(B, HEADS, N, HEAD_DIM),
        values=torch.randn(B, HEADS, N, HEAD_DIM),
        outputs=torch.randn(B, N, DIM),
    )
    concepts = torch.randn(B, K, DIM)
    with torch.no_grad():
        yield SimpleNamespace(weights=weights, image=image, concepts=concepts,
                              attn_mod=_modulation(1), mlp_mod=_modulation(2))


def _reference_qkv(s):
    """Concept queries, keys, values per head, [B, H, K, D]: the text stream's own projection."""
    w = s.weights
    x = w.norm1(s.concepts) * (1 + s.attn_mod.scale) + s.attn_mod.shift
    q, k, v = w.qkv(x).split(DIM, dim=-1)  # Flux packs [q | k | v], each head-major

    def heads(t):
        return t.reshape(B, K, HEADS, HEAD_DIM).permute(0, 2, 1, 3)

    q, k, v = heads(q), heads(k), heads(v)
    q, k = w.qk_norm.query_norm(q), w.qk_norm.key_norm(k)
    return q, k, v


def _reference(s, score_tokens=None):
    """Equations of ConceptAttention: concept queries over [concept keys; image keys]."""
    q, k, v = _reference_qkv(s)
    n = N if score_tokens is None else score_tokens
    per_head, cross = [], torch.zeros(B, K, n)
    for h in range(HEADS):
        keys = torch.cat([k[:, h], s.image.keys[:, h]], dim=1)  # [B, K+N, D]
        values = torch.cat([v[:, h], s.image.values[:, h]], dim=1)
        logits = q[:, h] @ keys.transpose(1, 2) / math.sqrt(HEAD_DIM)  # [B, K, K+N]
        e = torch.exp(logits - logits.max(dim=-1, keepdim=True).values)
        attn = e / e.sum(dim=-1, keepdim=True)
        per_head.append(attn @ values)  # [B, K, D]
        cross += q[:, h] @ s.image.keys[:, h, :n].transpose(1, 2) / math.sqrt(HEAD_DIM) / HEADS
    outputs = torch.cat(per_head, dim=-1)  # heads concatenated: [B, K, H*D]
    output_scores = torch.zeros(B, K, n)
    for b in range(B):
        for i in range(K):
            for j in range(n):
                output_scores[b, i, j] = torch.dot(outputs[b, i], s.image.outputs[b, j])
    return outputs, output_scores, cross


def test_concept_outputs_and_scores_match_the_paper(setup):
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)
    outputs, output_scores, cross = _reference(setup)
    assert result.outputs.shape == (B, K, DIM)
    assert result.output_scores.shape == (B, K, N) and result.output_scores.dtype == torch.float32
    assert result.cross_attention_scores.shape == (B, K, N)
    assert result.cross_attention_scores.dtype == torch.float32
    torch.testing.assert_close(result.outputs, outputs, **TOL)
    torch.testing.assert_close(result.output_scores, output_scores, **TOL)
    torch.testing.assert_close(result.cross_attention_scores, cross, **TOL)


def test_concepts_attend_to_each_other_as_well_as_to_the_image(setup):
    # Dropping the concept keys/values changes the outputs: the self-attention part is real.
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)
    q, _, _ = _reference_qkv(setup)
    image_only = torch.cat([
        torch.softmax(q[:, h] @ setup.image.keys[:, h].transpose(1, 2) / math.sqrt(HEAD_DIM), dim=-1)
        @ setup.image.values[:, h]
        for h in range(HEADS)
    ], dim=-1)
    assert not torch.allclose(result.outputs, image_only, atol=1e-3)


def test_score_tokens_truncates_scores_but_not_attention(setup):
    n = 6
    full = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)
    part = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image, score_tokens=n)
    outputs, output_scores, cross = _reference(setup, score_tokens=n)
    assert part.output_scores.shape == (B, K, n) and part.cross_attention_scores.shape == (B, K, n)
    torch.testing.assert_close(part.outputs, outputs, **TOL)
    torch.testing.assert_close(part.output_scores, output_scores, **TOL)
    torch.testing.assert_close(part.cross_attention_scores, cross, **TOL)
    assert torch.equal(part.outputs, full.outputs)
    torch.testing.assert_close(part.output_scores, full.output_scores[..., :n], **TOL)
    # The concepts still attended over all N image tokens, not just the scored ones.
    cut = ImageAttention(setup.image.keys[:, :, :n], setup.image.values[:, :, :n], setup.image.outputs[:, :n])
    only_n = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, cut)
    assert not torch.allclose(only_n.outputs, part.outputs, atol=1e-3)


def test_score_tokens_as_indices_pick_interleaved_tokens(setup):
    """A reference beside the image in every row (HiDream-E1): the scored tokens are given by index, in grid order."""
    picked = torch.tensor([0, 1, 4, 5, 8])
    full = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)
    part = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image, score_tokens=picked)
    assert torch.equal(part.outputs, full.outputs)
    torch.testing.assert_close(part.output_scores, full.output_scores[..., picked], **TOL)
    torch.testing.assert_close(part.cross_attention_scores, full.cross_attention_scores[..., picked], **TOL)


def test_a_large_images_tokens_are_taken_a_chunk_at_a_time(setup, monkeypatch):
    """Keys, values and outputs go to float32 a chunk of tokens at a time: the same scores and outputs, the
    scored tokens picked out of every chunk."""
    import ca_core.stream

    image = ImageAttention(setup.image.keys.bfloat16(), setup.image.values.bfloat16(), setup.image.outputs.bfloat16())
    whole = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, image, score_tokens=7)
    monkeypatch.setattr(ca_core.stream, "SCORED_TOKENS_AT_ONCE", 3)
    chunked = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, image, score_tokens=7)
    for name in ("outputs", "output_scores", "cross_attention_scores"):
        torch.testing.assert_close(getattr(chunked, name), getattr(whole, name), rtol=1e-6, atol=1e-6)
    assert chunked.output_scores.shape == (B, K, 7)


def test_update_applies_gated_residual_then_gated_mlp(setup):
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)
    updated = update_concepts(setup.concepts, result.outputs, setup.attn_mod, setup.mlp_mod, setup.weights)
    w, a, m = setup.weights, setup.attn_mod, setup.mlp_mod
    after_attn = setup.concepts + a.gate * w.proj(result.outputs)
    expected = after_attn + m.gate * w.mlp((1 + m.scale) * w.norm2(after_attn) + m.shift)
    assert updated.shape == (B, K, DIM)
    torch.testing.assert_close(updated, expected, **TOL)
    # With both gates closed the concepts pass through unchanged.
    closed = SimpleNamespace(shift=a.shift, scale=a.scale, gate=torch.zeros_like(a.gate))
    closed_mlp = SimpleNamespace(shift=m.shift, scale=m.scale, gate=torch.zeros_like(m.gate))
    torch.testing.assert_close(
        update_concepts(setup.concepts, result.outputs, closed, closed_mlp, setup.weights), setup.concepts
    )


def test_update_can_add_the_mlp_to_the_blocks_input(setup):
    """AuraFlow's double blocks: the attention's residual is the MLP's input, and the MLP's gated output adds to the
    block's input."""
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)
    weights = dataclasses.replace(setup.weights, mlp_adds_to_input=True)
    updated = update_concepts(setup.concepts, result.outputs, setup.attn_mod, setup.mlp_mod, weights)
    a, m = setup.attn_mod, setup.mlp_mod
    after_attn = setup.concepts + a.gate * weights.proj(result.outputs)
    expected = setup.concepts + m.gate * weights.mlp((1 + m.scale) * weights.norm2(after_attn) + m.shift)
    torch.testing.assert_close(updated, expected, **TOL)
    assert not torch.allclose(updated, update_concepts(setup.concepts, result.outputs, a, m, setup.weights))


def test_update_can_norm_each_update_before_its_gate(setup):
    """Mochi's sandwich norm: the projection's and the MLP's outputs are normalised, then gated, then added."""
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image)

    def unit(x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-6)

    weights = dataclasses.replace(setup.weights, update_norm=unit)
    updated = update_concepts(setup.concepts, result.outputs, setup.attn_mod, setup.mlp_mod, weights)
    a, m = setup.attn_mod, setup.mlp_mod
    after_attn = setup.concepts + a.gate * unit(weights.proj(result.outputs))
    expected = after_attn + m.gate * unit(weights.mlp((1 + m.scale) * weights.norm2(after_attn) + m.shift))
    torch.testing.assert_close(updated, expected, **TOL)
    assert not torch.allclose(updated, update_concepts(setup.concepts, result.outputs, a, m, setup.weights))


def test_inputs_are_not_modified_in_place(setup):
    before = {name: t.clone() for name, t in
              (("keys", setup.image.keys), ("values", setup.image.values), ("outputs", setup.image.outputs),
               ("concepts", setup.concepts))}
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, setup.image, score_tokens=7)
    update_concepts(setup.concepts, result.outputs, setup.attn_mod, setup.mlp_mod, setup.weights)
    assert torch.equal(setup.image.keys, before["keys"])
    assert torch.equal(setup.image.values, before["values"])
    assert torch.equal(setup.image.outputs, before["outputs"])
    assert torch.equal(setup.concepts, before["concepts"])


def test_modulate():
    x = torch.full((1, 2, 3), 2.0)
    mod = SimpleNamespace(shift=torch.full((1, 1, 3), 0.5), scale=torch.full((1, 1, 3), 1.5), gate=None)
    torch.testing.assert_close(modulate(x, mod), torch.full((1, 2, 3), 2.0 * 2.5 + 0.5))


def test_image_keys_strided_as_the_block_left_them(setup):
    # CogVideoX hands the image's keys and values as views of [B, L, H*D] (heads interleaved in each token's
    # channels, text tokens first): the result must not depend on that layout.
    def interleaved(t):  # [B, H, N, D] -> the same values as a strided view of [B, 2 + N, H*D]
        tokens = torch.randn(B, 2 + N, DIM)
        tokens[:, 2:] = t.transpose(1, 2).reshape(B, N, DIM)
        return tokens[:, 2:].reshape(B, N, HEADS, HEAD_DIM).transpose(1, 2)

    strided = ImageAttention(interleaved(setup.image.keys), interleaved(setup.image.values), setup.image.outputs)
    assert not strided.keys.is_contiguous()
    result = attend_concepts(setup.concepts, setup.attn_mod, setup.weights, strided)
    outputs, output_scores, cross = _reference(setup)
    torch.testing.assert_close(result.outputs, outputs, **TOL)
    torch.testing.assert_close(result.output_scores, output_scores, **TOL)
    torch.testing.assert_close(result.cross_attention_scores, cross, **TOL)


def test_low_precision_attention_is_computed_in_float32(setup):
    q, k, v = _reference_qkv(setup)
    outputs, cross = concept_attention(q, k, v, setup.image.keys, setup.image.values)
    low_outputs, low_cross = concept_attention(q.bfloat16(), k.bfloat16(), v.bfloat16(),
                                               setup.image.keys.bfloat16(), setup.image.values.bfloat16())
    assert low_outputs.dtype == low_cross.dtype == torch.float32
    torch.testing.assert_close(low_outputs, outputs, rtol=0.05, atol=0.05)
    torch.testing.assert_close(low_cross, cross, rtol=0.05, atol=0.05)
    low_mod = SimpleNamespace(**{name: getattr(setup.attn_mod, name).bfloat16() for name in ("shift", "scale", "gate")})
    result = attend_concepts(setup.concepts.bfloat16(), low_mod, _bfloat16(setup.weights),
                             ImageAttention(*(t.bfloat16() for t in (setup.image.keys, setup.image.values,
                                                                     setup.image.outputs))))
    assert result.outputs.dtype == torch.bfloat16  # the concepts flow on in the model's dtype
    assert result.output_scores.dtype == result.cross_attention_scores.dtype == torch.float32


def _bfloat16(weights):
    for module in (weights.norm1, weights.qkv, weights.qk_norm, weights.proj, weights.norm2, weights.mlp):
        module.bfloat16()
    return weights
