"""CogVideoX's own (ComfyUI 0.33 on): image-to-video and inpainting channels (the video untouched, and 1.5
image-to-video's ofs embedding in the equations), the concepts' modulation read from the blocks' own call, the
stream through the blocks, the token frames of 1.0 and 1.5 and the video frames each one shows, stopping after
the last chosen block, and no block's attention inputs held (an attention override chained: test_patch_hygiene.py).
Hosts without CogVideoX load the extension without the family. (Its contract, in 1.0 2B, 1.0 5B and 1.5 variants:
test_family_contract.py.)"""

import contextlib
import weakref

import comfy.sample
import comfy.samplers
import pytest
import torch
from helpers.equations import assert_maps_match
from helpers.equations.cogvideox import cogvideox_reference_scores, sanity
from helpers.models import tiny_cogvideox, tiny_cogvideox_clip
from helpers.sampling import concept_sampler, forward_arguments, ksampler, sampler_inputs
from helpers.variants import HAS_COGVIDEOX

requires_cogvideox = pytest.mark.skipif(
    not HAS_COGVIDEOX, reason="CogVideoX tests skipped: this ComfyUI has no CogVideoX (comfy.ldm.cogvideo, 0.33 on)")
LATENT = (3, 8, 12)  # latent frames (odd: 1.5 pads its frame pairs), rows, columns (non-square)


def test_the_family_is_listed_where_the_host_has_cogvideox(ca):
    """The extension loads on every host; the family is there exactly where ComfyUI has CogVideoX."""
    assert ca.nodes.families.cogvideox.CogVideoXFamily.available == HAS_COGVIDEOX
    listed = [type(family).__name__ for family in ca.nodes.families.FAMILIES]
    assert ("CogVideoXFamily" in listed) == HAS_COGVIDEOX


def latent_inputs(clip, batch: int, cfg: float, size=LATENT, steps: int = 3) -> dict:
    return {**sampler_inputs(clip, batch, cfg, size=size), "steps": steps}


def with_image(inputs: dict, frames: int = 1) -> dict:
    """Both prompts carry an image (or a masked video's) latent, as the image-to-video nodes add it: it is
    concatenated to the noise along the channels."""
    image = torch.randn(1, 16, frames, *inputs["latent_image"]["samples"].shape[-2:],
                        generator=torch.Generator().manual_seed(4))
    return {**inputs, **{key: [[c, {**extra, "concat_latent_image": image}] for c, extra in inputs[key]]
                         for key in ("positive", "negative")}}


@requires_cogvideox
@pytest.mark.parametrize("task", ["i2v", "inpaint"])
@pytest.mark.parametrize("version", ["1.0-5b", "1.5"])
def test_image_to_video_and_inpainting_leave_the_video_unchanged(ca, version, task):
    """The image (or mask and masked video) channels change the video, and the stream leaves it as plain
    sampling makes it; the maps cover the generated frames."""
    model, clip = tiny_cogvideox(3, version, task), tiny_cogvideox_clip()
    inputs = with_image(latent_inputs(clip, 2, 3.5))
    reference = ksampler(model, inputs)
    assert not torch.equal(reference, ksampler(model, latent_inputs(clip, 2, 3.5)))
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    frames = 2 if version == "1.5" else 3
    assert maps.maps.shape == (2 * frames, 3, 4, 6) and torch.isfinite(maps.maps).all()


@requires_cogvideox
def test_image_to_video_scores_match_the_equations(ca):
    """CogVideoX 1.5 image-to-video: the image's channels concatenated to the noise, and the ofs embedding in the
    modulation of every stream, the concepts' included."""
    model, clip = tiny_cogvideox(5, "1.5", "i2v"), tiny_cogvideox_clip()
    inputs = with_image(latent_inputs(clip, 1, 1.0, steps=1))
    call = forward_arguments(model, inputs)
    assert call.get("ofs") is not None  # 1.5 image-to-video: the ofs embedding
    family = ca.nodes.families.cogvideox.CogVideoXFamily()
    names = ["dog", "grass", "sky"]
    concept_context, positions = ca.nodes.stream.encoding.encode_concepts(clip, names, "first", family)
    dm = model.get_model_object("diffusion_model")
    with torch.no_grad():
        expected, grid = cogvideox_reference_scores(dm, call["x"], call["timestep"], call["context"],
                                                    concept_context, call["ofs"])
        sanity(dm, call, clip, names, concept_context, positions, expected)  # the ofs embedding matters
    assert grid == family.token_grid(dm, call["x"])
    assert_maps_match(ca, model, clip, inputs, expected, grid)


