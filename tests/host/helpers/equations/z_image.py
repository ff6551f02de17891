"""Z-Image and Lumina 2 (NextDiT): one stream of [caption; image] tokens through shared weights. The caption is
embedded and refined alone (context_refiner, no modulation), the image embedded and refined alone (noise_refiner,
modulated); then every joint layer runs both with one scale-only modulation, tanh gates and post-norms. The
concepts take the caption's path: embedded, refined as one-token captions at their own positions, then every
layer's shared weights with the timestep's modulation, attending over [concept keys; image keys] (Z-Image's
image pad tokens included); the scores cover the generated image's tokens."""

import math

import torch
import torch.nn.functional as F

from ..models import rms_norm_eps
from . import attention, heads, linear, merge, rope


def rms(x, norm):
    """ComfyUI's RMSNorm, in float32."""
    eps = norm.eps if getattr(norm, "eps", None) is not None else rms_norm_eps(norm, torch.float32)
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight


def timestep_embedding(t, dim, max_period=10000):
    """MMDiT's TimestepEmbedder: cosines, then sines."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def time_embedding(dm, t):
    embedder = dm.t_embedder
    h = timestep_embedding(t * getattr(dm, "time_scale", 1.0), embedder.frequency_embedding_size)
    return linear(embedder.mlp[2], F.silu(linear(embedder.mlp[0], h)))


def modulation(block, temb):
    """(scale_msa, tanh gate_msa, scale_mlp, tanh gate_mlp), [B, 1, C] each; Z-Image's adaLN has no SiLU."""
    layers = list(block.adaLN_modulation)
    h = F.silu(temb) if isinstance(layers[0], torch.nn.SiLU) else temb
    scale_msa, gate_msa, scale_mlp, gate_mlp = (c[:, None] for c in linear(layers[-1], h).chunk(4, dim=-1))
    return scale_msa, gate_msa.tanh(), scale_mlp, gate_mlp.tanh()


