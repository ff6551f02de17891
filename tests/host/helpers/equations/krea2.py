"""Krea 2 (SingleStreamDiT): one stream of [text; image] tokens through shared weights. The prompt's tapped layer
states go through txtfusion (per token over its layers, a projection to one state, refiner blocks over the
prompt) and txtmlp; every block modulates all tokens alike (shift, scale, gate from the timestep), attends with
q/k/v of grouped heads, per-head RMSNorm and RoPE, gates the attention output with a sigmoid of its input, and
ends in a SwiGLU. The concepts take the text's path as one-token prompts, then every block's shared weights
with the same modulation, attending over [concept keys; image keys]; text and concepts sit at position zero."""

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge, rope, timestep_embedding


def rms(x, norm):
    """Krea 2's RMSNorm: its scale is stored around zero, (1 + scale) multiplies."""
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * (1 + norm.scale)


def swiglu(mlp, x):
    return linear(mlp.down, F.silu(linear(mlp.gate, x)) * linear(mlp.up, x))


def qkv(attn, x, ids=None, axes=None, theta=None):
    q = heads(linear(attn.wq, x), attn.heads)
    k, v = heads(linear(attn.wk, x), attn.kvheads), heads(linear(attn.wv, x), attn.kvheads)
    q, k = rms(q, attn.qknorm.qnorm), rms(k, attn.qknorm.knorm)
    if ids is not None:
        q, k = rope(q, ids, axes, theta), rope(k, ids, axes, theta)
    repeat = attn.heads // attn.kvheads
    return q, k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)


def gated_projection(attn, out, x):
    return linear(attn.wo, out * torch.sigmoid(linear(attn.gate, x)))


def fusion_block(block, x):
    h = rms(x, block.prenorm)
    x = x + gated_projection(block.attn, merge(attention(*qkv(block.attn, h))), h)
    return x + swiglu(block.mlp, rms(x, block.postnorm))


def text_path(dm, context, refine=True):
    """[B, L, layers * width] -> [B, L, features]: txtfusion, then txtmlp; refine False: without the refiner blocks
    (a negative check)."""
    b, length, _ = context.shape
    x = context.reshape(b * length, dm.txtlayers, dm.txtdim)
    fusion = dm.txtfusion
    for block in fusion.layerwise_blocks:
        x = fusion_block(block, x)
    x = linear(fusion.projector, x.reshape(b, length, dm.txtlayers, dm.txtdim).transpose(-1, -2)).squeeze(-1)
    for block in fusion.refiner_blocks if refine else ():
        x = fusion_block(block, x)
    mlp = dm.txtmlp
    return linear(mlp[3], F.gelu(linear(mlp[1], rms(x, mlp[0])), approximate="tanh"))


def krea2_reference_scores(dm, x, timesteps, context, concept_context, refine=True):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and Krea 2's forward."""
    if x.ndim == 5:
        x = x[:, :, 0]
    p, theta, axes = dm.patch, dm.pe_embedder.theta, dm.pe_embedder.axes_dim
    x = F.pad(x, (0, -x.shape[-1] % p, 0, -x.shape[-2] % p), mode="circular")
    b, c, h, w = x.shape
    rows, cols = h // p, w // p
    image = linear(dm.first, x.reshape(b, c, rows, p, cols, p).permute(0, 2, 4, 1, 3, 5).reshape(b, rows * cols, -1))
    text = text_path(dm, context)
    concepts = torch.cat([text_path(dm, concept_context[:, k:k + 1], refine) for k in range(concept_context.shape[1])],
                         dim=1)
    concepts = concepts.expand(b, -1, -1)
    t = linear(dm.tmlp[2], F.gelu(linear(dm.tmlp[0], timestep_embedding(timesteps, dm.tdim)),
                                  approximate="tanh"))
    tvec = linear(dm.tproj[1], F.gelu(t, approximate="tanh"))[:, None]
    ids = torch.zeros(b, text.shape[1] + rows * cols, 3)
    ids[:, text.shape[1]:, 1] = torch.arange(rows).repeat_interleave(cols)
    ids[:, text.shape[1]:, 2] = torch.arange(cols).repeat(rows)
    joint, n_txt, scores = torch.cat([text, image], 1), text.shape[1], []
    for block in dm.blocks:
        prescale, preshift, pregate, postscale, postshift, postgate = (tvec + block.mod.lin).chunk(6, dim=-1)
        h_joint = (1 + prescale) * rms(joint, block.prenorm) + preshift
        h_concepts = (1 + prescale) * rms(concepts, block.prenorm) + preshift
        q, k, v = qkv(block.attn, h_joint, ids, axes, theta)
        cq, ck, cv = qkv(block.attn, h_concepts)  # position zero: no rotation
        out = merge(attention(q, k, v))
        image_keys, image_values = k[:, :, n_txt:], v[:, :, n_txt:]
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, image_values], 2)))
        cross = (cq @ image_keys.transpose(-1, -2) / cq.shape[-1] ** 0.5).mean(dim=1)
        scores.append((concept_out @ out[:, n_txt:].transpose(1, 2), cross))
        joint = joint + pregate * gated_projection(block.attn, out, h_joint)
        concepts = concepts + pregate * gated_projection(block.attn, concept_out, h_concepts)
        joint = joint + postgate * swiglu(block.mlp, (1 + postscale) * rms(joint, block.postnorm) + postshift)
        concepts = concepts + postgate * swiglu(block.mlp, (1 + postscale) * rms(concepts, block.postnorm) + postshift)
    return scores


def expected_scores(dm, call, concepts, positions):
    return krea2_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The comparison can tell whether the concepts went through the text adapter's refiner blocks."""
    other = krea2_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, refine=False)
    assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4)
