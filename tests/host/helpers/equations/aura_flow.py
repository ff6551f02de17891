"""AuraFlow (MMDiT double layers, then single layers): the concepts take each double layer's text weights (modC,
normC1, w1q/w1k/w1v, the per-head q/k LayerNorms, w1o, normC2, mlpC) and its modulation of the timestep embedding
(AuraFlow has no pooled vector); the text is 8 register tokens then the prompt, the image carries a learnt position
embedding, the concepts none. The text's MLP reads normC2 of the attention's residual and adds to the block's input."""

import math

import torch
import torch.nn.functional as F

from . import attention, heads, linear, merge

EPS = 1e-5  # AuraFlow's LayerNorms: torch's default epsilon


def adaln(modulation, vec):
    """(shift, scale, gate, shift, scale, gate) rows [B, 1, C] of a modC / modX."""
    return [c[:, None] for c in linear(modulation[1], F.silu(vec)).chunk(6, dim=-1)]


def stream_qkv(q_layer, k_layer, v_layer, x, mod, n_heads):
    modulated = F.layer_norm(x, x.shape[-1:], eps=EPS) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(linear(layer, modulated), n_heads) for layer in (q_layer, k_layer, v_layer))
    return F.layer_norm(q, q.shape[-1:], eps=EPS), F.layer_norm(k, k.shape[-1:], eps=EPS), v


def swiglu(mlp, x):
    return linear(mlp.c_proj, F.silu(linear(mlp.c_fc1, x)) * linear(mlp.c_fc2, x))


def aura_update(x, attn_out, proj, mlp, mod, mlp_adds_to_input=True):
    """MMDiTBlock's update of one stream: normC2/normX2 of the attention's residual feeds the MLP, whose gated output
    adds to the block's input (mlp_adds_to_input=False: to the attention's residual, as Flux and SD3 do)."""
    after_attention = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(after_attention, after_attention.shape[-1:], eps=EPS) * (1 + mod[4]) + mod[3]
    return (x if mlp_adds_to_input else after_attention) + mod[5] * swiglu(mlp, h)


def aura_reference_scores(dm, x, t, context, concept_context, mlp_adds_to_input=True, image_positions=True):
    """Per-layer (output, cross-attention) scores [B, K, N] of the double layers, written from the paper and
    AuraFlow's layout."""
    b, _, h, w = x.shape
    img = linear(dm.init_x_linear, dm.patchify(x))
    if image_positions:
        img = dm.apply_pos_embeds(img, h, w)
    txt = torch.cat([dm.register_tokens.expand(b, -1, -1), linear(dm.cond_seq_linear, context)], dim=1)
    concepts = linear(dm.cond_seq_linear, concept_context.expand(b, -1, -1))
    vec = dm.t_embedder(t, x.dtype)
    scores = []
    for block in dm.double_layers:
        attn, n = block.attn, block.attn.n_heads
        txt_mod, img_mod = adaln(block.modC, vec), adaln(block.modX, vec)
        tq, tk, tv = stream_qkv(attn.w1q, attn.w1k, attn.w1v, txt, txt_mod, n)
        iq, ik, iv = stream_qkv(attn.w2q, attn.w2k, attn.w2v, img, img_mod, n)
        cq, ck, cv = stream_qkv(attn.w1q, attn.w1k, attn.w1v, concepts, txt_mod, n)
        joint_out = merge(attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2)))
        txt_out, img_out = joint_out[:, :txt.shape[1]], joint_out[:, txt.shape[1]:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ ik.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        txt, img, concepts = (
            aura_update(txt, txt_out, attn.w1o, block.mlpC, txt_mod, mlp_adds_to_input),
            aura_update(img, img_out, attn.w2o, block.mlpX, img_mod, mlp_adds_to_input),
            aura_update(concepts, concept_out, attn.w1o, block.mlpC, txt_mod, mlp_adds_to_input),
        )
    return scores


def expected_scores(dm, call, concepts, positions):
    return aura_reference_scores(dm, call["x"], call["timestep"], call["context"], concepts)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The inputs are AuraFlow's (the prompt padded to 256 Pile-T5 tokens, each concept token 0 of its own
    encoding), and the comparison can tell where the MLP's output adds and whether the image carries its learnt
    positions."""
    assert call["context"].shape[1] == 256
    assert positions == [0] * len(names)
    for change in (dict(mlp_adds_to_input=False), dict(image_positions=False)):
        other = aura_reference_scores(dm, call["x"], call["timestep"], call["context"], concepts, **change)
        assert not torch.allclose(expected[-1][0], other[-1][0], rtol=1e-4, atol=1e-4), change
