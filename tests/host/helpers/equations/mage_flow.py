"""Mage-Flow: Qwen-Image's blocks (the concepts take the text's projections, norms, MLP and modulation), one-cell
image tokens at their own RoPE ids, the text and the concepts unrotated (position 0)."""

import math

import torch

from . import attention, linear, merge, rope
from .qwen_image import qwen_modulation, qwen_qkv, qwen_update, rms


def reference_scores(dm, x, t, context, concept_context, rotate_concepts=None):
    """Per-layer (output, cross-attention) scores [B, K, N]. rotate_concepts: RoPE ids to give the concepts instead
    of none (sanity's check that the comparison can tell)."""
    b = x.shape[0]
    patches, img_ids, _ = dm.process_img(x)  # the model's own token layout and ids
    img = linear(dm.img_in, patches)
    txt = linear(dm.txt_in, rms(context, dm.txt_norm))
    concepts = linear(dm.txt_in, rms(concept_context.expand(b, -1, -1), dm.txt_norm))
    temb = dm.time_text_embed(t, img)
    ids = torch.cat([torch.zeros(b, txt.shape[1], 3), img_ids.float()], dim=1)
    axes, n_txt, scores = list(dm.pe_embedder.axes_dim), txt.shape[1], []
    for block in dm.transformer_blocks:
        a, n = block.attn, block.attn.heads
        img_mod, txt_mod = qwen_modulation(block.img_mod, temb), qwen_modulation(block.txt_mod, temb)
        text_layers, text_norms = (a.add_q_proj, a.add_k_proj, a.add_v_proj), (a.norm_added_q, a.norm_added_k)
        iq, ik, iv = qwen_qkv(img, img_mod, (a.to_q, a.to_k, a.to_v), (a.norm_q, a.norm_k), n)
        tq, tk, tv = qwen_qkv(txt, txt_mod, text_layers, text_norms, n)
        cq, ck, cv = qwen_qkv(concepts, txt_mod, text_layers, text_norms, n)
        q = rope(torch.cat([tq, iq], 2), ids, axes, 10000)
        k = rope(torch.cat([tk, ik], 2), ids, axes, 10000)
        if rotate_concepts is not None:
            cq, ck = rope(cq, rotate_concepts, axes, 10000), rope(ck, rotate_concepts, axes, 10000)
        joint = merge(attention(q, k, torch.cat([tv, iv], 2)))
        txt_out, img_out = joint[:, :n_txt], joint[:, n_txt:]
        image_keys = k[:, :, n_txt:]
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        img = qwen_update(img, img_out, a.to_out[0], block.img_mlp, img_mod)
        txt = qwen_update(txt, txt_out, a.to_add_out, block.txt_mlp, txt_mod)
        concepts = qwen_update(concepts, concept_out, a.to_add_out, block.txt_mlp, txt_mod)
    return scores


def expected_scores(dm, call, concepts, positions):
    return reference_scores(dm, call["x"], call["timestep"], call["context"], concepts)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """Each concept's own tokens open its template-stripped output, and a rotation of the concepts would show."""
    assert positions == [0] * len(names)
    b, k = call["x"].shape[0], concepts.shape[1]
    rotated = reference_scores(dm, call["x"], call["timestep"], call["context"], concepts,
                               torch.full((b, k, 3), 7.0))
    assert not torch.allclose(expected[-1][0], rotated[-1][0], atol=1e-4)
