"""Models as users load them: fp8 weights (UNETLoader's fp8_e4m3fn and scaled-fp8 files) computing in bf16
or fp16. The maps stay finite and agree with the fp32 model's; the latent equals plain sampling of the same
loaded model."""

import nodes
import pytest
import torch
from ca_test_nodes import tiny_clip
from ca_test_nodes.checkpoints import save_diffusion_model, scaled_fp8_state_dict, tiny_detection, tiny_flux_state_dict
from test_generation_unchanged import sampler_inputs

CONCEPTS = "dog, grass, sky"
# Soft maps of low-precision weights against fp32 (softmax maps in 0-1): the largest difference allowed
# at any token, and the share of tokens whose strongest concept must agree.
SOFT_TOLERANCE = 0.08
ARGMAX_AGREEMENT = 0.95


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diffusion_models")
    weights = tiny_flux_state_dict()
    return {
        "fp32": save_diffusion_model(weights, folder, "tiny_flux.safetensors"),
        "scaled_fp8": save_diffusion_model(scaled_fp8_state_dict(weights), folder, "tiny_flux_scaled_fp8.safetensors"),
    }


def load_unet(name: str, weight_dtype: str = "default", compute_dtype=None):
    with tiny_detection(compute_dtype):
        (model,) = nodes.UNETLoader().load_unet(name, weight_dtype)
    return model


def sample(ca, model, clip, inputs):
    """(plain KSampler latent, Concept Attention Sampler latent, maps) of one loaded model."""
    (plain,) = nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                     inputs["scheduler"], inputs["positive"], inputs["negative"],
                                     inputs["latent_image"])
    latent, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts=CONCEPTS, layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args
    return plain["samples"], latent["samples"], maps


def stored_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype a weight is stored in (from 0.33 a scaled-fp8 weight is a QuantizedTensor that reports
    its compute dtype and stores fp8)."""
    return getattr(weight, "storage_dtype", weight.dtype)


def assert_maps_agree(maps, reference):
    assert torch.isfinite(maps.maps).all() and torch.isfinite(maps.cross_attention_maps).all()
    difference = (maps.maps - reference.maps).abs().max().item()
    agreement = (maps.maps.argmax(dim=1) == reference.maps.argmax(dim=1)).float().mean().item()
    assert difference <= SOFT_TOLERANCE, difference
    assert agreement >= ARGMAX_AGREEMENT, agreement
    return difference, agreement


@pytest.fixture(scope="module")
def fp32_run(ca, checkpoints):
    clip = tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5)
    model = load_unet(checkpoints["fp32"])
    assert model.model.diffusion_model.double_blocks[0].txt_attn.qkv.weight.dtype == torch.float32
    return clip, inputs, sample(ca, model, clip, inputs)


@pytest.mark.parametrize("compute_dtype", [torch.bfloat16, torch.float16], ids=["bf16", "fp16"])
@pytest.mark.parametrize("file", ["fp32", "scaled_fp8"], ids=["unetloader_fp8_e4m3fn", "scaled_fp8_file"])
def test_fp8_weights(ca, checkpoints, fp32_run, file, compute_dtype):
    clip, inputs, (_, _, reference) = fp32_run
    model = load_unet(checkpoints[file], "fp8_e4m3fn" if file == "fp32" else "default", compute_dtype)
    qkv = model.model.diffusion_model.double_blocks[0].txt_attn.qkv
    assert stored_dtype(qkv.weight) == torch.float8_e4m3fn  # the text stream's weights, which the concepts reuse
    assert (model.model.manual_cast_dtype or model.model.get_dtype()) == compute_dtype
    plain, latent, maps = sample(ca, model, clip, inputs)
    assert torch.equal(latent, plain)
    assert_maps_agree(maps, reference)


def test_the_concepts_reuse_the_text_streams_casts(ca, checkpoints, fp32_run, monkeypatch):
    """An fp8 layer casts its weight each time it runs; the concepts reuse the cast the text stream's own call
    made in the same block, so every layer casts as often as in plain sampling (a second cast per reused layer
    would add a fifth of the model's weights to every step)."""
    clip, inputs, _ = fp32_run
    assert_casts_shared(ca, load_unet(checkpoints["fp32"], "fp8_e4m3fn", torch.bfloat16), clip, inputs, monkeypatch)


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