def qkv(block, x, scale, ids, axes, theta):
    """A layer's shared q/k/v of tokens x at RoPE positions ids, grouped key/value heads repeated."""
    attn = block.attention
    h = rms(x, block.attention_norm1) * (1 + scale)
    H, KV, D = attn.n_local_heads, attn.n_local_kv_heads, attn.head_dim
    q, k, v = linear(attn.qkv, h).split([H * D, KV * D, KV * D], dim=-1)
    q, k, v = heads(q, H), heads(k, KV), heads(v, KV)
    q, k = rms(q, attn.q_norm), rms(k, attn.k_norm)
    q, k = rope(q, ids, axes, theta), rope(k, ids, axes, theta)
    return q, k.repeat_interleave(H // KV, dim=1), v.repeat_interleave(H // KV, dim=1)


def attention_update(block, x, out, gate):
    return x + gate * rms(linear(block.attention.out, out), block.attention_norm2)


def feed_forward_update(block, x, scale, gate):
    ff = block.feed_forward
    h = rms(x, block.ffn_norm1) * (1 + scale)
    return x + gate * rms(linear(ff.w2, F.silu(linear(ff.w1, h)) * linear(ff.w3, h)), block.ffn_norm2)


def run_block(block, x, ids, axes, theta, mod=None):
    """A whole NextDiT block on x alone (a refiner); mod None: unmodulated (context_refiner)."""
    scale_msa, gate_msa, scale_mlp, gate_mlp = mod if mod is not None else (0.0, 1.0, 0.0, 1.0)
    q, k, v = qkv(block, x, scale_msa, ids, axes, theta)
    x = attention_update(block, x, merge(attention(q, k, v)), gate_msa)
    return feed_forward_update(block, x, scale_mlp, gate_mlp)


def padded(tokens, pad_token, multiple):
    if not multiple:
        return tokens
    extra = (-tokens.shape[1]) % multiple
    return torch.cat([tokens, pad_token[None].expand(tokens.shape[0], extra, -1)], dim=1)


def with_pooled(dm, temb, pooled):
    """NewBie's modulation input: the timestep embedding beside the projected pooled CLIP vector (zeros, unprojected,
    where none is given: the model's own rule, and the concepts')."""
    if getattr(dm, "clip_text_pooled_proj", None) is None:
        return temb
    if pooled is None:
        pooled = torch.zeros(temb.shape[0], dm.clip_text_dim)
    else:
        proj = dm.clip_text_pooled_proj
        pooled = linear(proj[1], rms(pooled, proj[0]))
    return linear(dm.time_text_embed[1], F.silu(torch.cat([temb, pooled], dim=-1)))


def z_image_reference_scores(dm, x, timesteps, context, concept_context, positions, caption_start, refine=True,
                             image_pads=True, pooled=None, concepts_pooled=False):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and NextDiT's forward.
    refine False: the concepts skip context_refiner; image_pads False: they attend over the image's patches only;
    concepts_pooled: their modulation takes the prompt's pooled vector (negative checks)."""
    p, axes, theta = dm.patch_size, dm.rope_embedder.axes_dim, dm.rope_embedder.theta
    multiple = getattr(dm, "pad_tokens_multiple", None)
    x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p), mode="circular")
    b, c, h, w = x.shape
    rows, cols = h // p, w // p
    t_embedded = time_embedding(dm, 1.0 - timesteps)
    temb = with_pooled(dm, t_embedded, pooled)
    concept_temb = with_pooled(dm, t_embedded, pooled if concepts_pooled else None)
    caption = padded(linear(dm.cap_embedder[1], rms(context, dm.cap_embedder[0])), getattr(dm, "cap_pad_token", None),
                     multiple)
    n_cap = caption.shape[1]
    cap_ids = torch.zeros(b, n_cap, 3)
    cap_ids[..., 0] = torch.arange(n_cap) + caption_start
    for block in dm.context_refiner:
        caption = run_block(block, caption, cap_ids, axes, theta)
    patches = x.view(b, c, rows, p, cols, p).permute(0, 2, 4, 3, 5, 1).flatten(3).flatten(1, 2)
    image = padded(linear(dm.x_embedder, patches), getattr(dm, "x_pad_token", None), multiple)
    img_ids = torch.zeros(b, image.shape[1], 3)  # pad tokens sit at (0, 0, 0)
    img_ids[:, :rows * cols, 0] = n_cap + caption_start
    img_ids[:, :rows * cols, 1] = torch.arange(rows).repeat_interleave(cols)
    img_ids[:, :rows * cols, 2] = torch.arange(cols).repeat(rows)
    for block in dm.noise_refiner:
        image = run_block(block, image, img_ids, axes, theta, modulation(block, temb))

    # the concepts: one-token captions refined alone at their own positions
    k_concepts = concept_context.shape[1]
    concepts = linear(dm.cap_embedder[1], rms(concept_context, dm.cap_embedder[0])).expand(b, -1, -1)
    concept_ids = torch.zeros(1, k_concepts, 3)
    concept_ids[..., 0] = torch.tensor(positions, dtype=torch.float32)
    refined = []
    for k in range(k_concepts):
        one = concepts[:, k:k + 1]
        for block in dm.context_refiner if refine else ():
            one = run_block(block, one, concept_ids[:, k:k + 1], axes, theta)
        refined.append(one)
    concepts = torch.cat(refined, dim=1)

    joint, ids, n_img, scores = torch.cat([caption, image], 1), torch.cat([cap_ids, img_ids], 1), rows * cols, []
    for block in dm.layers:
        scale_msa, gate_msa, scale_mlp, gate_mlp = modulation(block, temb)
        c_scale_msa, c_gate_msa, c_scale_mlp, c_gate_mlp = modulation(block, concept_temb)
        q, k, v = qkv(block, joint, scale_msa, ids, axes, theta)
        out = merge(attention(q, k, v))
        cq, ck, cv = qkv(block, concepts, c_scale_msa, concept_ids.expand(b, -1, -1), axes, theta)
        image_keys, image_values = k[:, :, n_cap:], v[:, :, n_cap:]
        if not image_pads:
            image_keys, image_values = image_keys[:, :, :n_img], image_values[:, :, :n_img]
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, image_values], 2)))
        cross = (cq @ image_keys[:, :, :n_img].transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ out[:, n_cap:n_cap + n_img].transpose(1, 2), cross))
        joint = attention_update(block, joint, out, gate_msa)
        concepts = attention_update(block, concepts, concept_out, c_gate_msa)
        joint = feed_forward_update(block, joint, scale_mlp, gate_mlp)
        concepts = feed_forward_update(block, concepts, c_scale_mlp, c_gate_mlp)
    return scores


def expected_scores(dm, call, concepts, positions, caption_start=1):
    return z_image_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions,
                                    caption_start, pooled=call.get("kwargs", {}).get("clip_text_pooled"))


def sanity(dm, call, clip, names, concepts, positions, expected, caption_start=1):
    """The comparison can tell the concepts' positions, their refiner and (Z-Image) the image's pad tokens; NewBie's
    prompt carries a pooled vector, which the image's modulation takes and the concepts' does not."""
    if getattr(dm, "clip_text_pooled_proj", None) is not None:
        assert call.get("kwargs", {}).get("clip_text_pooled") is not None
    args = (dm, call["x"], call["timesteps"], call["context"], concepts)
    pooled = call.get("kwargs", {}).get("clip_text_pooled")
    changes = [dict(positions=[p + 5 for p in positions]), dict(refine=False)]
    if getattr(dm, "pad_tokens_multiple", None):
        changes.append(dict(image_pads=False))
    if pooled is not None and getattr(dm, "clip_text_pooled_proj", None) is not None:
        changes.append(dict(concepts_pooled=True))
    for change in changes:
        settings = {"positions": positions, "caption_start": caption_start, "pooled": pooled, **change}
        other = z_image_reference_scores(*args, **settings)
        assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4), change
