"""JoyImage (and Edit): double blocks of its own over [image; text]. The concepts take the text's fused qkv, per-head
RMSNorms, projection, LayerNorms, GELU MLP and modulation (a learnt table plus the timestep's embedding, no pooled
vector), and the text adapter the prompt goes through; the image carries 3-D RoPE (each reference image at a frame of
its own), the text and the concepts none."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge, rope
from .qwen_image import references, rms


def joy_modulation(modulate, vec):
    """A block's (shift, scale, gate, shift, scale, gate) rows [B, 1, C]: its table plus the timestep's vec."""
    return list((modulate.modulate_table + vec).chunk(6, dim=1))


def joy_qkv(x, mod, attn, stream, n_heads):
    modulated = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(part, n_heads) for part in linear(getattr(attn, f"{stream}_attn_qkv"), modulated).chunk(3, -1))
    return rms(q, getattr(attn, f"{stream}_attn_q_norm")), rms(k, getattr(attn, f"{stream}_attn_k_norm")), v


def joy_update(x, attn_out, proj, mlp, mod):
    x = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    return x + mod[5] * linear(mlp.net[2], F.gelu(linear(mlp.net[0].proj, h), approximate="tanh"))


def text_adapter(dm, context):
    adapter = dm.condition_embedder.text_embedder
    return linear(adapter.linear_2, F.gelu(linear(adapter.linear_1, context), approximate="tanh"))


def joy_reference_scores(dm, x, t, context, concept_context, refs=(), rotate_concepts=None):
    """Per-layer (output, cross-attention) scores [B, K, N] over the generated image's tokens. rotate_concepts: RoPE
    ids to give the concepts instead of none (sanity's check that the comparison can tell)."""
    b = x.shape[0]
    latents = [x, *refs]
    img = torch.cat([F.conv3d(latent, dm.img_in.weight, dm.img_in.bias, stride=dm.img_in.stride).flatten(2)
                     .transpose(1, 2) for latent in latents], dim=1)
    ids = []
    for frame, latent in enumerate(latents):  # (frame, row, column); rows and columns restart per image
        rows, cols = latent.shape[-2] // 2, latent.shape[-1] // 2
        grid = torch.meshgrid(torch.tensor([frame]), torch.arange(rows), torch.arange(cols), indexing="ij")
        ids.append(torch.stack(grid, dim=-1).reshape(-1, 3))
    ids = torch.cat(ids).float()[None].expand(b, -1, -1)
    generated = (x.shape[-2] // 2) * (x.shape[-1] // 2)
    txt = text_adapter(dm, context)
    concepts = text_adapter(dm, concept_context.expand(b, -1, -1))
    embedder = dm.condition_embedder
    vec = linear(embedder.time_proj, F.silu(embedder.time_embedder(embedder.timesteps_proj(t)))).unflatten(1, (6, -1))
    axes, n_img, scores = dm.rope_dim_list, img.shape[1], []
    for block in dm.double_blocks:
        a, n = block.attn, block.attn.num_attention_heads
        img_mod, txt_mod = joy_modulation(block.img_mod, vec), joy_modulation(block.txt_mod, vec)
        iq, ik, iv = joy_qkv(img, img_mod, a, "img", n)
        tq, tk, tv = joy_qkv(txt, txt_mod, a, "txt", n)
        cq, ck, cv = joy_qkv(concepts, txt_mod, a, "txt", n)  # the text's modulation and weights
        iq, ik = rope(iq, ids, axes, dm.theta), rope(ik, ids, axes, dm.theta)
        if rotate_concepts is not None:
            cq, ck = rope(cq, rotate_concepts, axes, dm.theta), rope(ck, rotate_concepts, axes, dm.theta)
        joint = merge(attention(torch.cat([iq, tq], 2), torch.cat([ik, tk], 2), torch.cat([iv, tv], 2)))
        img_out, txt_out = joint[:, :n_img], joint[:, n_img:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))  # references' tokens too
        cross = (cq @ ik[:, :, :generated].transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out[:, :generated].transpose(1, 2), cross))
        img = joy_update(img, img_out, a.img_attn_proj, block.img_mlp, img_mod)
        txt = joy_update(txt, txt_out, a.txt_attn_proj, block.txt_mlp, txt_mod)
        concepts = joy_update(concepts, concept_out, a.txt_attn_proj, block.txt_mlp, txt_mod)
    return scores


def expected_scores(dm, call, concepts, positions):
    return joy_reference_scores(dm, call["hidden_states"], call["timestep"], call["context"], concepts,
                                references(call))


def sanity(dm, call, clip, names, concepts, positions, expected):
    """JoyImage's encoder keeps "user\\n" before each concept's own tokens; a rotation of the concepts would show, and
    on Edit so would leaving out the reference image."""
    assert positions == [2] * len(names)
    x, t, context, refs = call["hidden_states"], call["timestep"], call["context"], references(call)
    b, k = x.shape[0], concepts.shape[1]
    rotated = joy_reference_scores(dm, x, t, context, concepts, refs, torch.full((b, k, 3), 7.0))
    assert not torch.allclose(expected[-1][0], rotated[-1][0], rtol=1e-4, atol=1e-4)
    if refs:
        without = joy_reference_scores(dm, x, t, context, concepts)
        assert not torch.allclose(expected[-1][0], without[-1][0], rtol=1e-3, atol=1e-3)
