"""Ideogram 4: one stream of [text; image] tokens through shared weights. Text features are embedded by an RMSNorm
and a projection plus the text rows' indicator embedding; image tokens (one per latent cell, its 2 x 2 x 32
channels) by a projection plus the image rows' indicator. Every layer modulates all tokens alike (scale and tanh
gate from the timestep), attends with one qkv, q/k RMSNorm and Qwen3-VL's interleaved multimodal RoPE on
split-half channel pairs, post-norms its projection and SwiGLU. The concepts are embedded as the text is, at
position (p, p, p), and attend over [concept keys; image keys]."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge

IMAGE_POSITION_OFFSET = 65536


def rms(x, norm):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight


def angles(ids, head_dim, theta, sections):
    """[L, D/2] rotation angles: pair k turns by position * theta^(-2k/D) on its axis; pairs 1, 4, ... (up to
    3 x the row section) take the row, pairs 2, 5, ... (3 x the column section) the column, the rest the frame."""
    k = torch.arange(head_dim // 2)
    axis = torch.zeros(head_dim // 2, dtype=torch.long)
    axis[(k % 3 == 1) & (k < 3 * sections[1])] = 1
    axis[(k % 3 == 2) & (k < 3 * sections[2])] = 2
    # in float32, as the model computes them: at the image's offset positions (65536 on) float32 angles are off
    # by up to 4e-3 rad, and the concepts' keys are compared with the image's as the model turned them
    inverse = 1.0 / theta ** (torch.arange(0, head_dim, 2).float() / head_dim)
    return ids[:, axis].float() * inverse


def rotate(x, angle):
    """Split-half RoPE on x [B, H, L, D]: channel k pairs with k + D/2."""
    first, second = x.chunk(2, dim=-1)
    cos, sin = angle.cos(), angle.sin()
    return torch.cat([first * cos - second * sin, first * sin + second * cos], dim=-1)


def ideogram4_reference_scores(dm, x, timesteps, context, concept_context, positions):
    b, c, gh, gw = x.shape
    tokens = x.view(b, c // 4, 2, 2, gh, gw).permute(0, 4, 5, 2, 3, 1).reshape(b, gh * gw, c)
    indicator = dm.embed_image_indicator.weight
    image = linear(dm.input_proj, tokens) + indicator[1]
    text = linear(dm.llm_cond_proj, rms(context, dm.llm_cond_norm)) + indicator[0]
    concepts = (linear(dm.llm_cond_proj, rms(concept_context, dm.llm_cond_norm)) + indicator[0]).expand(b, -1, -1)
    t = 1.0 - timesteps
    scaled = 1e4 * t.float()
    half = dm.t_embedding.dim // 2
    freq = torch.exp(torch.arange(half, dtype=torch.float32) * -(math.log(1e4) / (half - 1)))
    emb = torch.cat([torch.sin(scaled[:, None] * freq), torch.cos(scaled[:, None] * freq)], dim=-1)
    t_cond = linear(dm.t_embedding.mlp_out, F.silu(linear(dm.t_embedding.mlp_in, emb)))
    adaln = F.silu(linear(dm.adaln_proj, t_cond))[:, None]
    n_txt = text.shape[1]
    text_ids = torch.arange(n_txt).view(-1, 1).expand(n_txt, 3)
    image_ids = torch.stack([torch.zeros(gh * gw, dtype=torch.long), torch.arange(gh).repeat_interleave(gw),
                             torch.arange(gw).repeat(gh)], dim=1) + IMAGE_POSITION_OFFSET
    head_dim, sections = dm.head_dim, dm.mrope_section
    joint_angle = angles(torch.cat([text_ids, image_ids]), head_dim, dm.rope_theta, sections)
    concept_angle = angles(torch.tensor(positions).view(-1, 1).expand(-1, 3), head_dim, dm.rope_theta, sections)
    joint, scores = torch.cat([text, image], dim=1), []
    for block in dm.layers:
        scale_msa, gate_msa, scale_mlp, gate_mlp = linear(block.adaln_modulation, adaln).chunk(4, dim=-1)
        gate_msa, gate_mlp = gate_msa.tanh(), gate_mlp.tanh()

        def qkv(stream, angle, block=block, scale=scale_msa):
            attn = block.attention
            q, k, v = linear(attn.qkv, rms(stream, block.attention_norm1) * (1 + scale)).chunk(3, dim=-1)
            q, k, v = heads(q, attn.num_heads), heads(k, attn.num_heads), heads(v, attn.num_heads)
            return rotate(rms(q, attn.norm_q), angle), rotate(rms(k, attn.norm_k), angle), v

        q, k, v = qkv(joint, joint_angle)
        cq, ck, cv = qkv(concepts, concept_angle)
        out = merge(attention(q, k, v))
        image_keys, image_values = k[:, :, n_txt:], v[:, :, n_txt:]
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, image_values], 2)))
        cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ out[:, n_txt:].transpose(1, 2), cross))

        def update(stream, attended, block=block, gate_msa=gate_msa, scale_mlp=scale_mlp, gate_mlp=gate_mlp):
            ff = block.feed_forward
            stream = stream + gate_msa * rms(linear(block.attention.o, attended), block.attention_norm2)
            h = rms(stream, block.ffn_norm1) * (1 + scale_mlp)
            return stream + gate_mlp * rms(linear(ff.w2, F.silu(linear(ff.w1, h)) * linear(ff.w3, h)), block.ffn_norm2)

        joint, concepts = update(joint, out), update(concepts, concept_out)
    return scores


def expected_scores(dm, call, concepts, positions):
    return ideogram4_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The comparison can tell the concepts' positions."""
    other = ideogram4_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts,
                                       [p + 3 for p in positions])
    assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4)
