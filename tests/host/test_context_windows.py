"""Long clips sampled through ComfyUI's context windows (the Context Windows (Manual) node): each window's maps land
on their own frames of the whole clip, fused with the weights the sampler gives that window's latents there.

- the latent is bit-identical to the same windowed sampling without the stream;
- a planted moving object is followed across the windows' boundaries;
- one window covering the whole clip gives the maps of the run without windows;
- each frame's map is the weighted mean of the windows that covered it (flat and pyramid weights, checked against
  the windows' own maps).
"""

import inspect

import comfy.context_windows
import comfy.samplers
import pytest
import torch
from comfy_extras.nodes_context_windows import ContextWindowsManualNode
from helpers.models import random_wan21_vae, tiny_clip, tiny_cogvideox, tiny_flux, tiny_hunyuan_video
from helpers.planted import concept_context, planted_clip, planted_cogvideox, planted_hunyuan_video
from helpers.sampling import concept_sampler, ksampler, sampler_inputs
from helpers.variants import HAS_COGVIDEOX, cogvideox_clip

FRAMES = 7  # latent frames of the clip; windows of 3 with an overlap of 1: frames 0-2, 2-4, 4-6


def windowed(model, length: int = 3, overlap: int = 1, fuse_method: str = "pyramid"):
    """The model with ComfyUI's Context Windows (Manual) over the latent's frames (dim 2), the node's other
    settings at their defaults (no causal anchor frame where the host has one: the windows' frames exactly)."""
    settings = {put.id: put.default for put in ContextWindowsManualNode.define_schema().inputs if put.id != "model"}
    settings.update(context_length=length, context_overlap=overlap, fuse_method=fuse_method, dim=2,
                    context_schedule=comfy.context_windows.ContextSchedules.STATIC_STANDARD)
    if "causal_window_fix" in settings:
        settings["causal_window_fix"] = False
    return ContextWindowsManualNode.execute(model=model, **settings).args[0]


def always_windowed(model):
    """windowed() with one window of every frame, sampled as a window (the host samples a clip no longer than
    its window whole, without one)."""
    model = windowed(model, length=FRAMES, overlap=0)
    model.model_options["context_handler"].should_use_context = lambda *args, **kwargs: True
    return model


