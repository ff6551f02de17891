"""HunyuanVideo's own: image-to-video's first-frame replacement (the equations, and the clip untouched), a
reference latent's tokens left out of the maps, a planted moving object followed frame by frame, one heatmap and
one mask per decoded video frame, Segment Image's frame counts, the VAE's temporal stride, the Llama template's
alignment, and what a run keeps in memory. (Its contract, in HunyuanVideo 1.0 and 1.5 and HunyuanImage 2.1
variants: test_family_contract.py.)"""

import pytest
import torch
from helpers.equations import assert_maps_match
from helpers.equations.hunyuan_video import expected_scores
from helpers.models import random_wan21_vae, tiny_clip, tiny_hunyuan_video
from helpers.planted import hunyuan_video_clip_maps
from helpers.sampling import concept_sampler, forward_arguments, ksampler, sampler_inputs

VIDEO = (5, 8, 12)  # latent frames (17 video frames), rows, columns: a non-square clip


def test_image_to_video_replacement_scores_match_the_equations(ca):
    """I2V 'v2 (replace)': the first frame's image tokens are modulated at guiding_frame_index; the text, and so
    the concepts, keep the video's timestep."""
    model, clip = tiny_hunyuan_video(5), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0, size=(3, 8, 12)), "steps": 1}
    inputs["positive"] = [[c, {**extra, "guiding_frame_index": 0}] for c, extra in inputs["positive"]]
    call = forward_arguments(model, inputs)
    assert call.get("guiding_frame_index") is not None
    family = ca.nodes.families.hunyuan_video.HunyuanVideoFamily()
    concepts, _ = ca.nodes.stream.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    dm = model.get_model_object("diffusion_model")
    with torch.no_grad():
        expected = expected_scores(dm, call, concepts, [])
        # without the replacement the first frame's scores differ: the test can tell
        plain = expected_scores(dm, {**call, "guiding_frame_index": None}, concepts, [])
    assert not torch.allclose(expected[-1][0][..., :24], plain[-1][0][..., :24], rtol=1e-4, atol=1e-4)
    assert_maps_match(ca, model, clip, inputs, expected, (3, 4, 6))


def test_image_to_video_token_replacement_leaves_the_clip_unchanged(ca):
    """I2V 'v2 (replace)': the first frame's tokens take a second modulation row (guiding_frame_index); the text
    and the concepts keep the video's, and the clip is plain sampling's. (At cfg 1: before ComfyUI 0.33 the
    host's own per-token modulation cannot broadcast over a batch of two.)"""
    model, clip = tiny_hunyuan_video(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 1.0, size=VIDEO)
    for key in ("positive", "negative"):
        inputs[key] = [[c, {**extra, "guiding_frame_index": 0}] for c, extra in inputs[key]]
    reference = ksampler(model, inputs)
    assert not torch.equal(reference, ksampler(model, sampler_inputs(clip, 1, 1.0, size=VIDEO)))
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference) and maps.frames == 5


def test_a_reference_latents_tokens_are_left_out_of_the_maps(ca):
    """I2V 'custom': the start image's latent enters as extra image tokens before the generated clip's. The
    concepts attend over all of them; the scores cover the generated clip's tokens, which come first."""
    family = ca.nodes.families.hunyuan_video.HunyuanVideoFamily()
    dm = tiny_hunyuan_video(3).get_model_object("diffusion_model")
    text, reference, generated = 3, 2, 5
    order = torch.arange(text + reference + generated).float()  # each token's position in the joint attention
    q = k = v = order[None, None, :, None].expand(1, 4, -1, 16)
    out = order[None, :, None].expand(1, -1, 64)
    image = family.image_attention(dm, 0, q, k, v, out, text, generated)
    if getattr(dm.double_blocks[0], "flipped_img_txt", False):  # before ComfyUI 0.33: image tokens, then text
        expected = torch.cat([torch.arange(reference, reference + generated), torch.arange(reference)]).float()
    else:
        expected = torch.cat([torch.arange(text + reference, text + reference + generated),
                              torch.arange(text, text + reference)]).float()
    assert torch.equal(image.outputs[0, :, 0], expected) and torch.equal(image.keys[0, 0, :, 0], expected)
    without = family.image_attention(dm, 0, q[:, :, reference:], k[:, :, reference:], v[:, :, reference:],
                                     out[:, reference:], text, generated)
    assert without.outputs.shape[1] == generated