@requires_cogvideox
def test_text_modulations_read_the_text_half_and_run_a_patched_layer_whole(ca):
    """The concepts' modulation is the text's half of each CogVideoXLayerNormZero; on plain weights only that
    half is computed, and a layer that changes its weight as it runs (a LoRA applied on the fly) runs whole,
    so the change reaches the concepts."""
    norm = tiny_cogvideox(5).get_model_object("diffusion_model").blocks[1].norm1
    temb = torch.randn(2, norm.linear.in_features, generator=torch.Generator().manual_seed(0))
    text_modulations = ca.nodes.families.cogvideox.text_modulations

    def layers_own():
        return [chunk[:, None] for chunk in norm.linear(norm.silu(temb)).chunk(6, dim=1)[3:]]

    def fields(modulation):
        return [modulation.shift, modulation.scale, modulation.gate]

    with torch.no_grad():
        plain = text_modulations(norm, temb)
        for got, own in zip(fields(plain), layers_own(), strict=True):
            assert got.shape == (2, 1, norm.linear.out_features // 6)
            torch.testing.assert_close(got, own, rtol=1e-6, atol=1e-6)
        norm.linear.weight_function.append(lambda weight: 2 * weight)
        try:
            patched = text_modulations(norm, temb)
            for got, own in zip(fields(patched), layers_own(), strict=True):
                torch.testing.assert_close(got, own, rtol=1e-6, atol=1e-6)
            assert not torch.allclose(patched.shift, plain.shift, atol=1e-3)
        finally:
            norm.linear.weight_function.clear()


@requires_cogvideox
def test_concepts_read_their_modulation_from_the_blocks_own_call(ca, monkeypatch):
    """No pooled vector enters CogVideoX's temb, so the concepts' modulation is the text tokens' own: the stream
    reads it from each modulation layer's output in the model call, never running those layers again, and
    gets the maps that computing it gives (the MLP's, read a block later, included)."""
    model, clip = tiny_cogvideox(3, "1.0-5b"), tiny_cogvideox_clip()
    inputs = latent_inputs(clip, 2, 3.5)
    cogvideox, computed = ca.nodes.families.cogvideox, []
    own = cogvideox.text_modulations
    monkeypatch.setattr(cogvideox, "text_modulations", lambda norm, temb: computed.append(norm) or own(norm, temb))
    _, read = concept_sampler(ca, model, clip, **inputs)
    assert computed == []
    monkeypatch.setattr(cogvideox.CogVideoXFamily, "watch_call", lambda *args: contextlib.nullcontext())
    _, recomputed = concept_sampler(ca, model, clip, **inputs)
    blocks = model.get_model_object("diffusion_model").blocks
    # per model call: norm1 of every block, norm2 of every block but the last (the concepts stop there)
    assert set(computed) == {block.norm1 for block in blocks} | {block.norm2 for block in blocks[:-1]}
    torch.testing.assert_close(read.maps, recomputed.maps, rtol=1e-4, atol=2e-5)  # fp32 rounding of the two products


@requires_cogvideox
def test_a_later_layer_depends_on_the_stream_through_earlier_blocks(ca):
    """The concepts take each block's residual and feed-forward update: a stream run on from block 0 gives
    block 2 other scores than concepts fresh from the embedding would."""
    model, clip = tiny_cogvideox(5), tiny_cogvideox_clip()
    inputs = latent_inputs(clip, 1, 1.0, steps=1)
    call = forward_arguments(model, inputs)
    x, t, context = call["x"], call["timestep"], call["context"]
    dm = model.get_model_object("diffusion_model")
    family = ca.nodes.families.cogvideox.CogVideoXFamily()
    concept_context, _ = ca.nodes.stream.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    with torch.no_grad():
        expected, grid = cogvideox_reference_scores(dm, x, t, context, concept_context)
    maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="2", space="output", softmax=False,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args[1]
    assert torch.allclose(maps.maps, ca.ca_core.maps.token_grid_maps(expected[2][0], grid), rtol=1e-4, atol=1e-4)
    assert not torch.allclose(expected[2][0], expected[0][0], rtol=1e-2, atol=1e-2)


@requires_cogvideox
def test_seventeen_video_frames_come_from_five_latent_frames(ca):
    """The VAE decodes 17 frames from 5 latent frames: the first alone, then 4 per latent frame. On 1.0 each
    latent frame is a token frame; 1.5 pairs them, the fifth padded to a pair."""
    family = ca.nodes.families.cogvideox.CogVideoXFamily()
    clip = tiny_cogvideox_clip()
    expected = {"1.0-5b": (0,) + sum(((frame,) * 4 for frame in range(1, 5)), ()),
                "1.5": (0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2)}
    for version, frames in (("1.0-5b", 5), ("1.5", 3)):
        model = tiny_cogvideox(3, version)
        dm = model.get_model_object("diffusion_model")
        assert family.token_grid(dm, torch.zeros(1, 16, 5, 8, 12)) == (frames, 4, 6)
        assert family.video_frame_tokens(dm, 5) == expected[version]
        _, maps = concept_sampler(ca, model, clip, **latent_inputs(clip, 1, 1.0, size=(5, 8, 12), steps=1))
        assert maps.frames == frames and maps.video_frames == expected[version] and maps.output_frames == 17
        assert maps.maps.shape == (frames, 3, 4, 6) and maps.token_pixels == 16
        assert maps.pixel_maps().shape == (17, 3, 64, 96)


@requires_cogvideox
def test_segmentation_stops_after_the_last_chosen_block(ca):
    """stop_after_last_layer: the pass ends in the last chosen block's attention call; the blocks after it
    never run, and the maps are that block's."""
    model, clip = tiny_cogvideox(5), tiny_cogvideox_clip()
    inputs = latent_inputs(clip, 1, 1.0, steps=1)
    _, full = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass", layers="1", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args
    _, patch, _ = ca.nodes.common.prepare_patch(model, clip, "dog, grass", "1", True, "first", (0, 1),
                                                stop_after_last_layer=True)
    patched = patch.install(model.clone())
    ran = []
    dm = model.get_model_object("diffusion_model")
    hooks = [block.register_forward_pre_hook(lambda module, args, i=i: ran.append(i)) for i, block in
             enumerate(dm.blocks)]
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(inputs["positive"], inputs["negative"])
    guider.set_cfg(1.0)
    latent = inputs["latent_image"]["samples"]
    sigmas = patched.get_model_object("model_sampling").sigma_max[None]
    try:
        with patch.recording() as recording:
            noise = comfy.sample.prepare_noise(latent, inputs["seed"])
            guider.sample(noise, latent, comfy.samplers.KSAMPLER(ca.nodes.segment_node.one_partial_pass),
                          torch.cat([sigmas, sigmas.new_zeros(1)]), disable_pbar=True, seed=inputs["seed"])
    finally:
        for hook in hooks:
            hook.remove()
    assert ran == [0, 1]
    maps = patch.maps_of(recording, (64, 96))
    assert torch.allclose(maps.maps, full.maps, atol=1e-5)


@requires_cogvideox
def test_concepts_align_with_cogvideox_t5_tokens(ca):
    """CogVideoX's T5 pads every prompt to 226 tokens; a concept's own tokens are its word pieces."""
    family = ca.nodes.families.cogvideox.CogVideoXFamily()
    clip = tiny_cogvideox_clip()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    assert states.shape[1] == 226
    assert family.concept_token_indices(clip, "traffic light", tokens, 226) == [0, 1]  # padding is not the concept
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'dog'"):
        family.concept_token_indices(clip, "dog", clip.tokenize("dog", return_word_ids=True), 99)


@requires_cogvideox
def test_a_block_waiting_for_its_update_holds_none_of_its_attention_inputs(ca):
    """A block's concept update waits for the next block's attention call; the block's q/k/v (every token, full
    width) are freed meanwhile, as in plain sampling, so two blocks' never live at once."""
    model, clip = tiny_cogvideox(3), tiny_cogvideox_clip()
    inputs = latent_inputs(clip, 1, 3.5)
    earlier, alive = [], []

    def watching(func, *args, **kwargs):  # only weak references: holding the tensors would keep them alive
        alive.extend(ref() is not None for ref in earlier)
        earlier[:] = [weakref.ref(tensor) for tensor in args[:3]]
        return func(*args, **kwargs)

    other = model.clone()
    other.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = watching
    concept_sampler(ca, other, clip, **inputs)
    assert alive and not any(alive)
