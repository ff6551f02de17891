"""OmniGen2: Lumina 2's single stream. The caption is embedded and refined alone (context_refiner, unmodulated),
the image alone (noise_refiner, modulated); then every joint layer runs [caption; image] with one scale-only
modulation, tanh gates and post-norms, q/k/v of grouped heads and RoPE at (j, j, j) for caption token j,
(caption length, row, column) for image tokens. The concepts take the caption's path as one-token captions at
their own positions, then every layer's shared weights with the timestep's modulation, attending over
[concept keys; image keys]."""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..models import rms_norm_eps
from . import attention, heads, linear, merge, rope


def rms(x, norm):
    eps = norm.eps if getattr(norm, "eps", None) is not None else rms_norm_eps(norm, torch.float32)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight


def time_embedding(dm, t):
    """Timesteps (cosines first, no shift), then the two-layer embedder."""
    embed = dm.time_caption_embed
    dim = embed.time_proj.num_channels
    half = dim // 2
    args = t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)[None]
    proj = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    mlp = embed.timestep_embedder
    return linear(mlp.linear_2, F.silu(linear(mlp.linear_1, proj)))


def run_block(block, x, ids, axes, theta, temb=None, attend_over=None):
    """A whole block on x; temb None: unmodulated (context_refiner). Returns (x updated, attention output)."""
    attn = block.attn
    if temb is not None:
        scale_msa, gate_msa, scale_mlp, gate_mlp = (c[:, None] for c in linear(block.norm1.linear, F.silu(temb)).chunk(4, 1))
        h = rms(x, block.norm1.norm) * (1 + scale_msa)
        gate_msa, gate_mlp = gate_msa.tanh(), gate_mlp.tanh()
    else:
        scale_mlp, gate_msa, gate_mlp = 0.0, 1.0, 1.0
        h = rms(x, block.norm1)
    q = rope(rms(heads(linear(attn.to_q, h), attn.heads), attn.norm_q), ids, axes, theta)
    k = rope(rms(heads(linear(attn.to_k, h), attn.kv_heads), attn.norm_k), ids, axes, theta)
    v = heads(linear(attn.to_v, h), attn.kv_heads)
    repeat = attn.heads // attn.kv_heads
    k, v = k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)
    if attend_over is not None:  # the concepts: over [their keys; the image's]
        image_keys, image_values = attend_over
        out = merge(attention(q, torch.cat([k, image_keys], 2), torch.cat([v, image_values], 2)))
    else:
        out = merge(attention(q, k, v))
    x = x + gate_msa * rms(linear(attn.to_out[0], out), block.norm2)
    ff = block.feed_forward
    h = rms(x, block.ffn_norm1) * (1 + scale_mlp)
    x = x + gate_mlp * rms(linear(ff.linear_2, F.silu(linear(ff.linear_1, h)) * linear(ff.linear_3, h)), block.ffn_norm2)
    return x, out, (q, k, v)


@dataclass
class Refined:
    """The caption, the image and the concepts after OmniGen2's refiners (the concepts each a one-token caption at
    its own position), with their RoPE ids, the timestep's embedding and the RoPE settings."""

    caption: torch.Tensor
    image: torch.Tensor
    concepts: torch.Tensor
    caption_ids: torch.Tensor
    image_ids: torch.Tensor
    concept_ids: torch.Tensor
    temb: torch.Tensor
    axes: list
    theta: float


def refined_inputs(dm, x, timesteps, context, concept_context, positions, time_scale: float = 1.0) -> Refined:
    """OmniGen2's (and Boogu's) paths before the joint blocks, written from the model's layout."""
    p = dm.patch_size
    embedder = dm.rope_embedder.rope_embedder
    axes, theta = embedder.axes_dim, embedder.theta
    x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p), mode="circular")
    b, c, h, w = x.shape
    rows, cols = h // p, w // p
    temb = time_embedding(dm, (1.0 - timesteps) * time_scale)
    caption_embedder = dm.time_caption_embed.caption_embedder
    caption = linear(caption_embedder[1], rms(context, caption_embedder[0]))
    n_cap = caption.shape[1]
    cap_ids = torch.arange(n_cap).view(1, -1, 1).expand(b, -1, 3).float()
    for block in dm.context_refiner:
        caption = run_block(block, caption, cap_ids, axes, theta)[0]
    patches = x.reshape(b, c, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1).reshape(b, rows * cols, -1)
    image = linear(dm.x_embedder, patches)
    img_ids = torch.stack([torch.full((rows * cols,), float(n_cap)), torch.arange(rows).repeat_interleave(cols).float(),
                           torch.arange(cols).repeat(rows).float()], dim=1).expand(b, -1, -1)
    for block in dm.noise_refiner:
        image = run_block(block, image, img_ids, axes, theta, temb)[0]
    concept_ids = torch.tensor(positions, dtype=torch.float32).view(1, -1, 1).expand(b, -1, 3)
    concepts = linear(caption_embedder[1], rms(concept_context, caption_embedder[0])).expand(b, -1, -1)
    refined = []
    for k in range(concepts.shape[1]):
        one = concepts[:, k:k + 1]
        for block in dm.context_refiner:
            one = run_block(block, one, concept_ids[:, k:k + 1], axes, theta)[0]
        refined.append(one)
    return Refined(caption, image, torch.cat(refined, dim=1), cap_ids, img_ids, concept_ids, temb, axes, theta)


def omnigen2_reference_scores(dm, x, timesteps, context, concept_context, positions):
    r = refined_inputs(dm, x, timesteps, context, concept_context, positions)
    caption, image, concepts, cap_ids, img_ids = r.caption, r.image, r.concepts, r.caption_ids, r.image_ids
    concept_ids, temb, axes, theta, n_cap = r.concept_ids, r.temb, r.axes, r.theta, r.caption.shape[1]
    joint, ids, scores = torch.cat([caption, image], 1), torch.cat([cap_ids, img_ids], 1), []
    for block in dm.layers:
        joint_next, out, (q, k, v) = run_block(block, joint, ids, axes, theta, temb)
        image_keys, image_values = k[:, :, n_cap:], v[:, :, n_cap:]
        concepts_next, concept_out, (cq, _, _) = run_block(block, concepts, concept_ids, axes, theta, temb,
                                                           attend_over=(image_keys, image_values))
        cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ out[:, n_cap:].transpose(1, 2), cross))
        joint, concepts = joint_next, concepts_next
    return scores


def expected_scores(dm, call, concepts, positions):
    return omnigen2_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The comparison can tell the concepts' positions."""
    other = omnigen2_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts,
                                      [p + 3 for p in positions])
    assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4)
