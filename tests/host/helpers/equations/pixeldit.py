"""PixelDiT (patch blocks, then pixel blocks over the image alone): the concepts take each patch block's text weights
(adaLN_modulation_txt, norm_y1, qkv_y, the per-head q/k RMSNorms, proj_y, norm_y2, the SwiGLU mlp_y) and its
modulation of SiLU(timestep embedding) (no pooled vector); the text first in the joint attention. The image is
16-pixel patches (padded circularly to whole ones) at 2-D RoPE positions 0 to 16 on each axis, x and y pairs
interleaved; text position p carries the learnt embedding y_pos_embedding[p] and 1-D RoPE p, and each concept
those of its own token's position."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge
from .qwen_image import rms

THETA = 10000.0


def rotate(x, angle):
    """x [B, H, L, D] with channel pair i turned by angle [L, D / 2]."""
    even, odd = x[..., 0::2], x[..., 1::2]
    cos, sin = angle.cos().to(x), angle.sin().to(x)
    return torch.stack([even * cos - odd * sin, even * sin + odd * cos], dim=-1).flatten(-2)


def frequencies(dim):
    return 1.0 / THETA ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)


def text_angles(positions, head_dim):
    return (torch.tensor(positions, dtype=torch.float64)[:, None] * frequencies(head_dim)).float()


def image_angles(rows, cols, head_dim):
    """Row-major tokens; pair 2j turns by column position times frequency j, pair 2j + 1 by row position."""
    freqs = frequencies(head_dim // 2)
    y, x = torch.meshgrid(torch.linspace(0, 16, rows, dtype=torch.float64),
                          torch.linspace(0, 16, cols, dtype=torch.float64), indexing="ij")
    x_angles, y_angles = x.reshape(-1, 1) * freqs, y.reshape(-1, 1) * freqs
    return torch.stack([x_angles, y_angles], dim=-1).reshape(rows * cols, -1).float()


def timestep_condition(dm, t):
    half = dm.t_embedder.frequency_embedding_size // 2
    freqs = torch.exp(-math.log(10.0) * torch.arange(half, dtype=torch.float32) / half)  # max_period 10
    args = t[:, None].float() * freqs[None]
    embedded = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    mlp = dm.t_embedder.mlp
    return F.silu(linear(mlp[2], F.silu(linear(mlp[0], embedded))))[:, None]


def stream_qkv(x, norm1, mod, qkv, q_norm, k_norm, n_heads, angle):
    modulated = rms(x, norm1) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(t, n_heads) for t in linear(qkv, modulated).chunk(3, dim=-1))
    return rotate(rms(q, q_norm), angle), rotate(rms(k, k_norm), angle), v


def swiglu(mlp, x):
    return linear(mlp.w2, F.silu(linear(mlp.w1, x)) * linear(mlp.w3, x))


def stream_update(x, attn_out, proj, norm2, mlp, mod):
    x = x + mod[2] * linear(proj, attn_out)
    return x + mod[5] * swiglu(mlp, rms(x, norm2) * (1 + mod[4]) + mod[3])


def text_embedding(dm, context, positions):
    return rms(linear(dm.y_embedder.proj, context), dm.y_embedder.norm) + dm.y_pos_embedding[0, positions]


def reference_scores(dm, x, t, context, concept_context, concept_positions):
    """Per-layer (output, cross-attention) scores [B, K, N] of the patch blocks."""
    p = dm.patch_size
    x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p), mode="circular")
    b, rows, cols = x.shape[0], x.shape[-2] // p, x.shape[-1] // p
    img = linear(dm.s_embedder.proj, F.unfold(x, kernel_size=p, stride=p).transpose(1, 2))
    length = min(context.shape[1], dm.txt_max_length)
    txt = text_embedding(dm, context[:, :length], list(range(length)))
    concepts = text_embedding(dm, concept_context.expand(b, -1, -1), concept_positions)
    condition = timestep_condition(dm, t)
    head_dim = dm.hidden_size // dm.num_groups
    img_angle, txt_angle = image_angles(rows, cols, head_dim), text_angles(range(length), head_dim)
    concept_angle = text_angles(concept_positions, head_dim)
    scores = []
    for block in dm.patch_blocks:
        a, n = block.attn, block.attn.num_heads
        img_mod = linear(block.adaLN_modulation_img[0], condition).chunk(6, dim=-1)
        txt_mod = linear(block.adaLN_modulation_txt[0], condition).chunk(6, dim=-1)
        iq, ik, iv = stream_qkv(img, block.norm_x1, img_mod, a.qkv_x, a.q_norm_x, a.k_norm_x, n, img_angle)
        text_layers = (block.norm_y1, txt_mod, a.qkv_y, a.q_norm_y, a.k_norm_y, n)
        tq, tk, tv = stream_qkv(txt, *text_layers, txt_angle)
        cq, ck, cv = stream_qkv(concepts, *text_layers, concept_angle)  # the text's weights
        joint = merge(attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2)))
        txt_out, img_out = joint[:, :length], joint[:, length:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ ik.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        img = stream_update(img, img_out, a.proj_x, block.norm_x2, block.mlp_x, img_mod)
        txt = stream_update(txt, txt_out, a.proj_y, block.norm_y2, block.mlp_y, txt_mod)
        concepts = stream_update(concepts, concept_out, a.proj_y, block.norm_y2, block.mlp_y, txt_mod)
    return scores


def expected_scores(dm, call, concepts, positions):
    return reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The prompt is ComfyUI's PixelDiT encoding (the start token and 299 positions), each concept's first own token
    at position 2 of its own (after the start token and the chi prompt's last piece), and the concepts' position
    matters: at text position 0 the scores differ."""
    assert call["context"].shape[1] == 300
    assert positions == [2] * len(names)
    at_zero = reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, [0] * len(names))
    assert not torch.allclose(expected[-1][0], at_zero[-1][0], atol=1e-4)
