"""Models as users run them: a LoRA from ComfyUI's LoraLoaderModelOnly, and a model partially loaded
(ComfyUI's low-VRAM offloading, whose LoRA weights are patched on the fly in each layer's forward).

The concept stream reuses the text stream's modules, so it must see the LoRA exactly as the text
stream does, whether ComfyUI merged it into the weights or applies it per call."""

import copy

import comfy.model_patcher
import comfy.patcher_extension
import folder_paths
import nodes
import pytest
import safetensors.torch
import torch
from helpers.equations import assert_maps_match
from helpers.equations.flux import encode, recorded_first_call, reference_scores
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import concept_sampler, run_layers, sampler_inputs

SEED, DEPTH = 5, 3
RANK = 4
STRENGTH = 0.8
# The text stream of every double block (what the concepts reuse), and a few image-stream modules
TEXT_MODULES = ("txt_attn.qkv", "txt_attn.proj", "txt_mlp.0", "txt_mlp.2", "txt_mod.lin")
IMAGE_MODULES = ("img_attn.qkv", "img_mlp.0")
# alpha as the file states it (None: no alpha key, ComfyUI then scales by 1)
ALPHA = {"txt_attn.qkv": 2.0, "txt_attn.proj": 8.0, "txt_mlp.0": 4.0, "txt_mlp.2": 1.0, "txt_mod.lin": 2.0,
         "img_attn.qkv": 2.0, "img_mlp.0": None}
# Free memory for weights of the offloaded model: about 40% of tiny_flux's 2.6 MB, so that the largest
# modules load and the rest are offloaded
WEIGHT_BUDGET = 1024 * 1024


def lora_modules() -> list[str]:
    return [f"double_blocks.{i}.{name}" for i in range(DEPTH) for name in TEXT_MODULES + IMAGE_MODULES]


def lora_state_dict(model) -> dict[str, torch.Tensor]:
    """A LoRA in the common lora_up / lora_down (+ alpha) layout, keyed by the diffusion model's module names."""
    generator = torch.Generator().manual_seed(11)
    modules = dict(model.get_model_object("diffusion_model").named_modules())
    state = {}
    for name in lora_modules():
        out_features, in_features = modules[name].weight.shape
        key = f"diffusion_model.{name}"
        state[f"{key}.lora_up.weight"] = 0.2 * torch.randn(out_features, RANK, generator=generator)
        state[f"{key}.lora_down.weight"] = 0.2 * torch.randn(RANK, in_features, generator=generator)
        alpha = ALPHA[name.split(".", 2)[2]]
        if alpha is not None:
            state[f"{key}.alpha"] = torch.tensor(alpha)
    return state


@pytest.fixture(scope="module")
def lora(tmp_path_factory):
    """(the file's name in ComfyUI's loras folder, its tensors)."""
    folder = tmp_path_factory.mktemp("loras")
    state = lora_state_dict(tiny_flux(SEED, depth=DEPTH))
    safetensors.torch.save_file(state, str(folder / "tiny_flux_lora.safetensors"))
    folder_paths.add_model_folder_path("loras", str(folder))
    return "tiny_flux_lora.safetensors", state


def with_lora(model, lora_name: str):
    """The model through ComfyUI's LoraLoaderModelOnly node; every LoRA key found its weight."""
    (patched,) = nodes.LoraLoaderModelOnly().load_lora_model_only(model, lora_name, STRENGTH)
    assert set(patched.patches) == {f"diffusion_model.{name}.weight" for name in lora_modules()}
    return patched


def merged_diffusion_model(model, state: dict[str, torch.Tensor]):
    """A copy of the diffusion model with W + strength * (alpha / rank) * up @ down merged here, not by ComfyUI."""
    merged = copy.deepcopy(model.get_model_object("diffusion_model"))
    modules = dict(merged.named_modules())
    with torch.no_grad():
        for name in lora_modules():
            key = f"diffusion_model.{name}"
            alpha = state.get(f"{key}.alpha", torch.tensor(float(RANK))).item()
            up, down = state[f"{key}.lora_up.weight"], state[f"{key}.lora_down.weight"]
            modules[name].weight += STRENGTH * (alpha / RANK) * (up @ down)
    return merged


