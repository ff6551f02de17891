"""Mochi (AsymmDiTJoint): the concepts take each block's text layers (mod_y, qkv_y with its per-head q/k RMSNorms,
proj_y, mlp_y) and the text's modulated RMSNorms (a scale, no shift), tanh gates and RMSNormed updates; their c is
the timestep embedding alone (a zero pooled vector), where the video's and the text's add the T5 attention pool's.
The joint attention holds [video; text cut to its valid tokens]; the video carries the mixed RoPE of its learnt
frequencies, the text and the concepts none. The last block does not update the text, nor the concepts."""

import math

import torch
import torch.nn.functional as F

from ..models import rms_norm_eps, rms_norm_scale
from . import attention, linear, merge

EPS = 1e-6  # the blocks' modulated and sandwich RMSNorms


def rms(x):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS)


def head_norm(x, norm):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + rms_norm_eps(norm, x.dtype)) * rms_norm_scale(norm)


def embed_time(embedder, t):
    """TimestepEmbedder: sinusoids of 1000 t (cos first), then its MLP."""
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = 1000.0 * t[:, None].float() * freqs[None]
    return linear(embedder.mlp[2], F.silu(linear(embedder.mlp[0], torch.cat([args.cos(), args.sin()], dim=-1))))


def video_angles(frequencies, frames, rows, cols):
    """[N, H, D / 2] angles of each video token: its (frame, row, column), rows and columns at bin centres scaled to
    an area of 36864 patches, times the learnt frequencies [3, H, D / 2]."""
    scale = math.sqrt(36864 / (rows * cols))

    def centres(n):
        edges = torch.linspace(-n * scale / 2, n * scale / 2, n + 1)
        return (edges[:-1] + edges[1:]) / 2

    grid = torch.meshgrid(torch.arange(frames).float(), centres(rows), centres(cols), indexing="ij")
    positions = torch.stack(grid, dim=-1).reshape(-1, 3)
    return torch.einsum("nd,dhf->nhf", positions, frequencies.float())


def rotate(x, angles):
    """x [B, H, N, D] turned pair by pair (channels 2i, 2i + 1) by angles [N, H, D / 2]."""
    angles = angles.transpose(0, 1)
    even, odd = x[..., 0::2], x[..., 1::2]
    return torch.stack([even * angles.cos() - odd * angles.sin(), even * angles.sin() + odd * angles.cos()],
                       dim=-1).flatten(-2)


def stream_qkv(qkv, q_norm, k_norm, x, scale, n_heads):
    """[B, H, L, D] q/k/v of a stream: the modulated RMSNorm, the projection, the per-head q/k norms."""
    q, k, v = linear(qkv, rms(x) * (1 + scale[:, None])).unflatten(-1, (3, n_heads, -1)).unbind(2)
    return head_norm(q, q_norm).transpose(1, 2), head_norm(k, k_norm).transpose(1, 2), v.transpose(1, 2)


def feed_forward(mlp, x):
    a, gate = linear(mlp.w1, x).chunk(2, dim=-1)
    return linear(mlp.w2, F.silu(a) * gate)


def update(x, attn_out, proj, mlp, mod, update_norm=True):
    """A stream's residuals: each update RMSNormed (the sandwich norm), tanh-gated, added."""
    normed = rms if update_norm else (lambda u: u)
    scale_msa, gate_msa, scale_mlp, gate_mlp = mod
    x = x + gate_msa.tanh()[:, None] * normed(linear(proj, attn_out))
    return x + gate_mlp.tanh()[:, None] * normed(feed_forward(mlp, rms(x) * (1 + scale_mlp[:, None])))


def mochi_reference_scores(dm, x, sigma, context, mask, num_tokens, concept_context, concept_pooled=False,
                           update_norm=True):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and Mochi's layout.
    concept_pooled: give the concepts the prompt's pooled vector too (what the method must not do); update_norm
    False: no sandwich norm on the concepts' updates (what Mochi's text stream does not do)."""
    b, _, frames, height, width = x.shape
    p = dm.patch_size
    video = dm.x_embedder(x)
    c_t = embed_time(dm.t_embedder, 1 - sigma)
    c = c_t + dm.t5_y_embedder(context, mask)
    concept_c = c if concept_pooled else c_t
    crop = min(num_tokens, context.shape[1])
    text = linear(dm.t5_yproj, context)[:, :crop]  # the padding never enters the attention
    concepts = linear(dm.t5_yproj, concept_context.expand(b, -1, -1))
    angles = video_angles(dm.pos_frequencies, frames, height // p, width // p)
    scores = []
    for block in dm.blocks:
        attn, n = block.attn, block.attn.num_heads
        mod_x = linear(block.mod_x, F.silu(c)).chunk(4, dim=1)
        mod_y, concept_mod = linear(block.mod_y, F.silu(c)), linear(block.mod_y, F.silu(concept_c))
        if block.update_y:
            mod_y, concept_mod = mod_y.chunk(4, dim=1), concept_mod.chunk(4, dim=1)
        else:
            mod_y, concept_mod = (mod_y,), (concept_mod,)
        xq, xk, xv = stream_qkv(attn.qkv_x, attn.q_norm_x, attn.k_norm_x, video, mod_x[0], n)
        xq, xk = rotate(xq, angles), rotate(xk, angles)
        tq, tk, tv = stream_qkv(attn.qkv_y, attn.q_norm_y, attn.k_norm_y, text, mod_y[0], n)
        cq, ck, cv = stream_qkv(attn.qkv_y, attn.q_norm_y, attn.k_norm_y, concepts, concept_mod[0], n)
        joint = merge(attention(torch.cat([xq, tq], 2), torch.cat([xk, tk], 2), torch.cat([xv, tv], 2)))
        video_out, text_out = joint[:, :video.shape[1]], joint[:, video.shape[1]:]
        concept_out = merge(attention(cq, torch.cat([ck, xk], 2), torch.cat([cv, xv], 2)))
        cross = (cq @ xk.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ video_out.transpose(1, 2), cross))
        video = update(video, video_out, attn.proj_x, block.mlp_x, mod_x)
        if block.update_y:
            text = update(text, text_out, attn.proj_y, block.mlp_y, mod_y)
            concepts = update(concepts, concept_out, attn.proj_y, block.mlp_y, concept_mod, update_norm)
    return scores


def expected_scores(dm, call, concepts, positions):
    return mochi_reference_scores(dm, call["x"], call["timestep"], call["context"], call["attention_mask"],
                                  call["num_tokens"], concepts)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The inputs are Mochi's (the prompt padded to 256 T5 tokens and cut to its valid ones, each concept token 0 of
    its own encoding), and the comparison can tell a pooled vector given to the concepts, and updates without the
    sandwich norm."""
    assert call["context"].shape[1] == 256 and call["num_tokens"] < 256
    assert positions == [0] * len(names)
    arguments = (dm, call["x"], call["timestep"], call["context"], call["attention_mask"], call["num_tokens"], concepts)
    for change in (dict(concept_pooled=True), dict(update_norm=False)):
        other = mochi_reference_scores(*arguments, **change)
        assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4), change
