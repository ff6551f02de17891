"""An independent implementation of the paper's equations, written with explicit concatenation and softmax, to
compare the concept stream's maps with on the same weights and the same model inputs.

This module holds the pieces every family shares (projections, RoPE, attention, a Flux-style double block
with the concepts beside the text) and the comparison itself; one module per family (flux.py, chroma.py, ...)
reads that family's layout. Each family module's `expected_scores(dm, call, concepts, positions, **settings)`
returns the per-layer (output scores, cross-attention scores) [B, K, N] from the diffusion model `dm`, the
arguments of its forward's first call (`call`, by name), the encoded concepts and their token positions.
"""

import math

import torch
import torch.nn.functional as F

from ..models import rms_norm_eps, rms_norm_scale


def linear(module, x):
    return F.linear(x, module.weight, module.bias)


def timestep_embedding(t, dim=256):
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = 1000.0 * t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def mlp_embed(embedder, x):
    return linear(embedder.out_layer, F.silu(linear(embedder.in_layer, x)))


def rope(x, ids, axes_dim, theta):
    """Rotate channel pairs of x [B, H, L, D] by angles pos * theta^(-2i/d) per position axis."""
    angles = []
    for axis, dim in enumerate(axes_dim):
        omega = 1.0 / theta ** (torch.arange(0, dim, 2, dtype=torch.float64) / dim)
        angles.append(ids[..., axis, None].double() * omega)
    angle = torch.cat(angles, dim=-1).float()[:, None]  # [B, 1, L, D/2]
    even, odd = x[..., 0::2], x[..., 1::2]
    out = torch.stack([even * angle.cos() - odd * angle.sin(), even * angle.sin() + odd * angle.cos()], dim=-1)
    return out.flatten(-2)


def attention(q, k, v):
    weights = torch.softmax(q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1]), dim=-1)
    return weights @ v


def heads(x, n):
    b, length, c = x.shape
    return x.view(b, length, n, c // n).transpose(1, 2)


def merge(x):
    b, h, length, d = x.shape
    return x.transpose(1, 2).reshape(b, length, h * d)


def stream_qkv(attn, norm1_out, mod, n_heads):
    shift, scale = mod[0], mod[1]
    modulated = F.layer_norm(norm1_out, norm1_out.shape[-1:], eps=1e-6) * (1 + scale) + shift
    q, k, v = linear(attn.qkv, modulated).chunk(3, dim=-1)
    q, k, v = heads(q, n_heads), heads(k, n_heads), heads(v, n_heads)

    def rms(x, norm):
        eps = rms_norm_eps(norm, x.dtype)
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * rms_norm_scale(norm)

    return rms(q, attn.norm.query_norm), rms(k, attn.norm.key_norm), v


def residual(x, attn_out, proj, mlp, mod):
    x = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    return x + mod[5] * linear(mlp[2], F.gelu(linear(mlp[0], h), approximate="tanh"))


def reference_joint_block(block, streams, mods, ids, axes_dim, theta, concept_ids=None, update=residual):
    """One double block, written from the paper: the joint attention of text and image, the concepts
    over [concept keys; image keys] with the text stream's weights, both scores, then every stream's
    residual update. streams/mods: (image, text, concepts); concept_ids None: positions zero.
    Returns ((output scores, cross-attention scores) [B, K, N], the updated streams)."""
    img, txt, concepts = streams
    img_mod, txt_mod, concept_mod = mods
    n_txt = txt.shape[1]
    iq, ik, iv = stream_qkv(block.img_attn, img, img_mod, block.num_heads)
    tq, tk, tv = stream_qkv(block.txt_attn, txt, txt_mod, block.num_heads)
    cq, ck, cv = stream_qkv(block.txt_attn, concepts, concept_mod, block.num_heads)
    q = rope(torch.cat([tq, iq], dim=2), ids, axes_dim, theta)
    k = rope(torch.cat([tk, ik], dim=2), ids, axes_dim, theta)
    v = torch.cat([tv, iv], dim=2)
    if concept_ids is not None:
        cq, ck = rope(cq, concept_ids, axes_dim, theta), rope(ck, concept_ids, axes_dim, theta)
    joint = merge(attention(q, k, v))
    txt_out, img_out = joint[:, :n_txt], joint[:, n_txt:]
    image_keys = k[:, :, n_txt:]
    concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, v[:, :, n_txt:]], 2)))
    output_scores = concept_out @ img_out.transpose(1, 2)
    cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
    return (output_scores, cross), (
        update(img, img_out, block.img_attn.proj, block.img_mlp, img_mod),
        update(txt, txt_out, block.txt_attn.proj, block.txt_mlp, txt_mod),
        update(concepts, concept_out, block.txt_attn.proj, block.txt_mlp, concept_mod),
    )


def modulation(mod, vec):
    return [c[:, None] for c in linear(mod.lin, F.silu(vec)).chunk(6, dim=-1)]


def assert_maps_match(ca, model, clip, inputs, expected, grid):
    """The sampler's maps per layer (no softmax) and aggregated (softmax, mean) equal the reference scores."""
    from ..sampling import run_layers

    to_grid = ca.ca_core.maps.token_grid_maps
    for layer in range(len(expected)):
        _, maps = run_layers(ca, model, clip, inputs, str(layer), softmax=False)
        assert torch.allclose(maps.maps, to_grid(expected[layer][0], grid), rtol=1e-4, atol=1e-4), layer
        assert torch.allclose(maps.cross_attention_maps, to_grid(expected[layer][1], grid), rtol=1e-4, atol=1e-4)
    _, maps = run_layers(ca, model, clip, inputs, "all", softmax=True)
    mean_softmax = torch.stack([torch.softmax(s[0], dim=1) for s in expected]).mean(dim=0)
    assert torch.allclose(maps.maps, to_grid(mean_softmax, grid), atol=1e-5)


def layer_maps_and_outputs(ca, model, clip, inputs, layer: int, monkeypatch, concepts: list[str]):
    """The sampler's raw maps of one joint block (ConceptMaps, no softmax) and that block's concept attention
    outputs [B, K, C], for comparisons with the paper authors' code."""
    attended = []
    step = ca.nodes.stream.step
    stock = step.attend_concepts

    def recording(*args, **kwargs):
        attended.append(stock(*args, **kwargs))
        return attended[-1]

    with monkeypatch.context() as patched:
        patched.setattr(step, "attend_concepts", recording)
        _, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
            model=model, clip=clip, concepts=", ".join(concepts), layers=str(layer), space="output", softmax=False,
            token_pooling="first", start_step=0, end_step=10000, **inputs).args
    assert len(attended) == layer + 1, f"the concepts attended in {len(attended)} blocks, up to block {layer}"
    return maps, attended[-1].outputs
