"""SD3 / SD3.5 (MMDiT): the concepts take the context block's weights and adaLN with the vector
t_embedder(t) + y_embedder(0); the last context block is pre_only (no update); SD3.5 medium's image blocks add
a self-attention of their own (x_block_self_attn), which the text and the concepts never see."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge


def adaln(block, vector):
    """A DismantledBlock's modulation rows [B, 1, C]: (shift, scale[, gate, shift, scale, gate[, shift2, scale2,
    gate2]])."""
    chunks = linear(block.adaLN_modulation[1], F.silu(vector))
    count = 2 if block.pre_only else 9 if getattr(block, "x_block_self_attn", False) else 6
    return [c[:, None] for c in chunks.chunk(count, dim=-1)]


def qk_norm(t, layer):
    """SD3.5's per-head RMSNorm with a learnt scale; identity on SD3."""
    if isinstance(layer, torch.nn.Identity):
        return t
    return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + layer.eps) * layer.weight


def sd3_qkv(attn, x, shift, scale, n_heads):
    modulated = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + scale) + shift
    q, k, v = (heads(t, n_heads) for t in linear(attn.qkv, modulated).chunk(3, dim=-1))
    return qk_norm(q, attn.ln_q), qk_norm(k, attn.ln_k), v


def sd3_update(block, x, attn_out, mod):
    out = x + mod[2] * linear(block.attn.proj, attn_out)
    if getattr(block, "x_block_self_attn", False):  # SD3.5 medium: the image's own self-attention on the block's
        q, k, v = sd3_qkv(block.attn2, x, mod[6], mod[7], block.attn2.num_heads)  # input, gated like the joint one
        out = out + mod[8] * linear(block.attn2.proj, merge(attention(q, k, v)))
    h = F.layer_norm(out, out.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    return out + mod[5] * linear(block.mlp.fc2, F.gelu(linear(block.mlp.fc1, h), approximate="tanh"))


def sd3_reference_scores(dm, x, t, context, y, concept_context):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and MMDiT's layout."""
    b = x.shape[0]
    img = dm.x_embedder(x) + dm.cropped_pos_embed(x.shape[-2:])
    txt = linear(dm.context_embedder, context)
    concepts = linear(dm.context_embedder, concept_context.expand(b, -1, -1))
    time = dm.t_embedder(t, dtype=x.dtype)
    vec, concept_vec = time + dm.y_embedder(y), time + dm.y_embedder(torch.zeros_like(y))
    scores = []
    for joint in dm.joint_blocks:
        text_block, image_block, n = joint.context_block, joint.x_block, joint.x_block.attn.num_heads
        img_mod, txt_mod, concept_mod = adaln(image_block, vec), adaln(text_block, vec), adaln(text_block, concept_vec)
        iq, ik, iv = sd3_qkv(image_block.attn, img, img_mod[0], img_mod[1], n)
        tq, tk, tv = sd3_qkv(text_block.attn, txt, txt_mod[0], txt_mod[1], n)
        cq, ck, cv = sd3_qkv(text_block.attn, concepts, concept_mod[0], concept_mod[1], n)
        joint_out = merge(attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2)))
        txt_out, img_out = joint_out[:, :txt.shape[1]], joint_out[:, txt.shape[1]:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ ik.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        img = sd3_update(image_block, img, img_out, img_mod)
        if not text_block.pre_only:  # the last context block ends the text stream: no update, for concepts too
            txt = sd3_update(text_block, txt, txt_out, txt_mod)
            concepts = sd3_update(text_block, concepts, concept_out, concept_mod)
    return scores


def expected_scores(dm, call, concepts, positions):
    return sd3_reference_scores(dm, call["x"], call["timesteps"], call["context"], call["y"], concepts)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """Every layer is compared, the pre_only last one included; the timestep is 1000 sigma."""
    assert dm.joint_blocks[-1].context_block.pre_only
    assert call["timesteps"].item() > 1.0  # SD3's timestep: the stream took it through the model sampling
