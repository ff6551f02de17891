"""Chroma and Chroma Radiance: Flux's double blocks, every modulation a row of the approximator's table (no
pooled vector, so the concepts take the text's rows); Radiance embeds 16-pixel patches of the image itself."""

import comfy.ldm.common_dit
import torch

from . import linear, mlp_embed, reference_joint_block, timestep_embedding


def approximator(layer, x):
    """Chroma's distilled_guidance_layer: in_proj, residual MLP embedders on RMS-normed input, out_proj."""
    x = linear(layer.in_proj, x)
    for embedder, norm in zip(layer.layers, layer.norms, strict=True):
        scale = norm.scale if hasattr(norm, "scale") else norm.weight
        eps = getattr(norm, "eps", None) or (torch.finfo(x.dtype).eps if hasattr(norm, "eps") else 1e-6)
        x = x + mlp_embed(embedder, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale)
    return linear(layer.out_proj, x)


def modulation_table(dm, t, guidance):
    """[B, 344, C]: every row Chroma's forward makes from (timestep, guidance, row index)."""
    b = t.shape[0]
    rows = timestep_embedding(torch.arange(344), 32)
    conditioning = torch.cat([timestep_embedding(t, 16), timestep_embedding(guidance, 16)], dim=-1)
    x = torch.cat([conditioning[:, None].expand(b, 344, -1), rows[None].expand(b, -1, -1)], dim=-1)
    return approximator(dm.distilled_guidance_layer, x)


def image_tokens(dm, x):
    """(tokens [B, N, C], rows, columns): Chroma's 2 x 2 latent patches through img_in; Radiance's 16-pixel
    patches (the image padded as its forward pads it) through its own patch embedding."""
    if hasattr(dm, "img_in_patch"):  # Radiance
        padded = comfy.ldm.common_dit.pad_to_patch_size(x, (dm.patch_size, dm.patch_size))
        return dm.img_in(padded), padded.shape[-2] // dm.patch_size, padded.shape[-1] // dm.patch_size
    b, c, hh, ww = x.shape
    img = x.reshape(b, c, hh // 2, 2, ww // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww // 4, c * 4)
    return linear(dm.img_in, img), hh // 2, ww // 2


def chroma_reference_scores(dm, x, t, context, guidance, concept_context):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and Chroma's layout."""
    p = dm.params
    b = x.shape[0]
    img, n_rows, n_cols = image_tokens(dm, x)
    txt = linear(dm.txt_in, context)
    concepts = linear(dm.txt_in, concept_context.expand(b, -1, -1))
    table = modulation_table(dm, t, guidance)
    single, double = p.depth_single_blocks, p.depth
    rows, cols = torch.meshgrid(torch.arange(n_rows), torch.arange(n_cols), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, -1, 3).float().expand(b, -1, -1)
    ids = torch.cat([torch.zeros(b, txt.shape[1], 3), img_ids], dim=1)
    scores, streams = [], (img, txt, concepts)
    for i, block in enumerate(dm.double_blocks):
        img_rows = table[:, 3 * single + 6 * i: 3 * single + 6 * i + 6]
        txt_rows = table[:, 3 * single + 6 * double + 6 * i: 3 * single + 6 * double + 6 * i + 6]
        img_mod = [img_rows[:, j:j + 1] for j in range(6)]
        txt_mod = [txt_rows[:, j:j + 1] for j in range(6)]  # the concepts' too: no pooled vector in Chroma
        layer, streams = reference_joint_block(block, streams, (img_mod, txt_mod, txt_mod), ids, p.axes_dim, p.theta)
        scores.append(layer)
    return scores


def expected_scores(dm, call, concepts, positions):
    return chroma_reference_scores(dm, call["x"], call["timestep"], call["context"], call["guidance"], concepts)
