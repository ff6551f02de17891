"""The nodes load through ComfyUI's loader, run through its executor and fail clearly."""

import comfy.supported_models
import comfy.utils
import comfyui_version
import nodes
import pytest
import torch
from comfy_host import make_executor, run_prompt
from helpers.models import flux_config, random_vae, tiny_clip, tiny_flux, tiny_model, tiny_wan
from helpers.sampling import prompt as encode_prompt

NODE_IDS = ["ConceptAttentionSampler", "ConceptAttentionModel", "ConceptAttentionMaps", "ConceptAttentionSegmentImage",
            "ConceptAttentionSaliencyMap", "ConceptAttentionMask"]


def graph(concepts="dog, grass, sky", mask_concepts="dog", layers="auto", width=96, height=64):
    sampler = {"model": ["1", 0], "clip": ["1", 1], "seed": 3, "steps": 2, "cfg": 1.0, "sampler_name": "euler",
               "scheduler": "simple", "positive": ["2", 0], "negative": ["3", 0], "latent_image": ["4", 0],
               "denoise": 1.0, "concepts": concepts, "layers": layers, "space": "output", "softmax": True,
               "token_pooling": "first", "start_step": 0, "end_step": 10000}
    mask = {"concept_maps": ["5", 1], "concepts": mask_concepts, "method": "argmax", "threshold": 0.5, "grow": 2,
            "blur": 1.0, "fill_holes": False, "invert": False, "space": "as_made"}
    return {
        "1": {"class_type": "CATestTinyFlux", "inputs": {"seed": 0, "guidance_embed": True}},
        "2": {"class_type": "CLIPTextEncode", "inputs": {"text": "a dog on grass", "clip": ["1", 1]}},
        "3": {"class_type": "CLIPTextEncode", "inputs": {"text": "", "clip": ["1", 1]}},
        "4": {"class_type": "EmptySD3LatentImage", "inputs": {"width": width, "height": height, "batch_size": 1}},
        "5": {"class_type": "ConceptAttentionSampler", "inputs": sampler},
        "6": {"class_type": "VAEDecode", "inputs": {"samples": ["5", 0], "vae": ["1", 2]}},
        "7": {"class_type": "ConceptAttentionSaliencyMap",
              "inputs": {"concept_maps": ["5", 1], "image": ["6", 0], "normalisation": "joint",
                         "overlay_opacity": 0.6, "space": "as_made"}},
        "8": {"class_type": "ConceptAttentionMask", "inputs": mask},
        "9": {"class_type": "ImageCompositeMasked",
              "inputs": {"destination": ["6", 0], "source": ["6", 0], "x": 0, "y": 0, "resize_source": False,
                         "mask": ["8", 0]}},
        "10": {"class_type": "PreviewImage", "inputs": {"images": ["9", 0]}},
        "11": {"class_type": "SetLatentNoiseMask", "inputs": {"samples": ["5", 0], "mask": ["8", 0]}},
        "12": {"class_type": "VAEDecode", "inputs": {"samples": ["11", 0], "vae": ["1", 2]}},
        "13": {"class_type": "PreviewImage", "inputs": {"images": ["12", 0]}},
    }


def test_nodes_are_registered_by_comfyuis_loader():
    for node_id in NODE_IDS:
        assert node_id in nodes.NODE_CLASS_MAPPINGS, node_id
    assert nodes.NODE_DISPLAY_NAME_MAPPINGS["ConceptAttentionSampler"] == "Concept Attention Sampler"
    for node_id in NODE_IDS:
        schema = nodes.NODE_CLASS_MAPPINGS[node_id].GET_SCHEMA()
        for node_input in schema.inputs:
            assert node_input.tooltip, f"{node_id}.{node_input.id} has no tooltip"


def test_generate_map_mask_inpaint_and_composite_through_the_executor():
    result = run_prompt(graph())
    assert result["valid"], result
    assert result["success"], result["errors"]
    outputs = result["outputs"]
    assert len(outputs["7"]["images"]) == 3
    assert outputs["7"]["concepts"] == ["dog", "grass", "sky"]
    assert len(outputs["8"]["images"]) == 1


@pytest.mark.parametrize("change, message", [
    ({"concepts": ""}, "concepts is empty"),
    ({"concepts": "dog, grass, Dog"}, "more than once"),
    ({"mask_concepts": "cat"}, "unknown concept(s) ['cat']: the maps hold ['dog', 'grass', 'sky']"),
    ({"layers": "40"}, "layer 40 is out of range: this model has 3 double blocks (0-2)"),
])
def test_bad_inputs_fail_clearly_and_the_executor_keeps_serving(change, message):
    executor = make_executor()
    bad = run_prompt(graph(**change), executor)
    assert bad["valid"] and not bad["success"]
    assert message in bad["errors"][0]["exception_message"]
    good = run_prompt(graph(), executor)
    assert good["success"], good["errors"]


