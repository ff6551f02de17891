"""CogVideoX: one joint attention over [text; video] with shared q/k/v and q/k LayerNorms, RoPE (1.0 5B, 1.5) or
sincos positions (1.0 2B) on the video tokens only; the concepts take the text's modulation (enc_* of norm1,
norm2), its projection and feed-forward, attend over [concept keys; video keys], and have no positions."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge


def timestep_embedding(t, dim):
    """Sinusoidal, cosines first (CogVideoX's flip_sin_to_cos, no shift)."""
    half = dim // 2
    args = t[:, None].float() * torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def time_embedding(dm, t, ofs):
    emb = linear(dm.time_embedding_linear_2, F.silu(linear(dm.time_embedding_linear_1,
                                                           timestep_embedding(t, dm.time_proj_dim))))
    if dm.ofs_embedding_linear_1 is not None and ofs is not None:
        ofs_emb = timestep_embedding(ofs, dm.ofs_proj_dim)
        emb = emb + linear(dm.ofs_embedding_linear_2, F.silu(linear(dm.ofs_embedding_linear_1, ofs_emb)))
    return emb


def layer_norm(x, norm):
    return F.layer_norm(x, x.shape[-1:], norm.weight, norm.bias, norm.eps)


def rotate(x, cos, sin):
    """RoPE on interleaved channel pairs (x0, x1) -> (x0 cos - x1 sin, x1 cos + x0 sin)."""
    pairs = x.reshape(*x.shape[:-1], -1, 2)
    turned = torch.stack([-pairs[..., 1], pairs[..., 0]], dim=-1).flatten(-2)
    return x * cos + turned * sin


def shared_qkv(block, stream, mod):
    """The block's one q/k/v and q/k LayerNorms on a stream modulated by mod = (shift, scale, gate)."""
    h = layer_norm(stream, block.norm1.norm) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(linear(layer, h), block.num_heads) for layer in (block.q, block.k, block.v))
    return layer_norm(q, block.norm_q), layer_norm(k, block.norm_k), v


def feed_forward(block, x, mod):
    """x + gate * FF(modulated LayerNorm(x)), mod = (shift, scale, gate)."""
    h = layer_norm(x, block.norm2.norm) * (1 + mod[1]) + mod[0]
    return x + mod[2] * linear(block.ff_out, F.gelu(linear(block.ff_proj, h), approximate="tanh"))


def cogvideox_reference_scores(dm, x, t, context, concept_context, ofs=None, concepts_ofs=True):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and CogVideoX's block:
    one joint attention over [text; video] with shared q/k/v and q/k LayerNorms, RoPE on the video tokens
    only; the concepts take the text's modulation (enc_* of norm1, norm2), its projection and feed-forward,
    attend over [concept keys; video keys], and have no positions. The video and text tokens come from the
    model's own patch embedding (its positions included), over the latent padded as its forward pads it.
    concepts_ofs False: the concepts' modulation without the ofs embedding (a negative check)."""
    p, p_t = dm.patch_size, dm.patch_size_t or 1
    x = torch.cat([x, x[:, :, :-x.shape[2] % p_t or x.shape[2]]], dim=2) if x.shape[2] % p_t else x  # circular
    frames, rows, cols = x.shape[2] // p_t, x.shape[3] // p, x.shape[4] // p
    tokens = dm.patch_embed(context, x.permute(0, 2, 1, 3, 4))
    txt, img = tokens[:, :context.shape[1]], tokens[:, context.shape[1]:]
    assert img.shape[1] == frames * rows * cols
    concepts = linear(dm.patch_embed.text_proj, concept_context.expand(x.shape[0], -1, -1))
    emb = F.silu(time_embedding(dm, t, ofs))
    concept_emb = emb if concepts_ofs else F.silu(time_embedding(dm, t, None))
    rope = dm._get_rotary_emb(rows, cols, frames, x.device) if dm.use_rotary_positional_embeddings else None
    n_txt, scores = txt.shape[1], []
    for block in dm.blocks:
        img_mod, txt_mod = (linear(block.norm1.linear, emb)[:, None].chunk(6, dim=-1)[i:i + 3] for i in (0, 3))
        concept_mod = linear(block.norm1.linear, concept_emb)[:, None].chunk(6, dim=-1)[3:]
        tq, tk, tv = shared_qkv(block, txt, txt_mod)
        iq, ik, iv = shared_qkv(block, img, img_mod)
        cq, ck, cv = shared_qkv(block, concepts, concept_mod)  # the text's modulation, no RoPE
        if rope is not None:
            iq, ik = rotate(iq, *rope), rotate(ik, *rope)
        joint = merge(attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2)))
        txt_out, img_out = joint[:, :n_txt], joint[:, n_txt:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ ik.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        img = img + img_mod[2] * linear(block.attn_out, img_out)
        txt = txt + txt_mod[2] * linear(block.attn_out, txt_out)
        concepts = concepts + concept_mod[2] * linear(block.attn_out, concept_out)
        mlp_mod = linear(block.norm2.linear, emb)[:, None].chunk(6, dim=-1)
        concept_mlp_mod = linear(block.norm2.linear, concept_emb)[:, None].chunk(6, dim=-1)[3:]
        img, txt, concepts = (feed_forward(block, img, mlp_mod[:3]), feed_forward(block, txt, mlp_mod[3:]),
                              feed_forward(block, concepts, concept_mlp_mod))
    return scores, (frames, rows, cols)


def expected_scores(dm, call, concepts, positions):
    return cogvideox_reference_scores(dm, call["x"], call["timestep"], call["context"], concepts, call.get("ofs"))[0]


def sanity(dm, call, clip, names, concepts, positions, expected):
    """1.5 image-to-video: the ofs embedding reaches the concepts' modulation, and the comparison can tell."""
    if call.get("ofs") is not None:
        without, _ = cogvideox_reference_scores(dm, call["x"], call["timestep"], call["context"], concepts,
                                                call["ofs"], concepts_ofs=False)
        assert not torch.allclose(expected[-1][0], without[-1][0], rtol=1e-4, atol=1e-4)
