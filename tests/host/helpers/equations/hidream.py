"""HiDream-I1 (double-stream blocks, then single-stream ones): in double block i the text is [T5; Llama last layer]
carried from block to block, plus Llama layer llama_layers[i]'s tokens for that block alone, each group through its
own caption projection. The concepts take the same path from their own encoding (T5 token, then every Llama layer's
state of their own Llama token) and the text's weights of each block (adaLN_modulation's last six chunks, norm1_t,
to_q_t/to_k_t/to_v_t with RMSNorms over all heads, to_out_t, norm3_t, the SwiGLU ff_t); their modulation input is
the timestep embedding plus p_embedder of a zero pooled vector. The image carries RoPE at (0, row, column), the text
none. The concepts' T5 tokens are scored."""

import math

import torch
import torch.nn.functional as F
from einops import rearrange

from . import attention, heads, linear, merge, rope

EPS = 1e-6  # the blocks' LayerNorms


def timestep_embedding(t, dim=256):
    """Timesteps(flip_sin_to_cos=True, downscale_freq_shift=0): [cos, sin] of t * 10000^(-i / half)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def embedding(embedder, x):
    return linear(embedder.linear_2, F.silu(linear(embedder.linear_1, x)))


def rms(x, norm):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + norm.eps) * norm.weight


def layer_norm(x):
    return F.layer_norm(x, x.shape[-1:], eps=EPS)


def swiglu(ff, x):
    return linear(ff.w2, F.silu(linear(ff.w1, x)) * linear(ff.w3, x))


def text_qkv(attn, x, n_heads):
    q, k = rms(linear(attn.to_q_t, x), attn.q_rms_norm_t), rms(linear(attn.to_k_t, x), attn.k_rms_norm_t)
    return heads(q, n_heads), heads(k, n_heads), heads(linear(attn.to_v_t, x), n_heads)


def text_update(block, x, attn_out, mod):
    x = x + mod[2] * linear(block.attn1.to_out_t, attn_out)
    return x + mod[5] * swiglu(block.ff_t, layer_norm(x) * (1 + mod[4]) + mod[3])


def hidream_reference_scores(dm, x, t, y, context, llama, concept_context, concept_pooled=None, concept_layer=None,
                             image_cond=None):
    """Per-layer (output, cross-attention) scores [B, K, N] of the double blocks. concept_pooled: the pooled vector the
    concepts' modulation takes (zero); concept_layer(i): the Llama layer the concepts take in block i (the model's).
    image_cond: HiDream-E1's reference, beside the latent in every row: attended, its tokens not scored."""
    b, _, h, w = x.shape
    p, n_heads = dm.patch_size, dm.num_attention_heads
    if image_cond is not None:
        x = torch.cat([x, image_cond], dim=-1)
    img = linear(dm.x_embedder.proj, rearrange(x, "B C (H p1) (W p2) -> B (H W) (p1 p2 C)", p1=p, p2=p))
    rows, cols = h // p, x.shape[-1] // p
    generated = (torch.arange(cols) < w // p).repeat(rows)  # each row: the generated image's columns first
    ids = torch.zeros(b, rows * cols, 3)
    ids[..., 1] = torch.arange(rows).repeat_interleave(cols)
    ids[..., 2] = torch.arange(cols).repeat(rows)
    temb = embedding(dm.t_embedder.timestep_embedder, timestep_embedding(t.expand(b)))
    vec = temb + embedding(dm.p_embedder.pooled_embedder, y)
    zero = torch.zeros_like(y) if concept_pooled is None else concept_pooled.expand_as(y)
    concept_vec = temb + embedding(dm.p_embedder.pooled_embedder, zero)

    t5_width, llama_width = dm.caption_projection[-1].linear.in_features, dm.caption_projection[0].linear.in_features
    concept_t5 = concept_context[..., :t5_width].expand(b, -1, -1)
    concept_llama = concept_context[..., t5_width:].unflatten(-1, (-1, llama_width)).expand(b, -1, -1, -1)
    k = concept_t5.shape[1]
    layers, last = dm.llama_layers, len(dm.llama_layers) - 1
    txt = torch.cat([linear(dm.caption_projection[-1].linear, context),
                     linear(dm.caption_projection[last].linear, llama[:, layers[last]])], dim=1)
    concepts = torch.cat([linear(dm.caption_projection[-1].linear, concept_t5),
                          linear(dm.caption_projection[last].linear, concept_llama[:, :, layers[last]])], dim=1)
    scores = []
    for i, wrapper in enumerate(dm.double_stream_blocks):
        block, attn = wrapper.block, wrapper.block.attn1
        mod = linear(block.adaLN_modulation[1], F.silu(vec))[:, None].chunk(12, dim=-1)
        concept_mod = linear(block.adaLN_modulation[1], F.silu(concept_vec))[:, None].chunk(12, dim=-1)
        img_mod, txt_mod, concept_mod = mod[:6], mod[6:], concept_mod[6:]
        block_txt = torch.cat([txt, linear(dm.caption_projection[i].linear, llama[:, layers[i]])], dim=1)
        concept_layer_i = layers[i] if concept_layer is None else concept_layer(i)
        block_concepts = torch.cat(
            [concepts, linear(dm.caption_projection[i].linear, concept_llama[:, :, concept_layer_i])], dim=1)

        img_in = layer_norm(img) * (1 + img_mod[1]) + img_mod[0]
        iq, ik = rms(linear(attn.to_q, img_in), attn.q_rms_norm), rms(linear(attn.to_k, img_in), attn.k_rms_norm)
        iq, ik, iv = heads(iq, n_heads), heads(ik, n_heads), heads(linear(attn.to_v, img_in), n_heads)
        iq, ik = rope(iq, ids, dm.pe_embedder.axes_dim, 10000), rope(ik, ids, dm.pe_embedder.axes_dim, 10000)
        tq, tk, tv = text_qkv(attn, layer_norm(block_txt) * (1 + txt_mod[1]) + txt_mod[0], n_heads)
        cq, ck, cv = text_qkv(attn, layer_norm(block_concepts) * (1 + concept_mod[1]) + concept_mod[0], n_heads)

        joint_out = merge(attention(torch.cat([iq, tq], 2), torch.cat([ik, tk], 2), torch.cat([iv, tv], 2)))
        img_out, txt_out = joint_out[:, :img.shape[1]], joint_out[:, img.shape[1]:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ ik.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out[:, :k] @ img_out[:, generated].transpose(1, 2), cross[:, :k, generated]))

        img = img + img_mod[2] * linear(attn.to_out, img_out)
        img = img + img_mod[5] * block.ff_i(layer_norm(img) * (1 + img_mod[4]) + img_mod[3])  # the model's experts
        txt = text_update(block, block_txt, txt_out, txt_mod)[:, :txt.shape[1]]
        concepts = text_update(block, block_concepts, concept_out, concept_mod)[:, :concepts.shape[1]]
    return scores


