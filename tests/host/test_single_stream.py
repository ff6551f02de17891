"""The single-stream families' own (the contract, for every family: test_family_contract.py). Z-Image and Lumina 2
(NextDiT): the stream through SamplerCustomAdvanced, fp8 weights through UNETLoader and GGUF through ComfyUI-GGUF's
loader, Z-Image Omni's reference latents (ComfyUI 0.33), the pixel-space variant (0.33), the refiners' attention
calls kept out of the blocks' count on every host, the concepts' modulation read from each layer's own call.
Ernie-Image: its object-patched attention keeps the model's weight keys."""

import importlib.util
import inspect

import comfy.ldm.lumina.model
import comfy.model_detection
import comfy.sample
import comfy.samplers
import comfy.supported_models
import comfy_host
import folder_paths
import nodes
import pytest
import torch
from helpers.checkpoints import FP8, save_diffusion_model
from helpers.models import tiny_lumina2, tiny_lumina2_clip, tiny_z_image, tiny_z_image_clip
from helpers.sampling import concept_sampler, ksampler, sampler_inputs
from helpers.variants import HAS_Z_IMAGE, HAS_Z_IMAGE_PIXEL_SPACE, with_attention_mask, with_reference
from helpers.weight_formats import assert_maps_agree, sample

requires_z_image = pytest.mark.skipif(not HAS_Z_IMAGE, reason="Z-Image needs ComfyUI 0.8; this host predates it")
# Z-Image Omni's reference latents (ReferenceLatent into NextDiT's ref_latents): ComfyUI 0.33 on
HAS_OMNI = "ref_latents" in inspect.signature(comfy.ldm.lumina.model.NextDiT._forward).parameters
requires_omni = pytest.mark.skipif(not HAS_OMNI, reason="Z-Image Omni's reference latents need ComfyUI 0.33")


def z_image_inputs(batch=1, cfg=1.0, steps=3, size=(8, 12)):
    return {**sampler_inputs(tiny_z_image_clip(), batch, cfg, size=size), "steps": steps}


@requires_z_image
def test_samplercustomadvanced_runs_the_stream(ca):
    """Concept Attention Model + Concept Maps around a CFGGuider run as SamplerCustomAdvanced runs it: the latent is
    plain sampling's, the maps the Concept Attention Sampler's."""
    model, clip, inputs = tiny_z_image(3), tiny_z_image_clip(), z_image_inputs(cfg=2.0)
    patched, recorder = ca.nodes.model_node.ConceptAttentionModel.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000).args

    def custom_advanced(model_to_sample):
        guider = comfy.samplers.CFGGuider(model_to_sample)
        guider.set_conds(inputs["positive"], inputs["negative"])
        guider.set_cfg(2.0)
        latent = inputs["latent_image"]["samples"]
        sigmas = comfy.samplers.calculate_sigmas(model.get_model_object("model_sampling"), "simple", 3)
        noise = comfy.sample.prepare_noise(latent, 7)
        return guider.sample(noise, latent, comfy.samplers.sampler_object("euler"), sigmas, seed=7,
                             disable_pbar=True)

    plain, latent = custom_advanced(model), custom_advanced(patched)
    assert torch.equal(latent, plain)
    (maps,) = ca.nodes.model_node.ConceptMapsCollector.execute(recorder=recorder, latent={"samples": latent}).args
    assert maps.maps.shape == (1, 3, 4, 6) and maps.steps == (0, 1, 2)
    _, sampler_maps = concept_sampler(ca, model, clip, **{**inputs, "cfg": 2.0})
    assert torch.allclose(maps.maps, sampler_maps.maps, atol=1e-6)


def test_the_refiners_attention_calls_are_not_blocks(ca):
    """NextDiT's context and noise refiners attend before the first joint layer: the stream counts them out (by
    ComfyUI's block_index from 0.8 on, by their number before) and attends in exactly the joint layers."""
    model, clip = tiny_lumina2(3), tiny_lumina2_clip()
    inputs = with_attention_mask({**sampler_inputs(clip, 1, 1.0, size=(8, 12)), "steps": 1})
    attended = []
    step = ca.nodes.stream.step
    stock = step.ConceptStep.attend

    def counting(self, *args, **kwargs):
        attended.append(self.index)
        return stock(self, *args, **kwargs)

    step.ConceptStep.attend = counting
    try:
        _, maps = concept_sampler(ca, model, clip, **inputs)
    finally:
        step.ConceptStep.attend = stock
    dm = model.get_model_object("diffusion_model")
    assert len(dm.context_refiner) + len(dm.noise_refiner) == 4  # attention calls before the first joint layer
    assert attended == [0, 1, 2] and maps.layers == (0, 1, 2)