def test_masks_follow_a_moving_object_frame_by_frame(ca):
    """The object ('left') grows one token column per latent frame; each decoded frame's mask is the object of
    the latent frame it comes from (the first frame alone, then four per latent frame)."""
    boundaries = [1, 2, 3, 4]
    maps = hunyuan_video_clip_maps(ca, boundaries)
    assert maps.video_frames == (0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
    mask = ca.nodes.map_nodes.ConceptMask.execute(
        concept_maps=maps, concepts="left", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
        invert=False, space="as_made").args[0]
    assert mask.shape == (13, 64, 96)
    for frame, token_frame in enumerate(maps.video_frames):
        expected = torch.zeros(64, 96)
        expected[:, : boundaries[token_frame] * 16] = 1.0
        assert torch.equal(mask[frame], expected), frame


def test_image_edges_refine_each_frame_along_its_own_edge(ca):
    """The decoded frames show the object's edge a few pixels off its token column, a different offset in each
    frame, even among the frames of one latent frame: each frame's refined mask ends at its own frame's edge."""
    boundaries = [1, 2, 3, 4]
    maps = hunyuan_video_clip_maps(ca, boundaries)
    edges = [boundaries[token_frame] * 16 - 6 + 3 * (frame % 4) for frame, token_frame in enumerate(maps.video_frames)]
    frames = torch.zeros(len(edges), 64, 96, 3)
    for frame, edge in enumerate(edges):
        frames[frame, :, :edge] = torch.tensor([0.86, 0.08, 0.08])
        frames[frame, :, edge:] = torch.tensor([0.10, 0.25, 0.90])

    def mask(refine):
        return ca.nodes.map_nodes.ConceptMask.execute(
            concept_maps=maps, concepts="left", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
            invert=False, space="as_made", refine=refine, image=frames).args[0]

    plain, sharp = mask("none"), mask("image edges")
    for frame, edge in enumerate(edges):
        assert abs(int(sharp[frame, 32].sum()) - edge) <= 1, frame  # the row's mask ends at this frame's edge
        assert int(plain[frame, 32].sum()) == boundaries[maps.video_frames[frame]] * 16  # the token column's
    assert len({int(sharp[frame, 32].sum()) for frame in range(5, 9)}) == 4  # one latent frame, four edges


def test_saliency_map_gives_a_heatmap_clip_per_concept(ca):
    maps = hunyuan_video_clip_maps(ca, [1, 2, 3])
    frames = torch.rand(9, 64, 96, 3)
    heatmaps, masks = ca.nodes.map_nodes.SaliencyMap.execute(
        concept_maps=maps, normalisation="joint", overlay_opacity=0.5, space="as_made", image=frames,
        label=True).args
    assert heatmaps.shape == (2 * 9, 64, 96, 3) and masks.shape == (2 * 9, 64, 96)
    # 'left' clip first, then 'right': left's map of video frame 5 (latent frame 2) covers 3 token columns
    assert masks[5, 0, 3 * 16 - 1] > masks[5, 0, 3 * 16 + 1] and masks[9 + 5, 0, 3 * 16 + 1] > 0.5
    with pytest.raises(ValueError, match="9 video frames"):
        ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.5,
                                               space="as_made", image=frames[:5])


def test_temporal_smoothing_steadies_a_flickering_mask(ca):
    boundaries = [2, 2, 5, 2, 2, 2, 2]  # latent frame 2 (video frames 5-8) flickers
    maps = hunyuan_video_clip_maps(ca, boundaries)

    def mask(smoothing):
        return ca.nodes.map_nodes.ConceptMask.execute(
            concept_maps=maps, concepts="left", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
            invert=False, space="as_made", temporal_smoothing=smoothing).args[0]

    plain, steady = mask(0.0), mask(4.0)
    assert plain[6, 0, 3 * 16 + 1] == 1.0 and steady[6, 0, 3 * 16 + 1] == 0.0  # the flicker is gone
    assert torch.equal(steady[24], plain[24])  # beyond the smoothing's reach (3 sigma), nothing changes


def test_segment_image_refuses_a_frame_count_the_vae_cannot_take(ca):
    """A causal video VAE (Wan 2.1's) takes the first frame alone, then 4 per latent frame: 16 frames are refused,
    naming the fix. (17 frames give 5 latent frames and maps for all 17: test_family_contract.py.)"""
    frames = torch.rand(16, 32, 48, 3, generator=torch.Generator().manual_seed(5))
    with pytest.raises(ValueError, match="16 frames.*Trim the clip to 13 frames.*extend it to 17"):
        ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
            model=tiny_hunyuan_video(3), clip=tiny_clip(), vae=random_wan21_vae(), image=frames, concepts="dog, grass",
            layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=1,
            seed=0, caption="")


