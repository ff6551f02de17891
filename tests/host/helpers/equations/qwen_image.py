"""Qwen-Image and Qwen-Image-Edit: separate text projections and norms (the concepts take the text's), the text
modulation (no pooled vector), each concept at RoPE position s + p on all three axes; Edit's reference latents
follow the generated image's tokens (frame k for the k-th), and the concepts attend over them too."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge, rope


def rms(x, norm):
    eps = getattr(norm, "eps", None) or 1e-6
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight


def qwen_modulation(layer, temb):
    return [c[:, None] for c in linear(layer[1], F.silu(temb)).chunk(6, dim=-1)]


def qwen_qkv(x, mod, projections, norms, n_heads):
    modulated = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(linear(layer, modulated), n_heads) for layer in projections)
    return rms(q, norms[0]), rms(k, norms[1]), v


def qwen_update(x, attn_out, proj, mlp, mod):
    x = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    return x + mod[5] * linear(mlp.net[2], F.gelu(linear(mlp.net[0].proj, h), approximate="tanh"))


def image_ids(rows, cols, frame):
    """Qwen-Image's RoPE ids of a token grid: (frame, row, column), rows and columns centred."""
    grid_rows, grid_cols = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    ids = torch.stack([torch.full_like(grid_rows, frame), grid_rows - rows // 2, grid_cols - cols // 2], dim=-1)
    return ids.reshape(-1, 3)


def per_token(modulation_at_t, modulation_at_zero, generated, references):
    """Edit's index_timestep_zero: the generated tokens are modulated at t, the reference tokens at t = 0."""
    return [torch.cat([a.expand(-1, generated, -1), z.expand(-1, references, -1)], dim=1)
            for a, z in zip(modulation_at_t, modulation_at_zero, strict=True)]


def qwen_reference_scores(dm, x, t, context, concept_context, positions, references=(), timestep_zero=False):
    """Per-layer (output, cross-attention) scores [B, K, N] over the generated image's tokens. timestep_zero:
    the reference tokens' image modulation at t = 0, the text's at t."""
    b, rows, cols = x.shape[0], x.shape[-2] // 2, x.shape[-1] // 2
    generated = rows * cols
    patches = [dm.process_img(x)[0]] + [dm.process_img(reference)[0] for reference in references]
    img = linear(dm.img_in, torch.cat(patches, dim=1))
    txt = linear(dm.txt_in, rms(context, dm.txt_norm))
    concepts = linear(dm.txt_in, rms(concept_context.expand(b, -1, -1), dm.txt_norm))
    temb = dm.time_text_embed(t, img)
    start = max(cols // 2, rows // 2)
    img_ids = [image_ids(rows, cols, 0)] + [image_ids(r.shape[-2] // 2, r.shape[-1] // 2, frame)
                                            for frame, r in enumerate(references, start=1)]
    txt_ids = torch.arange(start, start + txt.shape[1])[:, None].expand(-1, 3)
    ids = torch.cat([txt_ids, *img_ids]).float()[None].expand(b, -1, -1)
    concept_ids = (start + torch.tensor(positions))[:, None].expand(-1, 3).float()[None].expand(b, -1, -1)
    axes, n_txt, scores = list(dm.pe_embedder.axes_dim), txt.shape[1], []
    for block in dm.transformer_blocks:
        a, n = block.attn, block.attn.heads
        img_mod, txt_mod = qwen_modulation(block.img_mod, temb), qwen_modulation(block.txt_mod, temb)
        if timestep_zero:
            at_zero = qwen_modulation(block.img_mod, dm.time_text_embed(t * 0, img))
            img_mod = per_token(img_mod, at_zero, generated, img.shape[1] - generated)
        text_layers, text_norms = (a.add_q_proj, a.add_k_proj, a.add_v_proj), (a.norm_added_q, a.norm_added_k)
        iq, ik, iv = qwen_qkv(img, img_mod, (a.to_q, a.to_k, a.to_v), (a.norm_q, a.norm_k), n)
        tq, tk, tv = qwen_qkv(txt, txt_mod, text_layers, text_norms, n)
        cq, ck, cv = qwen_qkv(concepts, txt_mod, text_layers, text_norms, n)  # the text's modulation
        q = rope(torch.cat([tq, iq], 2), ids, axes, 10000)
        k = rope(torch.cat([tk, ik], 2), ids, axes, 10000)
        cq, ck = rope(cq, concept_ids, axes, 10000), rope(ck, concept_ids, axes, 10000)
        joint = merge(attention(q, k, torch.cat([tv, iv], 2)))
        txt_out, img_out = joint[:, :n_txt], joint[:, n_txt:]
        image_keys = k[:, :, n_txt:]  # the generated image's and the references'
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ image_keys[:, :, :generated].transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out[:, :generated].transpose(1, 2), cross))
        img = qwen_update(img, img_out, a.to_out[0], block.img_mlp, img_mod)
        txt = qwen_update(txt, txt_out, a.to_add_out, block.txt_mlp, txt_mod)
        concepts = qwen_update(concepts, concept_out, a.to_add_out, block.txt_mlp, txt_mod)
    return scores


def references(call):
    """Edit's reference latents (as the model's latent format scaled them), none for Qwen-Image."""
    return call.get("ref_latents") or call.get("kwargs", {}).get("ref_latents") or []


def expected_scores(dm, call, concepts, positions, timestep_zero=False):
    return qwen_reference_scores(dm, call["x"], call["timestep"], call["context"], concepts, positions,
                                 references(call), timestep_zero)


def sanity(dm, call, clip, names, concepts, positions, expected, timestep_zero=False):
    """The concepts' positions matter; on Edit, the reference tokens and the reference method matter too."""
    assert positions == [0] * len(names)  # each concept's own tokens open its template-stripped output
    x, t, context, refs = call["x"], call["timestep"], call["context"], references(call)
    if not refs:
        rows, cols = x.shape[-2] // 2, x.shape[-1] // 2
        at_origin = qwen_reference_scores(dm, x, t, context, concepts, [-max(rows // 2, cols // 2)] * len(names))
        assert not torch.allclose(expected[-1][0], at_origin[-1][0])
        return
    assert len(refs) == 1
    without = qwen_reference_scores(dm, x, t, context, concepts, positions)
    other_method = qwen_reference_scores(dm, x, t, context, concepts, positions, refs, not timestep_zero)
    assert not torch.allclose(expected[-1][0], without[-1][0], rtol=1e-3, atol=1e-3)
    assert not torch.allclose(expected[-1][0], other_method[-1][0], rtol=1e-3, atol=1e-3)