@requires_omni
def test_z_image_omni_reference_latents_stay_out_of_the_maps(ca):
    """ReferenceLatent's image enters NextDiT's joint layers before the generated image (its tokens modulated as at
    t = 0): the latent is plain sampling's, the concepts attend over it, and the maps cover the generated grid."""
    model, clip = tiny_z_image(3), tiny_z_image_clip()
    source = torch.randn(1, 16, 6, 8, generator=torch.Generator().manual_seed(4))
    inputs = with_reference(z_image_inputs(batch=2, cfg=3.0), source)
    reference = ksampler(model, inputs)
    assert not torch.equal(reference, ksampler(model, z_image_inputs(batch=2, cfg=3.0)))
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (2, 3, 4, 6) and torch.isfinite(maps.maps).all()


@pytest.mark.skipif(not HAS_Z_IMAGE_PIXEL_SPACE, reason="Z-Image's pixel-space variant needs ComfyUI 0.33")
def test_the_pixel_space_variant(ca):
    """Z-Image's pixel-space model (16-pixel patches of the image itself, a small decoder after the joint layers):
    the latent is plain sampling's, one map per 16-pixel token."""
    model, clip = tiny_z_image(3, version="pixel-space"), tiny_z_image_clip()
    inputs = {**sampler_inputs(clip, 1, 2.0, size=(48, 80), channels=3), "steps": 2}
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (1, 3, 3, 5) and maps.token_pixels == 16 and maps.image_size == (48, 80)


# -- weights as users load them


@pytest.fixture(scope="module")
def z_image_file(tmp_path_factory):
    """The tiny Z-Image's weights in a file under diffusion_models, the config it is detected as, and its fp32 run."""
    folder = tmp_path_factory.mktemp("diffusion_models")
    model = tiny_z_image(3)
    with torch.no_grad():  # the width-64 models' activation scale: the 256-wide random model is less sensitive to
        for p in model.model.diffusion_model.parameters():  # rounding (as test_gguf.py's Flux)
            if p.ndim > 1:
                p.mul_(0.5)
    weights = {k: v.detach().clone().contiguous() for k, v in model.model.diffusion_model.state_dict().items()}
    return save_diffusion_model(weights, folder, "tiny_z_image.safetensors"), weights, model


class detected_as_tiny_z_image:
    """While a loader runs: ComfyUI's detector (full-size Z-Image only) returns the tiny config, and the compute
    dtype is the one a GPU picks for low-precision weights."""

    def __init__(self, config: dict, compute_dtype=None):
        self.config, self.compute_dtype = config, compute_dtype

    def __enter__(self):
        import comfy.model_management

        self.saved = (comfy.model_detection.detect_unet_config, comfy.model_management.unet_manual_cast)
        detect, config = self.saved[0], self.config

        def detect_tiny(state_dict, key_prefix, *args, **kwargs):
            found = detect(state_dict, key_prefix, *args, **kwargs)
            return dict(config) if found is not None and found.get("image_model") == "lumina2" else found

        comfy.model_detection.detect_unet_config = detect_tiny
        if self.compute_dtype is not None:
            comfy.model_management.unet_manual_cast = lambda weight_dtype, *a, **k: (
                None if weight_dtype in (torch.float32, torch.float64) else self.compute_dtype)

    def __exit__(self, *exc):
        import comfy.model_management

        comfy.model_detection.detect_unet_config, comfy.model_management.unet_manual_cast = self.saved


def tiny_config(model) -> dict:
    return dict(model.model.model_config.unet_config)


@requires_z_image
def test_fp8_weights_through_unetloader(ca, z_image_file):
    name, _, fp32_model = z_image_file
    clip, inputs = tiny_z_image_clip(), z_image_inputs(cfg=3.0, size=(16, 16))
    _, _, reference = sample(ca, fp32_model, clip, inputs)
    with detected_as_tiny_z_image(tiny_config(fp32_model), torch.bfloat16):
        (model,) = nodes.UNETLoader().load_unet(name, "fp8_e4m3fn")
    qkv = model.model.diffusion_model.layers[0].attention.qkv
    assert getattr(qkv.weight, "storage_dtype", qkv.weight.dtype) == FP8  # the shared weights the concepts reuse
    plain, latent, maps = sample(ca, model, clip, inputs)
    assert torch.equal(latent, plain)
    assert_maps_agree(maps, reference)


GGUF_READY = comfy_host.GGUF_PACK is not None and importlib.util.find_spec("gguf") is not None


