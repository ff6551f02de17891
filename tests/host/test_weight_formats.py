"""Models as users load them: fp8 weights (UNETLoader's fp8_e4m3fn and scaled-fp8 files) computing in bf16
or fp16. The maps stay finite and agree with the fp32 model's; the latent equals plain sampling of the same
loaded model."""

import nodes
import pytest
import torch
from helpers.checkpoints import save_diffusion_model, scaled_fp8_state_dict, tiny_detection, tiny_flux_state_dict
from helpers.models import tiny_clip
from helpers.sampling import sampler_inputs
from helpers.weight_formats import assert_casts_shared, assert_maps_agree, sample


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


def stored_dtype(weight: torch.Tensor) -> torch.dtype:
    """The dtype a weight is stored in (from 0.33 a scaled-fp8 weight is a QuantizedTensor that reports
    its compute dtype and stores fp8)."""
    return getattr(weight, "storage_dtype", weight.dtype)


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