def test_a_mask_wired_into_segment_is_refused_by_validation():
    prompt = graph()
    prompt["20"] = {"class_type": "ConceptAttentionSegmentImage",
                    "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["8", 0],
                               "concepts": "dog, grass", "layers": "auto", "space": "output", "softmax": True,
                               "token_pooling": "first", "noise_level": 0.5, "noise_samples": 1, "seed": 0}}
    prompt["21"] = {"class_type": "ConceptAttentionSaliencyMap",
                    "inputs": {"concept_maps": ["20", 0], "normalisation": "joint", "overlay_opacity": 0.5,
                               "space": "as_made"}}
    result = run_prompt(prompt)
    # ComfyUI drops the invalid branch with a message naming the mismatch and runs the rest
    assert "received_type(MASK) mismatch input_type(IMAGE)" in str(result["node_errors"]["20"])


def segment(ca, image, **overrides):
    inputs = dict(model=tiny_flux(0), clip=tiny_clip(), vae=random_vae(), image=image, concepts="dog, grass",
                  layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5,
                  noise_samples=1, seed=0, caption="")
    inputs.update(overrides)
    return ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(**inputs).args[0]


def test_segment_image_maps_any_size_and_averages_noise_samples(ca):
    image = torch.rand(2, 72, 100, 3)  # a batch, not a multiple of 16 (nor of 8 in width)
    model, clip, vae = tiny_flux(0), tiny_clip(), random_vae()
    updates = []
    comfy.utils.set_progress_bar_global_hook(lambda value, total, preview, node_id=None: updates.append((value, total)))
    try:
        two = segment(ca, image, model=model, clip=clip, vae=vae, noise_samples=2)
    finally:
        comfy.utils.set_progress_bar_global_hook(None)
    assert updates[-1] == (4, 4)  # two images x two noise samples
    one = segment(ca, image, model=model, clip=clip, vae=vae, seed=0)
    other = segment(ca, image, model=model, clip=clip, vae=vae, seed=1)
    assert two.maps.shape == (2, 2, 5, 6)  # the VAE crops 100 px to 96: 6 tokens
    assert two.image_size == (72, 100)
    assert torch.allclose(two.maps, (one.maps + other.maps) / 2, atol=1e-6)
    assert two.pixel_maps().shape == (2, 2, 72, 100)
    mask = ca.ca_core.masks.concept_mask(two.pixel_maps(), [0])
    assert mask.shape == (2, 72, 100)


def test_concept_mask_drops_islands_under_min_region_and_prompts_without_it_still_run(ca):
    maps = segment(ca, torch.rand(1, 64, 96, 3))
    inputs = dict(concept_maps=maps, concepts="dog", method="threshold", threshold=0.5, grow=0, blur=0.0,
                  fill_holes=False, invert=False, space="as_made")
    plain = ca.nodes.map_nodes.ConceptMask.execute(**inputs).args[0]
    assert 0 < plain.sum() < plain.numel()
    everything_small = ca.nodes.map_nodes.ConceptMask.execute(**inputs, min_region=plain.numel() + 1).args[0]
    assert everything_small.sum() == 0  # no island can be as large as the whole image plus one
    assert run_prompt(graph())["success"]  # graph() leaves min_region out, as prompts saved before it did
    bad = graph()
    bad["8"]["inputs"]["min_region"] = -1
    errors = run_prompt(bad)["node_errors"]["8"]["errors"]  # ComfyUI drops the mask's branch, naming the input
    assert [(e["type"], e["details"]) for e in errors] == [("value_smaller_than_min", "min_region")]


def test_segment_stops_after_the_last_chosen_block(ca):
    model = tiny_flux(0)
    ran = []
    patched = model.clone()
    for index in range(3):
        patched.set_model_patch_replace(
            lambda args, extra, i=index: (ran.append(i), extra["original_block"](args))[1], "dit", "double_block", index)
    segment(ca, torch.rand(1, 64, 64, 3), model=patched, layers="1")
    assert ran == [0, 1]


def test_direct_calls_name_the_bad_input(ca):
    with pytest.raises(ValueError, match="IMAGE batch"):
        segment(ca, torch.rand(1, 64, 64))  # a MASK
    clip = tiny_clip()
    # Wan's text enters by cross-attention only: the error says so, and lists what is supported
    with pytest.raises(ValueError, match="Wan has no joint text-image attention.*Supported: Flux.1.*SD3"):
        ca.nodes.sampler_node.ConceptAttentionSampler.execute(
            model=tiny_wan(), clip=clip, seed=0, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
            positive=encode_prompt(clip, "x"), negative=encode_prompt(clip, ""),
            latent_image={"samples": torch.zeros(1, 16, 8, 8)}, denoise=1.0, concepts="dog", layers="auto",
            space="output", softmax=True, token_pooling="first", start_step=0, end_step=10000)
    with pytest.raises(ValueError, match="Wan has no joint text-image attention.*Supported: Flux.1.*Z-Image"):
        ca.nodes.families.family_for(tiny_wan())
    maps = segment(ca, torch.rand(1, 64, 64, 3))
    with pytest.raises(ValueError, match="image is 96x64 but the maps were made for 64x64"):
        ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.5,
                                               space="as_made", image=torch.rand(1, 64, 96, 3))