@requires_z_image
@pytest.mark.skipif(not GGUF_READY, reason="no ComfyUI-GGUF pack or gguf package (scripts/third_party_env.sh gguf)")
def test_gguf_q8_0_through_comfyui_gguf(ca, z_image_file, tmp_path):
    """A Q8_0 file of arch "lumina2", as ComfyUI-GGUF's tools write Z-Image's, through its Unet Loader (GGUF)."""
    import gguf
    from helpers.gguf_files import F16, F32, Q8_0, QUANTIZATION_THRESHOLD, quantize

    name, weights, fp32_model = z_image_file
    writer = gguf.GGUFWriter(path=None, arch="lumina2")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(gguf.LlamaFileType.MOSTLY_Q8_0)
    for key, value in weights.items():
        kind = (F32 if value.ndim == 1 or value.numel() <= QUANTIZATION_THRESHOLD
                else Q8_0 if key.endswith(".weight") and value.shape[-1] % 32 == 0 else F16)
        writer.add_tensor(key, quantize(value.float().numpy(), kind), raw_dtype=kind)
    path = tmp_path / "tiny_z_image-Q8_0.gguf"
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    folder_paths.add_model_folder_path("unet_gguf", str(tmp_path))  # ComfyUI-GGUF's model folder
    clip, inputs = tiny_z_image_clip(), z_image_inputs(cfg=3.0, size=(16, 16))
    _, _, reference = sample(ca, fp32_model, clip, inputs)
    loader = nodes.NODE_CLASS_MAPPINGS.get("UnetLoaderGGUF")
    assert loader is not None, "ComfyUI did not load ComfyUI-GGUF"
    with detected_as_tiny_z_image(tiny_config(fp32_model)):
        (model,) = loader().load_unet(path.name)
    qkv = model.model.diffusion_model.layers[0].attention.qkv
    assert type(qkv.weight).__name__ == "GGMLTensor" and qkv.weight.tensor_type == Q8_0
    plain, latent, maps = sample(ca, model, clip, inputs)
    assert torch.equal(latent, plain)
    assert_maps_agree(maps, reference)


@requires_z_image
def test_the_concepts_modulation_is_read_from_each_layers_own_call(ca):
    """Without a pooled vector the concepts' modulation is the tokens' own: each joint layer's modulation layer runs
    as often with the stream as without it (the maps still equal the equations: test_family_contract.py)."""
    model, clip, inputs = tiny_z_image(3), tiny_z_image_clip(), z_image_inputs(batch=2, cfg=3.0)
    layers = model.get_model_object("diffusion_model").layers
    calls = {}
    handles = [layer.adaLN_modulation.register_forward_hook(
        lambda module, args, output: calls.__setitem__(module, calls.get(module, 0) + 1)) for layer in layers]
    try:
        ksampler(model, inputs)
        plain = dict(calls)
        calls.clear()
        concept_sampler(ca, model, clip, **inputs)
    finally:
        for handle in handles:
            handle.remove()
    assert plain and calls == plain


def live_tensor_peak(call, folder) -> int:
    """The peak of the bytes allocated while call() runs, from torch's profiler's memory events on the CPU."""
    import json

    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof:
        call()
    trace = folder / "trace.json"
    prof.export_chrome_trace(str(trace))
    memory = [event["args"] for event in json.loads(trace.read_text())["traceEvents"]
              if event.get("name") == "[memory]" and event["args"].get("Device Type") == 0]
    assert memory, "the profiler recorded no allocation"
    before = memory[0]["Total Allocated"] - memory[0]["Bytes"]
    return max(args["Total Allocated"] for args in memory) - before


@pytest.mark.skipif(not hasattr(comfy.supported_models, "ErnieImage"), reason="Ernie-Image needs ComfyUI 0.33")
def test_ernie_attention_with_options_keeps_no_more_alive_than_the_hosts(ca, tmp_path):
    """The copy of Ernie-Image's attention that hands the call's options on frees the q/k projections before the
    attention, as the host's own forward does: the same output and the same peak of live tensors (keeping them
    raised the activation peak of a real-width block by 9 % at 64 concepts)."""
    from helpers.models import tiny_ernie

    attention = tiny_ernie(3).model.diffusion_model.layers[0].self_attention
    patched = ca.nodes.families.ernie.with_call_options(attention)
    x = torch.randn(1, 512, 64, generator=torch.Generator().manual_seed(0))
    with torch.inference_mode():
        assert torch.equal(patched(x), attention(x))
        peak = live_tensor_peak(lambda: patched(x), tmp_path)
        assert peak > 0 and peak == live_tensor_peak(lambda: attention(x), tmp_path)


@pytest.mark.skipif(not hasattr(comfy.supported_models, "ErnieImage"), reason="Ernie-Image needs ComfyUI 0.33")
def test_ernie_images_object_patches_keep_its_weights_keys(ca):
    """Ernie-Image's attention modules are replaced on the clone (object patches) by copies that share their
    layers: a weight patch (as a LoRA loader adds one) still reaches them, and the image equals plain sampling
    with the same patch; the model's own modules are back once the plain model runs."""
    from helpers.models import tiny_clip, tiny_ernie

    model, clip = tiny_ernie(3).clone(), tiny_clip()
    key = "diffusion_model.layers.1.self_attention.to_q.weight"
    weight = model.get_model_object(key)
    model.add_patches({key: (torch.randn(weight.shape, generator=torch.Generator().manual_seed(9)) * 0.05,)}, 1.0)
    inputs = sampler_inputs(clip, 1, 2.0, size=(4, 6), channels=128)
    plain = ksampler(model, inputs)
    assert not torch.equal(plain, ksampler(tiny_ernie(3), inputs))  # the patch changes the image
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], plain) and torch.isfinite(maps.maps).all()
    ksampler(model, inputs)
    attention = model.model.diffusion_model.layers[1].self_attention
    assert type(attention).__name__ == "ErnieImageAttention"