def one_call(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A 'sampler' that calls the model once (every window) at the first sigma and keeps x."""
    model(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
    return x


def clip_maps(ca, model, clip_latent, windows=None):
    """Maps of 'left' and 'right' from one call of the planted model on the clip (sigma 0, cfg 1), in context
    windows where `windows` gives the Context Windows settings."""
    patch = ca.nodes.stream.install.ConceptAttentionPatch(ca.nodes.families.family_for(model), concept_context(),
                                                          (0, 1), (0, 1))
    patched = patch.install(model.clone())
    if windows == "one":
        patched = always_windowed(patched)
    elif windows is not None:
        patched = windowed(patched, **windows)
    cond = [[torch.zeros(1, 4, 32), {"pooled_output": torch.zeros(1, 16)}]]
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)
    guider.sample(torch.zeros_like(clip_latent), clip_latent, comfy.samplers.KSAMPLER(one_call),
                  torch.tensor([0.0, 0.0]), disable_pbar=True, seed=0)
    frames, height, width = clip_latent.shape[2:]
    return patch.concept_maps(["left", "right"], (height * 8, width * 8), "output", 16)


def model_calls(model) -> list:
    """The latent frames each diffusion model call of `model` sees, and whether as a context window (a forward
    pre-hook)."""
    seen = []
    model.get_model_object("diffusion_model").register_forward_pre_hook(
        lambda module, args, kwargs: seen.append(
            (args[0].shape[2], (kwargs.get("transformer_options") or args[-1]).get("context_window") is not None)),
        with_kwargs=True)
    return seen


def planted_video_models():
    yield pytest.param(planted_hunyuan_video, id="hunyuan_video")
    yield pytest.param(lambda: planted_cogvideox("1.0-5b"), id="cogvideox",
                       marks=pytest.mark.skipif(not HAS_COGVIDEOX, reason="CogVideoX needs ComfyUI 0.33"))


@pytest.mark.parametrize("planted_model", planted_video_models())
def test_a_planted_moving_object_is_followed_across_windows(ca, planted_model):
    """'left' covers one more token column per latent frame (1, 2, ... then back): every frame's argmax mask is its
    own frame's object, whichever windows covered it."""
    boundaries = [1, 2, 3, 4, 5, 2, 1]
    model = planted_model()
    calls = model_calls(model)
    maps = clip_maps(ca, model, planted_clip(boundaries), windows={})
    assert calls == [(3, True)] * 3  # three windows of three frames were sampled, never the whole clip
    assert maps.maps.shape == (FRAMES, 2, 4, 6) and maps.frames == FRAMES
    for frame, boundary in enumerate(boundaries):
        left = maps.maps[frame, 0] > maps.maps[frame, 1]
        expected = torch.zeros(4, 6, dtype=torch.bool)
        expected[:, :boundary] = True
        assert torch.equal(left, expected), frame


@pytest.mark.parametrize("fuse_method", ["flat", "pyramid"])
def test_each_frame_is_the_weighted_mean_of_the_windows_over_it(ca, fuse_method):
    """Windows of 4 frames overlapping by 2 (frames 0-3, 2-5, 3-6): the clip's maps equal each window's maps (its
    frames sampled alone) placed on their frames and averaged with the sampler's fuse weights, flat 1, 1, 1, 1 or
    pyramid 1, 2, 2, 1. A model of drawn weights on a drawn clip, so that a frame's maps depend on the window."""
    model = tiny_hunyuan_video(3, depth=2)
    clip = torch.randn(1, 16, FRAMES, 8, 12, generator=torch.Generator().manual_seed(2))
    maps = clip_maps(ca, model, clip, windows={"length": 4, "overlap": 2, "fuse_method": fuse_method}).maps
    weights = [1.0, 1.0, 1.0, 1.0] if fuse_method == "flat" else [1.0, 2.0, 2.0, 1.0]
    alone = {start: clip_maps(ca, model, clip[:, :, start:start + 4]).maps for start in (0, 2, 3)}
    total, count = torch.zeros_like(maps), torch.zeros(FRAMES)
    for start, window_maps in alone.items():
        for offset, weight in enumerate(weights):
            total[start + offset] += weight * window_maps[offset]
            count[start + offset] += weight
    torch.testing.assert_close(maps, total / count[:, None, None, None], rtol=1e-5, atol=1e-6)
    if fuse_method == "pyramid":  # the comparison can tell: the plain mean over the windows differs
        plain, covered = torch.zeros_like(maps), torch.zeros(FRAMES)
        for start, window_maps in alone.items():
            plain[start:start + 4] += window_maps
            covered[start:start + 4] += 1
        assert not torch.allclose(maps, plain / covered[:, None, None, None], atol=1e-4)


def drawn_video_models():
    """Tiny video models of drawn weights, whose maps are not a planted model's clean 0 and 1."""
    yield pytest.param(lambda: tiny_hunyuan_video(3, depth=2), id="hunyuan_video")
    yield pytest.param(lambda: tiny_cogvideox(3, "1.0-5b", depth=2), id="cogvideox",
                       marks=pytest.mark.skipif(not HAS_COGVIDEOX, reason="CogVideoX needs ComfyUI 0.33"))


@pytest.mark.parametrize("build", drawn_video_models())
def test_one_window_over_the_whole_clip_gives_the_unwindowed_maps(ca, build):
    model = build()
    clip = torch.randn(1, 16, FRAMES, 8, 12, generator=torch.Generator().manual_seed(2))
    calls = model_calls(model)
    whole = clip_maps(ca, model, clip, windows="one").maps
    assert calls == [(FRAMES, True)]  # sampled as one window
    torch.testing.assert_close(whole, clip_maps(ca, model, clip).maps, rtol=1e-6, atol=1e-7)


def video_models():
    yield pytest.param(lambda: tiny_hunyuan_video(3, depth=2), tiny_clip, 16, id="hunyuan_video")
    yield pytest.param(lambda: tiny_cogvideox(3, "1.0-5b", depth=2),
                       cogvideox_clip, 16, id="cogvideox",
                       marks=pytest.mark.skipif(not HAS_COGVIDEOX, reason="CogVideoX needs ComfyUI 0.33"))


@pytest.mark.parametrize(("build", "clip_of", "channels"), video_models())
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_the_latent_is_windowed_samplings(ca, build, clip_of, channels, cfg):
    """The Concept Attention Sampler on a windowed model gives the latent the same windowed sampling gives without
    it, and maps for every frame of the clip."""
    model, clip = windowed(build()), clip_of()
    calls = model_calls(model)
    inputs = sampler_inputs(clip, 1, cfg, size=(FRAMES, 8, 12), channels=channels)
    reference = ksampler(model, inputs)
    assert set(calls) == {(3, True)}  # windows, never the whole clip
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape[0] == FRAMES and maps.frames == FRAMES and torch.isfinite(maps.maps).all()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(FRAMES, *maps.maps.shape[2:]), atol=1e-5)