def test_frame_counts_follow_the_vaes_temporal_stride(ca):
    family = ca.nodes.families.hunyuan_video.HunyuanVideoFamily()
    dm = tiny_hunyuan_video(3).get_model_object("diffusion_model")
    assert family.video_frame_tokens(dm, 1) == (0,)
    assert family.video_frame_tokens(dm, 5) == (0,) + sum(((f,) * 4 for f in range(1, 5)), ())
    assert len(family.video_frame_tokens(dm, 9)) == 33
    assert family.token_grid(dm, torch.zeros(1, 16, 9, 7, 11)) == (9, 4, 6)  # odd sides round as img_ids does


def test_concepts_align_inside_hunyuan_videos_llama_template(ca):
    """ComfyUI's HunyuanVideo encoder cuts the prompt out of its Llama 3 template: after '<|start_header_id|>user
    <|end_header_id|>\\n\\n', up to and including '<|eot_id|>'. (Token ids written out: the Llama tokenizer's
    vocabulary does not ship with the host.)"""
    family = ca.nodes.families.hunyuan_video.HunyuanVideoFamily()
    system = [128000, 128006, 9125, 128007, 271, 5, 6, 7, 128009]
    ids = system + [128006, 882, 128007, 271, 9509, 3177, 128009]  # ... 'traffic', ' light', <|eot_id|>
    tokens = {"l": [[(49406, 1.0, 0)]], "llama": [[(token, 1.0, 0) for token in ids]]}
    assert family.concept_token_indices(None, "traffic light", tokens, 3) == [0, 1]
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'traffic light'.*hunyuan_video"):
        family.concept_token_indices(None, "traffic light", tokens, 5)


@pytest.mark.parametrize("frames", [3, 5])
def test_memory_is_frames_times_tokens_times_concepts_whatever_the_steps_and_layers(ca, frames):
    """What a finished run keeps: its latent and one running sum per map space of [K, frames * tokens] floats,
    however many steps ran and layers were averaged."""
    import nodes

    model, clip = tiny_hunyuan_video(3), tiny_clip()
    family = ca.nodes.families.hunyuan_video.HunyuanVideoFamily()
    concepts, _ = ca.nodes.stream.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    held = set()
    for steps, layers in ((1, (0,)), (4, (0, 1, 2))):
        patch = ca.nodes.stream.install.ConceptAttentionPatch(family, concepts, layers, (0, 10000))
        inputs = sampler_inputs(clip, 1, 3.5, size=(frames, 8, 12))
        nodes.common_ksampler(patch.install(model.clone()), inputs["seed"], steps, 3.5, "euler", "simple",
                              inputs["positive"], inputs["negative"], inputs["latent_image"])
        held.add(patch.recorder.held_bytes())
    latent_bytes = 16 * frames * 8 * 12 * 4
    assert held == {latent_bytes + 2 * 3 * frames * 4 * 6 * 4}


def test_a_mask_for_an_unknown_concept_names_the_concepts_there_are(ca):
    maps = hunyuan_video_clip_maps(ca, [1, 2])
    with pytest.raises(ValueError, match="'cat'.*left.*right"):
        ca.nodes.map_nodes.ConceptMask.execute(
            concept_maps=maps, concepts="cat", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
            invert=False, space="as_made")


def test_any_sampler_gives_the_same_video_maps(ca):
    """Concept Attention Model before KSampler, then Concept Maps on its LATENT: the sampler node's maps, frames
    and decoded-frame mapping."""
    import nodes

    model, clip = tiny_hunyuan_video(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5, size=VIDEO)
    patched, recorder = ca.nodes.model_node.ConceptAttentionModel.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000).args
    (latent,) = nodes.common_ksampler(patched, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                      inputs["scheduler"], inputs["positive"], inputs["negative"],
                                      inputs["latent_image"])
    collected = ca.nodes.model_node.ConceptMapsCollector.execute(recorder=recorder, latent=latent).args[0]
    _, from_sampler = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(collected.maps, from_sampler.maps)
    assert collected.video_frames == from_sampler.video_frames and collected.output_frames == 17
    assert collected.image_size == (64, 96)