def test_lora_changes_the_maps_as_it_changes_the_text_stream(ca, lora):
    lora_name, state = lora
    base, clip = tiny_flux(SEED, depth=DEPTH), tiny_clip()
    # merged before any sampling: ComfyUI patches the LoRA into the weights it shares with `base` in place
    merged = merged_diffusion_model(base, state)
    model = with_lora(base, lora_name)
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    x, t, context, y, guidance = recorded_first_call(model, clip, inputs)
    concept_context = encode(ca, clip, ["dog", "grass", "sky"], "first")
    with torch.no_grad():
        expected = reference_scores(merged, x, t, context, y, guidance, concept_context)
    assert_maps_match(ca, model, clip, inputs, expected, (x.shape[-2] // 2, x.shape[-1] // 2))
    # and the LoRA matters: without it the maps are far from these
    _, maps = run_layers(ca, model, clip, inputs, "all", softmax=True)
    _, without = run_layers(ca, base, clip, inputs, "all", softmax=True)
    assert (maps.maps - without.maps).abs().max().item() > 0.05


class PartiallyLoadedModelPatcher(comfy.model_patcher.ModelPatcher):
    """A ModelPatcher on a device with WEIGHT_BUDGET bytes free for weights.

    On a CPU load device ComfyUI never offloads: load_models_gpu gives a CPU model the vram state
    DISABLED, so lowvram_model_memory 0, so LoadedModel.model_load asks partially_load for 1e32 bytes
    and everything loads. On a GPU short of memory the one difference is the budget load_models_gpu
    passes on; this patcher caps that budget, and the rest is ComfyUI's own: which modules load, the
    LowVramPatch that applies an offloaded module's LoRA on the fly, the casting forward of
    comfy_cast_weights. clone() keeps the class, so LoRA loaders and samplers keep the budget.
    (From 0.33 ComfyUI's loaders may build a ModelPatcherDynamic; on a CPU load device it is this
    same ModelPatcher.)
    """

    def partially_load(self, device_to, extra_memory=0, force_patch_weights=False):
        budget_left = max(0, WEIGHT_BUDGET - self.loaded_size())
        return super().partially_load(device_to, min(extra_memory, budget_left), force_patch_weights)


def partially_loaded(model):
    cpu = torch.device("cpu")
    return PartiallyLoadedModelPatcher(model.model, load_device=cpu, offload_device=cpu)


class OffloadProbe:
    """A DIFFUSION_MODEL wrapper that records, at every model call, how each module's weights are held."""

    def __init__(self):
        self.calls = []

    def __call__(self, executor, *args, **kwargs):
        base_model = executor.class_obj
        on_the_fly, loaded = set(), set()
        for name, module in base_model.named_modules():
            patches = [f for f in getattr(module, "weight_function", []) if isinstance(f, comfy.model_patcher.LowVramPatch)]
            if getattr(module, "comfy_cast_weights", False) and patches:
                on_the_fly.add(name)
            if getattr(module, "comfy_patched_weights", False):
                loaded.add(name)
        self.calls.append((on_the_fly, loaded))
        return executor(*args, **kwargs)


def test_partially_loaded_model_with_lora_gives_the_fully_loaded_maps(ca, lora):
    lora_name, _ = lora
    clip = tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 2}
    full = with_lora(tiny_flux(SEED, depth=DEPTH), lora_name)
    offloaded = with_lora(partially_loaded(tiny_flux(SEED, depth=DEPTH)), lora_name)
    probe = OffloadProbe()
    offloaded.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "offload_probe", probe)

    full_latent, full_maps = concept_sampler(ca, full, clip, **inputs)
    (plain,) = nodes.common_ksampler(offloaded, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                     inputs["scheduler"], inputs["positive"], inputs["negative"],
                                     inputs["latent_image"])
    latent, maps = concept_sampler(ca, offloaded, clip, **inputs)

    # low-VRAM loading engaged in every model call of both runs: some LoRA'd text-stream modules computed
    # with weights patched on the fly, while others were loaded with the LoRA merged
    text_stream = {name for name in lora_modules() if ".txt_" in name}
    assert len(probe.calls) == 2 * inputs["steps"]
    for on_the_fly, loaded in probe.calls:
        assert on_the_fly & text_stream, sorted(on_the_fly)
        assert loaded & text_stream, sorted(loaded)

    assert torch.equal(latent["samples"], plain["samples"])
    assert torch.equal(latent["samples"], full_latent["samples"])
    # to fp32 round-off: a layer patched on the fly casts its weight, so the concepts' q/k/v ride in the text's own
    # product; a loaded layer has no cast to share, and they are made apart at the attention (another kernel)
    torch.testing.assert_close(maps.maps, full_maps.maps, rtol=0, atol=1e-6)
    torch.testing.assert_close(maps.cross_attention_maps, full_maps.cross_attention_maps, rtol=0, atol=1e-6)