def expected_scores(dm, call, concepts, positions, **change):
    return hidream_reference_scores(dm, call["x"], call["t"], call["y"], call["context"],
                                    call["encoder_hidden_states_llama3"], concepts,
                                    **{"image_cond": call.get("image_cond"), **change})


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The inputs are HiDream's (T5's 128 tokens, every Llama layer's states, a nonzero pooled vector; each concept
    carries its Llama states beside its T5 token), and the comparison can tell a pooled vector given to the concepts
    and another Llama layer in a block."""
    llama = call["encoder_hidden_states_llama3"]
    assert call["context"].shape[1] == 128 and llama.shape[1] == max(dm.llama_layers) + 1
    assert call["y"].abs().sum() > 0
    assert concepts.shape[-1] == call["context"].shape[-1] + llama.shape[1] * llama.shape[-1]
    changes = [dict(concept_pooled=call["y"]), dict(concept_layer=lambda i: dm.llama_layers[-1])]
    if call.get("image_cond") is not None:  # E1: a reference of the latent's size, and it counts
        assert call["image_cond"].shape == call["x"].shape
        changes.append(dict(image_cond=torch.zeros_like(call["image_cond"])))
    for change in changes:
        other = expected_scores(dm, call, concepts, positions, **change)
        assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4), change
