"""Sampling a model as users load it (fp8 weights, scaled-fp8 files, GGUF) beside its fp32 original: the latents,
the maps' agreement, and the casts the concepts share with the text stream."""

import nodes
import torch

CONCEPTS = "dog, grass, sky"
# Soft maps of low-precision weights against fp32 (softmax maps in 0-1): the largest difference allowed
# at any token, and the share of tokens whose strongest concept must agree.
SOFT_TOLERANCE = 0.08
ARGMAX_AGREEMENT = 0.95


def sample(ca, model, clip, inputs):
    """(plain KSampler latent, Concept Attention Sampler latent, maps) of one loaded model."""
    (plain,) = nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                     inputs["scheduler"], inputs["positive"], inputs["negative"],
                                     inputs["latent_image"])
    latent, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts=CONCEPTS, layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args
    return plain["samples"], latent["samples"], maps


def assert_maps_agree(maps, reference):
    assert torch.isfinite(maps.maps).all() and torch.isfinite(maps.cross_attention_maps).all()
    difference = (maps.maps - reference.maps).abs().max().item()
    agreement = (maps.maps.argmax(dim=1) == reference.maps.argmax(dim=1)).float().mean().item()
    assert difference <= SOFT_TOLERANCE, difference
    assert agreement >= ARGMAX_AGREEMENT, agreement
    return difference, agreement


def assert_casts_shared(ca, model, clip, inputs, monkeypatch):
    """Each reused text-stream layer casts (forward_comfy_cast_weights) as often with the concepts as in
    plain sampling."""
    dm = model.model.diffusion_model
    layer_class = type(dm.double_blocks[0].txt_attn.qkv)
    casts = {}
    cast_forward = layer_class.forward_comfy_cast_weights

    def counting(self, *args, **kwargs):
        casts[self] = casts.get(self, 0) + 1
        return cast_forward(self, *args, **kwargs)

    monkeypatch.setattr(layer_class, "forward_comfy_cast_weights", counting)
    family = ca.nodes.families.family_for(model)
    reused = [layer for index in range(len(dm.double_blocks)) for layer in (
        *family.modulation_layers(dm, index), dm.double_blocks[index].txt_attn.qkv,
        dm.double_blocks[index].txt_attn.proj, dm.double_blocks[index].txt_mlp[0], dm.double_blocks[index].txt_mlp[2])]
    assert len(reused) == 5 * len(dm.double_blocks)  # the modulation, qkv, proj and two MLP layers
    nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                          inputs["scheduler"], inputs["positive"], inputs["negative"], inputs["latent_image"])
    plain = dict(casts)
    casts.clear()
    _, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts=CONCEPTS, layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args
    assert len(maps.steps) == inputs["steps"]  # the stream ran through every block on every step
    assert {layer: casts[layer] for layer in reused} == {layer: plain[layer] for layer in reused}
