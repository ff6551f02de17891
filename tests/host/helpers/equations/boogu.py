"""Boogu: OmniGen2's caption and image paths (omnigen2.py), then double-stream blocks, each one joint attention over
[caption; image] with the caption's (instruct) and the image's own q/k/v, out projection, post-norms and SwiGLU,
shared per-head q/k norms and the shared to_out; two Lumina modulations per stream, the MLP's input from the block's
input (not the attention's residual); the image also attends to itself alone. The concepts take the caption's
path as one-token captions at their own positions, then the caption's weights of every double block with the
timestep's modulation, attending over [concept keys; image keys]. The single-stream layers after are not scored."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge, rope
from .omnigen2 import refined_inputs, rms


def chunks(norm, temb):
    return [c[:, None] for c in linear(norm.linear, F.silu(temb)).chunk(4, 1)]


def swiglu(ff, h):
    return linear(ff.linear_2, F.silu(linear(ff.linear_1, h)) * linear(ff.linear_3, h))


def qkv(attn, to_q, to_k, to_v, h, ids, axes, theta):
    q = rope(rms(heads(linear(to_q, h), attn.heads), attn.norm_q), ids, axes, theta)
    k = rope(rms(heads(linear(to_k, h), attn.kv_heads), attn.norm_k), ids, axes, theta)
    v = heads(linear(to_v, h), attn.kv_heads)
    repeat = attn.heads // attn.kv_heads
    return q, k.repeat_interleave(repeat, dim=1), v.repeat_interleave(repeat, dim=1)


def stream_update(block, stream, x, attention_out, temb):
    """A stream's ("instruct" or "img") attention residual and MLP, the MLP's input from x."""
    part = lambda name: getattr(block, f"{stream}_{name}")  # noqa: E731
    scale_msa, gate_msa, scale_mlp, gate_mlp = chunks(part("norm1"), temb)
    scale2, shift_mlp, _, _ = chunks(part("norm2"), temb)
    out = linear(getattr(block.img_instruct_attn.processor, f"{stream}_out"), attention_out)
    after = x + gate_msa.tanh() * rms(linear(block.img_instruct_attn.to_out[0], out), part("attn_norm"))
    h = (1 + scale_mlp) * (rms(x, part("norm2").norm) * (1 + scale2)) + shift_mlp
    return after, gate_mlp.tanh() * rms(swiglu(part("feed_forward"), rms(h, part("ffn_norm1"))), part("ffn_norm2"))


def double_block(block, text, image, text_ids, image_ids, axes, theta, temb):
    """The block on [text; image]; returns (text, image) updated and the image's attention outputs, keys, values."""
    attn, streams = block.img_instruct_attn, block.img_instruct_attn.processor
    text_h = rms(text, block.instruct_norm1.norm) * (1 + chunks(block.instruct_norm1, temb)[0])
    image_h = rms(image, block.img_norm1.norm) * (1 + chunks(block.img_norm1, temb)[0])
    tq, tk, tv = qkv(attn, streams.instruct_to_q, streams.instruct_to_k, streams.instruct_to_v, text_h, text_ids, axes,
                     theta)
    iq, ik, iv = qkv(attn, streams.img_to_q, streams.img_to_k, streams.img_to_v, image_h, image_ids, axes, theta)
    out = merge(attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2)))
    n = text.shape[1]
    after, mlp = stream_update(block, "instruct", text, out[:, :n], temb)
    text_next = after + mlp
    after, mlp = stream_update(block, "img", image, out[:, n:], temb)
    scale3, gate_self, _, _ = chunks(block.img_norm3, temb)
    own = block.img_self_attn
    h3 = rms(image, block.img_norm3.norm) * (1 + scale3)
    sq, sk, sv = qkv(own, own.to_q, own.to_k, own.to_v, h3, image_ids, axes, theta)
    self_out = linear(own.to_out[0], merge(attention(sq, sk, sv)))
    image_next = after + gate_self.tanh() * rms(self_out, block.img_self_attn_norm) + mlp
    return text_next, image_next, out[:, n:], ik, iv


def concept_block(block, concepts, concept_ids, axes, theta, temb, image_keys, image_values):
    attn, streams = block.img_instruct_attn, block.img_instruct_attn.processor
    h = rms(concepts, block.instruct_norm1.norm) * (1 + chunks(block.instruct_norm1, temb)[0])
    q, k, v = qkv(attn, streams.instruct_to_q, streams.instruct_to_k, streams.instruct_to_v, h, concept_ids, axes, theta)
    out = merge(attention(q, torch.cat([k, image_keys], 2), torch.cat([v, image_values], 2)))
    after, mlp = stream_update(block, "instruct", concepts, out, temb)
    return after + mlp, out, q


def boogu_reference_scores(dm, x, timesteps, context, concept_context, positions):
    r = refined_inputs(dm, x, timesteps, context, concept_context, positions,
                       time_scale=dm.time_caption_embed.time_proj.scale)
    caption, image, concepts, cap_ids, img_ids = r.caption, r.image, r.concepts, r.caption_ids, r.image_ids
    concept_ids, temb, axes, theta, scores = r.concept_ids, r.temb, r.axes, r.theta, []
    for block in dm.double_stream_layers:
        caption_next, image_next, image_out, image_keys, image_values = double_block(
            block, caption, image, cap_ids, img_ids, axes, theta, temb)
        concepts_next, concept_out, cq = concept_block(block, concepts, concept_ids, axes, theta, temb, image_keys,
                                                       image_values)
        cross = (cq @ image_keys.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ image_out.transpose(1, 2), cross))
        caption, image, concepts = caption_next, image_next, concepts_next
    return scores


def expected_scores(dm, call, concepts, positions):
    return boogu_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The comparison can tell the concepts' positions, and a concept's update through a block's MLP (which reads
    the block's input): the last block's scores move with the first block's MLP."""
    other = boogu_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts,
                                   [p + 3 for p in positions])
    assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4)
    feed_forward = dm.double_stream_layers[0].instruct_feed_forward.linear_2
    saved = feed_forward.weight.clone()
    try:
        feed_forward.weight.mul_(2.0)
        doubled = boogu_reference_scores(dm, call["x"], call["timesteps"], call["context"], concepts, positions)
    finally:
        feed_forward.weight.copy_(saved)
    assert not torch.allclose(expected[-1][0], doubled[-1][0], rtol=1e-4, atol=1e-4)
