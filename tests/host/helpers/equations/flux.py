"""Flux.1 (dev with the guidance embedding, schnell without): the concepts' vector is the timestep's (and the
guidance's) embedding with a zero pooled vector; text, image and concepts at RoPE ids zero but the image's."""

import comfy.patcher_extension
import nodes
import torch

from . import linear, mlp_embed, modulation, reference_joint_block, timestep_embedding


def reference_scores(dm, x, t, context, y, guidance, concept_context):
    """Per-layer (output, cross-attention) scores [B, K, N] from the paper's equations."""
    p = dm.params
    b, c, hh, ww = x.shape
    img = x.reshape(b, c, hh // 2, 2, ww // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww // 4, c * 4)
    img = linear(dm.img_in, img)
    txt = linear(dm.txt_in, context)
    concepts = linear(dm.txt_in, concept_context.expand(b, -1, -1))
    base = mlp_embed(dm.time_in, timestep_embedding(t))
    if p.guidance_embed:
        base = base + mlp_embed(dm.guidance_in, timestep_embedding(guidance))
    vec = base + mlp_embed(dm.vector_in, y)
    concept_vec = base + mlp_embed(dm.vector_in, torch.zeros_like(y))
    rows, cols = torch.meshgrid(torch.arange(hh // 2), torch.arange(ww // 2), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, -1, 3).float().expand(b, -1, -1)
    ids = torch.cat([torch.zeros(b, txt.shape[1], 3), img_ids], dim=1)
    n = img.shape[1]
    scores, streams = [], (img, txt, concepts)
    for block in dm.double_blocks:
        mods = (modulation(block.img_mod, vec), modulation(block.txt_mod, vec), modulation(block.txt_mod, concept_vec))
        # Flux.1's concept RoPE ids are zero: identity rotation
        layer, streams = reference_joint_block(block, streams, mods, ids, p.axes_dim, p.theta)
        scores.append(layer)
    assert n == scores[0][0].shape[-1]
    return scores


def expected_scores(dm, call, concepts, positions):
    return reference_scores(dm, call["x"], call["timestep"], call["context"], call["y"], call.get("guidance"),
                            concepts)


def encode(ca, clip, names, pooling):
    """The concepts as the nodes encode them for a Flux.1 model."""
    return ca.nodes.stream.encoding.encode_concepts(clip, names, pooling, ca.nodes.families.flux.FluxFamily())[0]


def recorded_first_call(model, clip, inputs):
    """Run a plain 1-step sampler and record the diffusion model's inputs (x, timestep, context, y, guidance)."""
    calls = []

    def record(executor, x, timestep, context, y=None, guidance=None, *args, **kwargs):
        calls.append((x.clone(), timestep.clone(), context.clone(), y.clone(),
                      None if guidance is None else guidance.clone()))
        return executor(x, timestep, context, y, guidance, *args, **kwargs)

    recorder = model.clone()
    recorder.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "record", record)
    nodes.common_ksampler(recorder, inputs["seed"], 1, 1.0, "euler", "simple", inputs["positive"],
                          inputs["negative"], inputs["latent_image"])
    return calls[0]
