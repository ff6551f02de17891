"""Flux.2: one shared modulation per stream (global modulation, no pooled vector), a gated SiLU MLP without
biases, 4 RoPE axes with the text's position on the last; each concept sits at its own token's position."""

import torch
import torch.nn.functional as F

from . import linear, mlp_embed, modulation, reference_joint_block, timestep_embedding


def flux2_residual(x, attn_out, proj, mlp, mod):
    """Flux.2's update: gated SiLU MLP, no biases."""
    x = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    gate, value = linear(mlp[0], h).chunk(2, dim=-1)
    return x + mod[5] * linear(mlp[2], F.silu(gate) * value)


def flux2_reference_scores(dm, x, t, context, guidance, concept_context, concept_positions):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper's Flux.2 code."""
    p = dm.params
    b, _, hh, ww = x.shape
    img = linear(dm.img_in, x.flatten(2).transpose(1, 2))
    txt = linear(dm.txt_in, context)
    concepts = linear(dm.txt_in, concept_context.expand(b, -1, -1))
    vec = mlp_embed(dm.time_in, timestep_embedding(t)) + mlp_embed(dm.guidance_in, timestep_embedding(guidance))
    img_mod = modulation(dm.double_stream_modulation_img, vec)
    txt_mod = modulation(dm.double_stream_modulation_txt, vec)  # the text's and the concepts': no pooled vector
    rows, cols = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing="ij")
    zeros = torch.zeros_like(rows)
    img_ids = torch.stack([zeros, rows, cols, zeros], dim=-1).reshape(1, -1, 4).float().expand(b, -1, -1)
    txt_ids = torch.zeros(b, txt.shape[1], 4)
    txt_ids[..., 3] = torch.arange(txt.shape[1]).float()
    concept_ids = torch.zeros(b, concepts.shape[1], 4)
    concept_ids[..., 3] = torch.tensor(concept_positions).float()
    ids = torch.cat([txt_ids, img_ids], dim=1)
    scores, streams = [], (img, txt, concepts)
    for block in dm.double_blocks:
        layer, streams = reference_joint_block(block, streams, (img_mod, txt_mod, txt_mod), ids, p.axes_dim,
                                               p.theta, concept_ids=concept_ids, update=flux2_residual)
        scores.append(layer)
    return scores


def expected_scores(dm, call, concepts, positions):
    return flux2_reference_scores(dm, call["x"], call["timestep"], call["context"], call["guidance"], concepts,
                                  positions)


def own_positions(clip, names):
    """Each concept's first own token, found here by the template's prefix length; klein pads to 512 on
    the right, so the model's text position is that index."""
    empty = [t[0] for t in clip.tokenize("")["qwen3_4b"][0]]
    positions = []
    for name in names:
        ids = [t[0] for t in clip.tokenize(name)["qwen3_4b"][0]]
        positions.append(next(i for i, (a, e) in enumerate(zip(ids, empty, strict=True)) if a != e))
    return positions


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The inputs are Flux.2's, and the concepts' positions matter: the comparison can tell."""
    assert call["context"].shape[1] == 512  # ComfyUI pads Flux.2's context to 512 tokens
    assert positions == own_positions(clip, names) == [3, 3, 3]  # after "<|im_start|>user\n"
    unrotated = expected_scores(dm, call, concepts, [0] * len(positions))
    assert not torch.allclose(expected[1][0], unrotated[1][0], atol=1e-4)