def test_windows_over_an_images_batch_are_refused_by_name(ca):
    """Windows over dim 0 slice an image model's batch, which the maps cannot follow: the error names the node's
    dim setting."""
    settings = {put.id: put.default for put in ContextWindowsManualNode.define_schema().inputs if put.id != "model"}
    settings.update(context_length=1, context_overlap=0, dim=0,
                    context_schedule=comfy.context_windows.ContextSchedules.STATIC_STANDARD)
    model = ContextWindowsManualNode.execute(model=tiny_flux(0), **settings).args[0]
    guider = comfy.samplers.CFGGuider(model)
    windows = ca.nodes.stream.context_windows.ContextWindows.of_run(guider, torch.zeros(3, 16, 8, 10))
    assert windows.dim == 0 and windows.frames == 3
    takes_total = "total_frames" in inspect.signature(comfy.context_windows.IndexListContextWindow).parameters
    window = comfy.context_windows.IndexListContextWindow([1], dim=0, **({"total_frames": 3} if takes_total else {}))
    with pytest.raises(ValueError, match="set the Context Windows node's dim to 2"):
        windows.token_window(window, (4, 5), torch.zeros(1, 16, 8, 10))


@pytest.mark.skipif(not HAS_COGVIDEOX, reason="CogVideoX needs ComfyUI 0.33")
def test_windows_on_tokens_of_two_latent_frames_are_refused_by_name(ca):
    """CogVideoX 1.5's tokens each span two latent frames: a window's token frames are not the clip's, so the
    maps' run is refused, naming what to do, rather than placing maps on the wrong frames."""
    clip = cogvideox_clip()
    model = windowed(tiny_cogvideox(3, "1.5", depth=2))
    inputs = sampler_inputs(clip, 1, 1.0, size=(FRAMES, 8, 12))
    with pytest.raises(ValueError, match="Bypass the Context Windows node"):
        concept_sampler(ca, model, clip, **inputs)


def test_segment_image_maps_every_frame_of_a_windowed_clip(ca):
    """Segment Image on a windowed model: one pass per window (none stops early, the next window needs this one's
    output), maps for every latent frame of the clip, each frame's from the windows over it."""
    model = windowed(tiny_hunyuan_video(3, depth=2))
    calls = model_calls(model)
    frames = torch.rand(4 * FRAMES - 3, 32, 48, 3, generator=torch.Generator().manual_seed(5))  # 7 latent frames
    (maps,) = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=tiny_clip(), vae=random_wan21_vae(), image=frames, concepts="dog, grass", layers="auto",
        space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=1, seed=0,
        caption="a dog on grass").args
    assert calls == [(3, True)] * 3
    assert maps.frames == FRAMES and maps.maps.shape == (FRAMES, 2, 2, 3) and maps.output_frames == len(frames)
    assert torch.isfinite(maps.maps).all()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(FRAMES, 2, 3), atol=1e-5)
