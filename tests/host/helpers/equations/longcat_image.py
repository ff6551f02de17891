"""LongCat-Image: Flux.1's double blocks without a pooled vector or guidance (the concepts' vector is the
timestep's embedding, as the text's); text token j at RoPE ids (0, j, j), the image at (1, L + row, L + column)
after a context of L tokens, and each concept at its own token's text position (0, p, p)."""

import torch

from . import linear, mlp_embed, modulation, reference_joint_block, timestep_embedding


def reference_scores(dm, x, t, context, concept_context, concept_positions):
    """Per-layer (output, cross-attention) scores [B, K, N] from the paper's equations."""
    p = dm.params
    b, c, hh, ww = x.shape
    img = x.reshape(b, c, hh // 2, 2, ww // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww // 4, c * 4)
    img = linear(dm.img_in, img)
    txt = linear(dm.txt_in, context)
    concepts = linear(dm.txt_in, concept_context.expand(b, -1, -1))
    vec = mlp_embed(dm.time_in, timestep_embedding(t))  # the text's and the concepts': no pooled vector
    length = txt.shape[1]
    rows, cols = torch.meshgrid(torch.arange(hh // 2), torch.arange(ww // 2), indexing="ij")
    img_ids = torch.stack([torch.ones_like(rows), rows + length, cols + length], dim=-1)
    img_ids = img_ids.reshape(1, -1, 3).float().expand(b, -1, -1)
    txt_ids = torch.arange(length).float()[None, :, None] * torch.tensor([0.0, 1.0, 1.0])
    concept_ids = torch.tensor(concept_positions).float()[None, :, None] * torch.tensor([0.0, 1.0, 1.0])
    ids = torch.cat([txt_ids.expand(b, -1, -1), img_ids], dim=1)
    scores, streams = [], (img, txt, concepts)
    for block in dm.double_blocks:
        mods = (modulation(block.img_mod, vec), modulation(block.txt_mod, vec), modulation(block.txt_mod, vec))
        layer, streams = reference_joint_block(block, streams, mods, ids, p.axes_dim, p.theta,
                                               concept_ids=concept_ids.expand(b, -1, -1))
        scores.append(layer)
    return scores


def expected_scores(dm, call, concepts, positions):
    return reference_scores(dm, call["x"], call["timestep"], call["context"], concepts, positions)


def sanity(dm, call, clip, names, concepts, positions, expected):
    """The inputs are LongCat-Image's (the prompt padded to 512 tokens, no pooled vector or guidance), each concept
    is text token 0 of its own encoding, and positions matter: the comparison can tell."""
    assert call["context"].shape[1] == 512
    assert call.get("y") is None and call.get("guidance") is None
    assert positions == [0] * len(names)
    shifted = expected_scores(dm, call, concepts, [5] * len(positions))
    assert not torch.allclose(expected[1][0], shifted[1][0], atol=1e-4)
