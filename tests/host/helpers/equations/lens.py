"""Lens: the prompt's tapped layers each RMS-normed, then projected together (the concepts likewise); blocks with
fused q/k/v, RMSNorms, SwiGLU MLPs and the text's modulation from the timestep alone (no pooled vector); the image
first in the joint attention, its rows and columns centred; the text, and each concept, at RoPE position s + p on
all three axes."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge, rope, timestep_embedding
from .qwen_image import qwen_modulation, rms


def prompt_states(dm, context):
    """Each tapped layer's states through its own RMSNorm, then txt_in over them all."""
    layers = context.chunk(len(dm.txt_norm), dim=-1)
    return linear(dm.txt_in, torch.cat([rms(layer, norm) for layer, norm in zip(layers, dm.txt_norm, strict=True)], -1))


def lens_qkv(x, norm1, mod, fused, norms, n_heads):
    modulated = rms(x, norm1) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(t, n_heads) for t in linear(fused, modulated).chunk(3, dim=-1))
    return rms(q, norms[0]), rms(k, norms[1]), v


def lens_update(x, attn_out, proj, norm2, mlp, mod):
    x = x + mod[2] * linear(proj, attn_out)
    h = rms(x, norm2) * (1 + mod[4]) + mod[3]
    return x + mod[5] * F.linear(F.silu(F.linear(h, mlp.w1.weight)) * F.linear(h, mlp.w3.weight), mlp.w2.weight)


def image_ids(rows, cols):
    """The image's (frame, row, column) ids, row-major: rows from -(rows - rows // 2) up, columns likewise."""
    grid_rows, grid_cols = torch.meshgrid(torch.arange(rows) - (rows - rows // 2),
                                          torch.arange(cols) - (cols - cols // 2), indexing="ij")
    return torch.stack([torch.zeros_like(grid_rows), grid_rows, grid_cols], dim=-1).reshape(-1, 3)


def reference_scores(dm, x, t, context, concept_context, concept_positions):
    """Per-layer (output, cross-attention) scores [B, K, N]; concept_positions: each concept's absolute RoPE
    position."""
    b, rows, cols = x.shape[0], x.shape[-2], x.shape[-1]
    img = linear(dm.img_in, x.flatten(2).transpose(1, 2))
    txt = prompt_states(dm, context)
    concepts = prompt_states(dm, concept_context.expand(b, -1, -1))
    embedder = dm.time_text_embed.timestep_embedder
    temb = linear(embedder.linear_2, F.silu(linear(embedder.linear_1, timestep_embedding(t))))
    start = max(rows // 2, cols // 2)
    txt_ids = torch.arange(start, start + txt.shape[1])[:, None].expand(-1, 3)
    ids = torch.cat([image_ids(rows, cols), txt_ids]).float()[None].expand(b, -1, -1)
    concept_ids = torch.tensor(concept_positions)[:, None].expand(-1, 3).float()[None].expand(b, -1, -1)
    axes, n_img, scores = list(dm.pos_embed.axes_dim), rows * cols, []
    for block in dm.transformer_blocks:
        a, n = block.attn, block.attn.heads
        img_mod, txt_mod = qwen_modulation(block.img_mod, temb), qwen_modulation(block.txt_mod, temb)
        text_norms = (a.norm_added_q, a.norm_added_k)
        iq, ik, iv = lens_qkv(img, block.img_norm1, img_mod, a.img_qkv, (a.norm_q, a.norm_k), n)
        tq, tk, tv = lens_qkv(txt, block.txt_norm1, txt_mod, a.txt_qkv, text_norms, n)
        cq, ck, cv = lens_qkv(concepts, block.txt_norm1, txt_mod, a.txt_qkv, text_norms, n)  # the text's weights
        q = rope(torch.cat([iq, tq], 2), ids, axes, 10000)
        k = rope(torch.cat([ik, tk], 2), ids, axes, 10000)
        cq, ck = rope(cq, concept_ids, axes, 10000), rope(ck, concept_ids, axes, 10000)
        joint = merge(attention(q, k, torch.cat([iv, tv], 2)))
        img_out, txt_out = joint[:, :n_img], joint[:, n_img:]
        image_keys = k[:, :, :n_img]
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        img = lens_update(img, img_out, a.to_out[0], block.img_norm2, block.img_mlp, img_mod)
        txt = lens_update(txt, txt_out, a.to_add_out, block.txt_norm2, block.txt_mlp, txt_mod)
        concepts = lens_update(concepts, concept_out, a.to_add_out, block.txt_norm2, block.txt_mlp, txt_mod)
    return scores


def text_start(call):
    return max(call["x"].shape[-2] // 2, call["x"].shape[-1] // 2)


def expected_scores(dm, call, concepts, positions):
    return reference_scores(dm, call["x"], call["timestep"], call["context"], concepts,
                            [text_start(call) + position for position in positions])


def sanity(dm, call, clip, names, concepts, positions, expected):
    """Each concept's own tokens open its encoder output (after the dropped head), and the concepts' positions
    matter: at the RoPE origin the scores differ."""
    assert positions == [0] * len(names)
    assert text_start(call) > 0
    at_origin = reference_scores(dm, call["x"], call["timestep"], call["context"], concepts, [0] * len(names))
    assert not torch.allclose(expected[-1][0], at_origin[-1][0], atol=1e-4)