@pytest.mark.parametrize("config_class, said", [
    ("SDXL", "SDXL has no joint text-image attention"), ("SD15", "SD1.5 has no joint text-image attention"),
    ("WAN21_T2V", "Wan has no joint text-image attention"), ("PixArtSigma", "PixArt has no joint text-image attention"),
    ("StableAudio", "does not support Stable Audio (an audio model) models yet"),
    ("HiDreamO1", "HiDream-O1 has no joint text-image attention, which ConceptAttention reads its maps from: its "
                  "attention runs one way"),
    ("Anima", "Anima has no joint text-image attention"),
    ("Flux", "does not support this Flux.1 model: its transformer is a variant the Flux.1 adapter does not know"),
])
def test_unsupported_models_are_named_as_users_know_them(ca, config_class, said):
    """The family comes from ComfyUI's model config (what its loader detected), never an internal class name;
    the model here is a stand-in whose config says it is that family."""
    model = tiny_wan()
    if not hasattr(comfy.supported_models, config_class):
        pytest.skip(f"ComfyUI {comfyui_version.__version__} has no {config_class} model config")
    config = getattr(comfy.supported_models, config_class)
    model.model.model_config = config.__new__(config)
    with pytest.raises(ValueError) as raised:
        ca.nodes.families.family_for(model)
    message = str(raised.value)
    assert said in message
    assert "Supported: Flux.1 (dev, schnell, Kontext)" in message and "Chroma" in message
    assert "WanModel" not in message and "Wrapper" not in message and "Model" not in message.split(".")[0]


def test_longcat_image_is_not_taken_for_flux_1(ca):
    """LongCat-Image runs on Flux's class, but its text tokens carry RoPE positions and its prompt is Qwen2.5-VL's,
    padded to 512 tokens: Flux.1's adapter (zero concept positions, T5 word pieces, a zero pooled vector it has no
    layer for) would give wrong maps or fail, so the model takes its own family, and Flux.1 stays Flux.1's."""
    if not hasattr(comfy.supported_models, "LongCatImage"):
        pytest.skip(f"ComfyUI {comfyui_version.__version__} has no LongCat-Image")
    config = {**flux_config(guidance_embed=False), "vec_in_dim": None, "txt_ids_dims": [1, 2]}
    model = tiny_model(comfy.supported_models.LongCatImage, config, 0)
    families = ca.nodes.families
    assert type(families.family_for(model)).__name__ == "LongCatImageFamily"
    assert not families.flux.FluxFamily().matches(model.get_model_object("diffusion_model"))
    assert type(families.family_for(tiny_flux())).__name__ == "FluxFamily"  # Flux.1 itself still is


def test_an_unknown_mask_method_is_a_clear_error_on_every_host():
    """0.3.64 does not check combo values itself; either the host or the node must refuse it."""
    prompt = graph()
    prompt["8"]["inputs"]["method"] = "bogus"
    result = run_prompt(prompt)
    if result["valid"] and "8" not in result["node_errors"]:
        assert "unknown mask method 'bogus'" in result["errors"][0]["exception_message"]
    else:
        assert "bogus" in str(result["node_errors"]["8"])


class StandInNunchakuFlux(torch.nn.Module):
    """Stands in for a diffusion model another pack loads in place of ComfyUI's own class (ComfyUI-nunchaku's
    SVDQuant Flux wrapper): a Flux model config around a transformer ComfyUI's hooks cannot reach."""

    def forward(self, *args, **kwargs):
        raise AssertionError("the concept nodes must refuse this model before running it")


StandInNunchakuFlux.__module__ = "ComfyUI-nunchaku.wrappers.flux"


def test_a_model_from_another_packs_class_is_refused_naming_the_pack(ca):
    model = tiny_flux()
    model.add_object_patch("diffusion_model", StandInNunchakuFlux())
    clip = tiny_clip()
    with pytest.raises(ValueError) as raised:
        ca.nodes.sampler_node.ConceptAttentionSampler.execute(
            model=model, clip=clip, seed=0, steps=1, cfg=1.0, sampler_name="euler", scheduler="simple",
            positive=encode_prompt(clip, "x"), negative=encode_prompt(clip, ""),
            latent_image={"samples": torch.zeros(1, 16, 8, 8)}, denoise=1.0, concepts="dog", layers="auto",
            space="output", softmax=True, token_pooling="first", start_step=0, end_step=10000)
    message = str(raised.value)
    assert "does not support this Flux.1 model: it was loaded by the 'ComfyUI-nunchaku' node pack" in message
    assert "SVDQuant / Nunchaku" in message and "Load Diffusion Model (bf16, fp8 or scaled fp8)" in message
    assert "Supported: Flux.1 (dev, schnell, Kontext)" in message
