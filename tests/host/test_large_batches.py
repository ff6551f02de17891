"""Segment Image on a batch of images in chunks: the maps of any chunk size are the unchunked maps, each chunk is
one model call per noise sample, the progress bar counts images x noise samples, an interrupt between chunks
stops the run and leaves the model clean, and batch_size 0 takes as many images per call as fit in free memory.
"""

import copy
import math
import sys

import comfy.model_management
import comfy.patcher_extension
import comfy.sample
import comfy.utils
import pytest
import torch
from helpers.models import random_vae, tiny_clip, tiny_flux
from helpers.sampling import counting_batches

IMAGES, HEIGHT, WIDTH = 5, 48, 80
LATENT = (16, HEIGHT // 8, WIDTH // 8)  # the Flux VAE's latent of one image


@pytest.fixture(scope="module")
def parts():
    """The tiny Flux, its text encoder and VAE, and a batch of five images."""
    image = torch.rand(IMAGES, HEIGHT, WIDTH, 3, generator=torch.Generator().manual_seed(5))
    return tiny_flux(0), tiny_clip(), random_vae(), image


def segment(ca, parts, model=None, **changes):
    base, clip, vae, image = parts
    inputs = dict(model=model or base, clip=clip, vae=vae, image=image, concepts="dog, grass", layers="auto",
                  space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=2, seed=7,
                  caption="a dog on grass", batch_size=0)
    inputs.update(changes)
    with torch.inference_mode():  # as ComfyUI runs a node
        return ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(**inputs).args[0]


def assert_same_maps(chunked, whole):
    """Equal up to float rounding: a matrix product of another batch size may round a few ulp apart (1e-6 of
    the value); another noise draw moves the maps by 1e-4 and more."""
    assert chunked.maps.shape == whole.maps.shape == (IMAGES, 2, 3, 5)
    for name in ("maps", "cross_attention_maps", "raw_maps", "raw_cross_attention_maps"):
        assert torch.allclose(getattr(chunked, name), getattr(whole, name), rtol=1e-6, atol=1e-6), name
    assert (chunked.steps, chunked.layers, chunked.image_size) == (whole.steps, whole.layers, whole.image_size)


def test_chunks_give_the_unchunked_maps(ca, parts):
    whole_calls, chunk_calls = [], []
    whole = segment(ca, parts, model=counting_batches(parts[0], whole_calls), batch_size=IMAGES)
    chunked = segment(ca, parts, model=counting_batches(parts[0], chunk_calls), batch_size=2)
    assert whole_calls == [IMAGES, IMAGES]  # the whole batch in one call per noise sample
    assert_same_maps(chunked, whole)
    assert not torch.allclose(chunked.maps[0], chunked.maps[1])  # each image its own maps
    other_seed = segment(ca, parts, batch_size=2, seed=8)
    assert not torch.allclose(other_seed.maps, whole.maps, atol=1e-4)  # the comparison can tell noise apart


def test_each_chunk_is_one_model_call_per_noise_sample(ca, parts):
    calls = []
    segment(ca, parts, model=counting_batches(parts[0], calls), batch_size=2)
    assert len(calls) == math.ceil(IMAGES / 2) * 2
    assert calls == [2, 2, 2, 2, 1, 1]  # chunk by chunk, each chunk's noise samples in turn


def test_the_progress_bar_counts_images_times_noise_samples(ca, parts, monkeypatch):
    """Every update the node makes (ComfyUI 0.33 sends the browser some of them, by time)."""
    updates, update = [], comfy.utils.ProgressBar.update_absolute

    def noted(self, value, total=None, preview=None):
        updates.append((value, total or self.total))
        return update(self, value, total, preview)

    monkeypatch.setattr(comfy.utils.ProgressBar, "update_absolute", noted)
    segment(ca, parts, batch_size=2)
    assert updates == [(2, 10), (4, 10), (6, 10), (8, 10), (9, 10), (10, 10)]


def test_an_interrupt_between_chunks_stops_the_run_and_leaves_the_model_clean(ca, parts):
    model = parts[0]
    options_before = copy.deepcopy(model.model_options)
    before = segment(ca, parts, batch_size=2, noise_samples=1)
    calls = []
    interrupting = model.clone()

    def interrupt_after_the_call(executor, x, *args, **kwargs):
        calls.append(x.shape[0])
        try:
            return executor(x, *args, **kwargs)  # the pass ends by stopping after its last block
        finally:
            comfy.model_management.interrupt_current_processing(True)  # as the queue's Cancel does mid-run

    interrupting.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "interrupt",
                                      interrupt_after_the_call)
    try:
        with pytest.raises(comfy.model_management.InterruptProcessingException):
            segment(ca, parts, model=interrupting, batch_size=2, noise_samples=1)
    finally:
        comfy.model_management.interrupt_current_processing(False)
    assert calls == [2]  # the first chunk ran; the second never started
    assert model.model_options == options_before
    for hook in (comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, comfy.patcher_extension.WrappersMP.APPLY_MODEL,
                 comfy.patcher_extension.WrappersMP.OUTER_SAMPLE):
        assert not any(model.wrappers.get(hook, {}).values())
    assert_same_maps(segment(ca, parts, batch_size=2, noise_samples=1), before)


def test_batch_size_0_takes_as_many_images_as_fit_in_free_memory(ca, parts, monkeypatch):
    model = parts[0]
    one_image = model.model.memory_required([1, *LATENT]) * ca.nodes.segment_node.MEMORY_MARGIN
    budget, device_free_memory = {}, comfy.model_management.get_free_memory

    def free_memory(dev=None, torch_free_too=False):
        if sys._getframe(1).f_code.co_name != "images_per_call":  # ComfyUI's own slicing and loading: as they are
            return device_free_memory(dev, torch_free_too)
        weights_to_load = max(model.model_size() - model.loaded_size(), 0)
        return weights_to_load + budget["images"] * one_image

    monkeypatch.setattr(comfy.model_management, "get_free_memory", free_memory)
    seen = {}
    for images in (100, 2.5, 0):
        budget["images"] = images
        calls = []
        seen[images] = segment(ca, parts, model=counting_batches(model, calls), noise_samples=1), calls
    assert seen[100][1] == [5]
    assert seen[2.5][1] == [2, 2, 1]
    assert seen[0][1] == [1, 1, 1, 1, 1]  # at least one image per call, however little is free
    assert_same_maps(seen[2.5][0], seen[100][0])


def test_a_negative_batch_size_is_refused_naming_the_input(ca, parts):
    with pytest.raises(ValueError, match="batch_size must be 0 .* got -1"):
        segment(ca, parts, batch_size=-1)


@pytest.mark.parametrize("latent", [LATENT, (3, 5, 7), (16, 1, 3, 5)], ids=["whole blocks", "odd", "video latent"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_chunk_noise_is_the_whole_batchs_noise(ca, latent, dtype):
    """prepare_noise's draw for the whole batch, row for row, whichever way the batch is cut."""
    whole = torch.zeros(7, *latent, dtype=dtype)
    for chunks in ((7,), (2, 2, 2, 1), (1,) * 7, (3, 4)):
        noise = ca.nodes.segment_node.BatchNoise(seed=11, samples=2, images=7)
        for sample in range(2):
            drawn, start = [], 0
            for size in chunks:
                drawn.append(noise.rows(whole[start:start + size], sample, start))
                start += size
            assert torch.equal(torch.cat(drawn), comfy.sample.prepare_noise(whole, 11 + sample)), (chunks, sample)
