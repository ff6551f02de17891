"""HunyuanVideo (1.0, 1.5) and HunyuanImage 2.1: Flux-style double blocks; the prompt and each concept (a
one-token prompt of its own) through the token refiner at t; the concepts' vector from the timestep and guidance
with a zero pooled vector; zero RoPE ids for text and concepts, (frame, row, column) ids for a video's image
tokens, (row, column) for HunyuanImage 2.1's 2-D patches."""

import math

import torch

from . import mlp_embed, modulation, reference_joint_block


def embed_time(t, time_factor):
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = time_factor * t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def grid_ids(grid):
    """Each token's position on every axis of its grid (frames, rows, columns or rows, columns), row-major."""
    axes = torch.meshgrid(*(torch.arange(size) for size in grid), indexing="ij")
    return torch.stack(axes, dim=-1).reshape(-1, len(grid)).float()


def hunyuan_reference_scores(dm, x, t, context, y, guidance, concept_context, guiding_frame_index=None):
    """Per-layer (output, cross-attention) scores [B, K, N] from the paper's equations on HunyuanVideo, frame by
    frame. guiding_frame_index: I2V's first-frame replacement, whose first frame's image tokens are modulated at
    that index; the text, and so the concepts, keep the video's timestep."""
    b = x.shape[0]
    img = dm.img_in(x)  # the patch embedding: [B, F*h*w, C], frame by frame, row-major
    txt = dm.txt_in(context, t, None)
    concepts = torch.cat([dm.txt_in(concept_context[:, k:k + 1].expand(b, -1, -1), t, None)
                          for k in range(concept_context.shape[1])], dim=1)
    if getattr(dm, "cond_type_embedding", None) is not None:  # 1.5: text tokens are of type 0
        txt, concepts = (tokens + dm.cond_type_embedding.weight[0] for tokens in (txt, concepts))
    base = mlp_embed(dm.time_in, embed_time(t, 1.0))
    if dm.params.guidance_embed:
        base = base + mlp_embed(dm.guidance_in, embed_time(guidance, 1000.0))
    vec = concept_vec = base
    if dm.vector_in is not None:
        vec, concept_vec = base + mlp_embed(dm.vector_in, y), base + mlp_embed(dm.vector_in, torch.zeros_like(y))
    patch = dm.patch_size
    grid = [size // step for size, step in zip(x.shape[-len(patch):], patch, strict=True)]
    ids = torch.cat([torch.zeros(txt.shape[1], len(grid)), grid_ids(grid)])[None].expand(b, -1, -1)
    first_frame = grid[-2] * grid[-1]

    def image_modulation(block):
        if guiding_frame_index is None:
            return modulation(block.img_mod, vec)
        time_at = lambda steps: mlp_embed(dm.time_in, embed_time(steps, 1.0))  # noqa: E731
        replaced = vec - time_at(t) + time_at(guiding_frame_index)  # the timestep replaced by the index
        return [torch.cat([a.expand(-1, first_frame, -1), v.expand(-1, img.shape[1] - first_frame, -1)], dim=1)
                for a, v in zip(modulation(block.img_mod, replaced), modulation(block.img_mod, vec), strict=True)]

    scores, streams = [], (img, txt, concepts)
    for block in dm.double_blocks:
        mods = (image_modulation(block), modulation(block.txt_mod, vec), modulation(block.txt_mod, concept_vec))
        layer, streams = reference_joint_block(block, streams, mods, ids, dm.params.axes_dim, dm.params.theta)
        scores.append(layer)
    return scores


def expected_scores(dm, call, concepts, positions):
    return hunyuan_reference_scores(dm, call["x"], call["timestep"], call["context"], call.get("y"),
                                    call.get("guidance"), concepts, call.get("guiding_frame_index"))


def sanity(dm, call, clip, names, concepts, positions, expected):
    """A refiner run over the concepts as one prompt would mix them: the comparison can tell."""
    t = call["timestep"]
    mixed = dm.txt_in(concepts, t, None)
    alone = torch.cat([dm.txt_in(concepts[:, k:k + 1], t, None) for k in range(concepts.shape[1])], 1)
    assert not torch.allclose(mixed, alone)
