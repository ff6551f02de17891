"""Ernie-Image: one stream of [image; text] tokens, the image first, through shared AdaLN blocks. One (shift, scale,
gate) pair of modulations from the timestep alone serves every block; RMSNorms, q/k/v, q/k RMSNorm and RoPE on
split-half channel pairs, at (j, 0, 0) for text token j and (text length, row, column) for image tokens. The
concepts are projected as the text is, sit at their one-word prompt's position and attend over
[concept keys; image keys]."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge


def rms(x, norm):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight


def rotation(ids, axes_dim, theta):
    """[L, D/2, 2, 2] per token: each axis's angles pos * theta^(-2m/dim) (float64, as the model computes them),
    laid out as Ernie-Image pairs channel d with d + D/2: the first half of the angles turn the first channels'
    outputs, the second half the second channels'."""
    angles = torch.cat([ids[:, axis, None].double() * theta ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
                        for axis, dim in enumerate(axes_dim)], dim=-1).float()
    half = angles.shape[-1] // 2
    top, bottom = angles[:, :half].repeat_interleave(2, -1), angles[:, half:].repeat_interleave(2, -1)
    return torch.stack([top.cos(), -top.sin(), bottom.sin(), bottom.cos()], dim=-1).reshape(*top.shape, 2, 2)


def rotate(x, matrix):
    """x [B, H, L, D]: (x_d, x_d+D/2) -> matrix @ (x_d, x_d+D/2)."""
    first, second = x.chunk(2, dim=-1)
    return torch.cat([matrix[..., 0, 0] * first + matrix[..., 0, 1] * second,
                      matrix[..., 1, 0] * first + matrix[..., 1, 1] * second], dim=-1)


def ernie_reference_scores(dm, x, timesteps, context, concept_context, positions):
    b, c, h, w = x.shape
    p = dm.patch_size
    rows, cols = h // p, w // p
    image = F.conv2d(x, dm.x_embedder.proj.weight, dm.x_embedder.proj.bias, stride=p).flatten(2).transpose(1, 2)
    project = (lambda t: t) if dm.text_proj is None else (lambda t: linear(dm.text_proj, t))
    text, concepts = project(context), project(concept_context).expand(b, -1, -1)
    n_img, n_txt = rows * cols, text.shape[1]
    half = dm.hidden_size // 2
    args = timesteps[:, None].float() * torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    temb = linear(dm.time_embedding.linear_2, F.silu(linear(dm.time_embedding.linear_1,
                                                            torch.cat([args.sin(), args.cos()], dim=-1))))
    mods = [m[:, None] for m in linear(dm.adaLN_modulation[1], F.silu(temb)).chunk(6, dim=-1)]
    shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
    image_ids = torch.stack([torch.full((n_img,), float(n_txt)), torch.arange(rows).repeat_interleave(cols).float(),
                             torch.arange(cols).repeat(rows).float()], dim=1)
    text_ids = torch.zeros(n_txt, 3)
    text_ids[:, 0] = torch.arange(n_txt)
    concept_ids = torch.zeros(len(positions), 3)
    concept_ids[:, 0] = torch.tensor(positions, dtype=torch.float32)
    axes, theta = dm.pos_embed.axes_dim, dm.pos_embed.theta
    joint_rotation, concept_rotation = rotation(torch.cat([image_ids, text_ids]), axes, theta), rotation(
        concept_ids, axes, theta)
    joint, scores = torch.cat([image, text], dim=1), []
    for block in dm.layers:
        attn = block.self_attention

        def qkv(stream, matrix, block=block, attn=attn):
            h_ = rms(stream, block.adaLN_sa_ln) * (1 + scale_msa) + shift_msa
            q, k, v = (heads(linear(layer, h_), attn.heads) for layer in (attn.to_q, attn.to_k, attn.to_v))
            return rotate(rms(q, attn.norm_q), matrix), rotate(rms(k, attn.norm_k), matrix), v

        q, k, v = qkv(joint, joint_rotation)
        cq, ck, cv = qkv(concepts, concept_rotation)
        out = merge(attention(q, k, v))
        image_keys, image_values = k[:, :, :n_img], v[:, :, :n_img]
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, image_values], 2)))
        cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ out[:, :n_img].transpose(1, 2), cross))

        def update(stream, attended, block=block, attn=attn):
            stream = stream + gate_msa * linear(attn.to_out[0], attended)
            h_ = rms(stream, block.adaLN_mlp_ln) * (1 + scale_mlp) + shift_mlp
            mlp = block.mlp
            return stream + gate_mlp * linear(mlp.linear_fc2, linear(mlp.up_proj, h_) * F.gelu(linear(mlp.gate_proj, h_)))

        joint, concepts = update(joint, out), update(concepts, concept_out)
    return scores


def expected_scores(dm, call, concepts, positions):
    return ernie_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The comparison can tell the concepts' positions."""
    other = ernie_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts,
                                   [p + 3 for p in positions])
    assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4)
