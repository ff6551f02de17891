"""Several GPUs through ComfyUI's MultiGPU CFG Split (ComfyUI 0.33 on): the node deep-clones the model per device
and each sampling step runs the prompts' work units on one thread per device.

On this CPU-only test machine two devices are made to appear ("cpu" and "cpu:1", torch's CPU under two device
objects, listed by comfy.model_management.get_all_torch_devices), and the tiny model carries the loader factory
the node rebuilds each device's clone from, as ComfyUI's own loaders register it. Everything else is the host's
code: the deep clones, the scheduler splitting the positive and negative prompts between devices, the thread pool.
"""

import threading

import comfy.model_management
import comfy.patcher_extension
import pytest
import torch
from helpers.models import random_vae, tiny_clip, tiny_flux
from helpers.sampling import ksampler, sampler_inputs

try:
    from comfy_extras.nodes_multigpu import MultiGPUCFGSplitNode
except ImportError:
    MultiGPUCFGSplitNode = None

pytestmark = pytest.mark.skipif(MultiGPUCFGSplitNode is None, reason="MultiGPU CFG Split needs ComfyUI 0.33")

DEVICES = (torch.device("cpu"), torch.device("cpu", 1))


@pytest.fixture
def two_devices(monkeypatch):
    monkeypatch.setattr(comfy.model_management, "get_all_torch_devices", lambda exclude_current=False: list(DEVICES))


def loaded_tiny_flux(seed: int = 0):
    """tiny_flux as a loader gives it: with the factory MultiGPU CFG Split rebuilds each device's clone from."""
    model = tiny_flux(seed)
    model.cached_patcher_init = (tiny_flux, (seed,))
    return model


def split(model):
    return MultiGPUCFGSplitNode.execute(model=model, max_gpus=2).args[0]


def devices_and_threads(model) -> list:
    """(device, thread) of each diffusion model call of `model` and its device clones (a DIFFUSION_MODEL wrapper
    added on the outside)."""
    seen, lock = [], threading.Lock()

    def wrapper(executor, *args, **kwargs):
        options = args[-1] if isinstance(args[-1], dict) else kwargs.get("transformer_options", {})
        with lock:
            seen.append((options.get("multigpu_thread_device"), threading.get_ident()))
        return executor(*args, **kwargs)

    model.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "test_devices", wrapper)
    return seen


def test_the_host_splits_the_prompts_across_two_devices(two_devices):
    """The setup is the host's real split: two device clones, each prompt's work unit on its own device and
    thread."""
    model = split(loaded_tiny_flux())
    assert [clone.load_device for clone in model.get_additional_models_with_key("multigpu")] == [DEVICES[1]]
    seen = devices_and_threads(model)
    ksampler(model, sampler_inputs(tiny_clip(), 1, 3.5))
    assert {device for device, _ in seen} == set(DEVICES)
    assert len({thread for _, thread in seen}) == 2 and threading.get_ident() not in {t for _, t in seen}


@pytest.mark.parametrize("prompt", ["positive", "both"])
def test_maps_and_latent_equal_one_devices(ca, two_devices, prompt):
    """Split over two devices, the Concept Attention Sampler gives the latent of the same split sampling without it
    and of one device, and the maps of one device: the positive prompt's maps come back from whichever device ran
    them (the negative prompt's too)."""
    clip = tiny_clip()
    inputs = sampler_inputs(clip, 2, 3.5)
    single = concept_sampler_with(ca, loaded_tiny_flux(), clip, inputs, prompt)
    model = split(loaded_tiny_flux())
    seen = devices_and_threads(model)
    reference = ksampler(model, inputs)
    assert {device for device, _ in seen} == set(DEVICES)
    latent, maps = concept_sampler_with(ca, model, clip, inputs, prompt)
    assert torch.equal(latent["samples"], reference)
    # one device runs both prompts as one batch, two devices one each: the host's own latents differ in round-off
    torch.testing.assert_close(reference, single[0]["samples"], rtol=1e-5, atol=1e-5)
    assert maps.prompts == single[1].prompts and maps.steps == single[1].steps
    torch.testing.assert_close(maps.maps, single[1].maps, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(maps.cross_attention_maps, single[1].cross_attention_maps, rtol=1e-6, atol=1e-6)


def concept_sampler_with(ca, model, clip, inputs, prompt):
    return ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, prompt=prompt, **inputs).args


def test_twenty_split_runs_give_the_same_maps(ca, two_devices):
    """No race between the devices' threads: twenty runs of both prompts on two devices, each the same maps."""
    clip = tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 3.5, size=(4, 6)), "steps": 1}
    model = split(loaded_tiny_flux())
    first = concept_sampler_with(ca, model, clip, inputs, "both")[1]
    for _ in range(19):
        again = concept_sampler_with(ca, model, clip, inputs, "both")[1]
        assert torch.equal(again.maps, first.maps) and torch.equal(again.cross_attention_maps,
                                                                   first.cross_attention_maps)
        assert again.steps == first.steps


def test_segment_image_on_a_split_model(ca, two_devices):
    """Segment Image's one partial pass, which stops after the last chosen block inside a device's thread, gives
    the maps of one device."""
    image = torch.rand(2, 48, 80, 3, generator=torch.Generator().manual_seed(5))
    settings = dict(clip=tiny_clip(), vae=random_vae(), image=image, concepts="dog, grass", layers="auto",
                    space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=2, seed=0,
                    caption="a dog on grass")
    segment = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute
    single = segment(model=loaded_tiny_flux(), **settings).args[0]
    model = split(loaded_tiny_flux())
    seen = devices_and_threads(model)
    maps = segment(model=model, **settings).args[0]
    assert seen and all(device is not None for device, _ in seen)  # through the split's thread pool
    torch.testing.assert_close(maps.maps, single.maps, rtol=1e-6, atol=1e-6)
