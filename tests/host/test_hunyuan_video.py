"""HunyuanVideo: the clip is untouched, the maps are the paper's equations on its Flux-style double blocks with
the prompt's token refiner, frame by frame, a planted moving object is followed frame by frame, and the
nodes give one heatmap and one mask per decoded video frame."""

import inspect
import math

import comfy.supported_models
import pytest
import torch
from ca_test_nodes import (
    first_forward_call,
    planted_hunyuan_video,
    random_wan21_vae,
    tiny_clip,
    tiny_hunyuan_video,
)
from test_generation_unchanged import concept_sampler, sampler_inputs
from test_math import assert_maps_match, mlp_embed, modulation, reference_joint_block
from test_patch_hygiene import ksampler
from test_planted import concept_context

VIDEO = (5, 8, 12)  # latent frames (17 video frames), rows, columns: a non-square clip


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_latent_is_bit_identical_to_plain_sampling(ca, batch, cfg):
    model, clip = tiny_hunyuan_video(3), tiny_clip()
    inputs = sampler_inputs(clip, batch, cfg, size=VIDEO)
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (batch * 5, 3, 4, 6) and maps.frames == 5 and maps.steps == (0, 1, 2)
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch * 5, 4, 6), atol=1e-5)


def embed_time(t, time_factor):
    half = 128
    freqs = torch.exp(-math.log(10000) * torch.arange(half, dtype=torch.float32) / half)
    args = time_factor * t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def video_ids(frames, rows, cols):
    f, r, c = torch.meshgrid(torch.arange(frames), torch.arange(rows), torch.arange(cols), indexing="ij")
    return torch.stack([f, r, c], dim=-1).reshape(-1, 3).float()


def hunyuan_reference_scores(dm, x, t, context, y, guidance, concept_context, guiding_frame_index=None):
    """Per-layer (output, cross-attention) scores [B, K, F*h*w] from the paper's equations on HunyuanVideo: the
    prompt and each concept (a one-token prompt of its own) through the token refiner at t, the concepts'
    modulation from the timestep and guidance with a zero pooled vector, zero RoPE ids for text and
    concepts, (frame, row, column) ids for the image tokens, frame by frame. guiding_frame_index: I2V's
    first-frame replacement, whose first frame's image tokens are modulated at that index; the text, and
    so the concepts, keep the video's timestep."""
    b = x.shape[0]
    img = dm.img_in(x)  # the patch embedding: [B, F*h*w, C], frame by frame, row-major
    txt = dm.txt_in(context, t, None)
    concepts = torch.cat([dm.txt_in(concept_context[:, k:k + 1].expand(b, -1, -1), t, None)
                          for k in range(concept_context.shape[1])], dim=1)
    if getattr(dm, "cond_type_embedding", None) is not None:  # 1.5: text tokens are of type 0
        txt, concepts = (tokens + dm.cond_type_embedding.weight[0] for tokens in (txt, concepts))
    base = mlp_embed(dm.time_in, embed_time(t, 1.0))
    if dm.params.guidance_embed:
        base = base + mlp_embed(dm.guidance_in, embed_time(guidance, 1000.0))
    vec = concept_vec = base
    if dm.vector_in is not None:
        vec, concept_vec = base + mlp_embed(dm.vector_in, y), base + mlp_embed(dm.vector_in, torch.zeros_like(y))
    grid = [size // patch for size, patch in zip(x.shape[-3:], dm.patch_size, strict=True)]
    ids = torch.cat([torch.zeros(txt.shape[1], 3), video_ids(*grid)])[None].expand(b, -1, -1)
    first_frame = grid[1] * grid[2]

    def image_modulation(block):
        if guiding_frame_index is None:
            return modulation(block.img_mod, vec)
        time_at = lambda steps: mlp_embed(dm.time_in, embed_time(steps, 1.0))  # noqa: E731
        replaced = vec - time_at(t) + time_at(guiding_frame_index)  # the timestep replaced by the index
        return [torch.cat([a.expand(-1, first_frame, -1), v.expand(-1, img.shape[1] - first_frame, -1)], dim=1)
                for a, v in zip(modulation(block.img_mod, replaced), modulation(block.img_mod, vec), strict=True)]

    scores, streams = [], (img, txt, concepts)
    for block in dm.double_blocks:
        mods = (image_modulation(block), modulation(block.txt_mod, vec), modulation(block.txt_mod, concept_vec))
        layer, streams = reference_joint_block(block, streams, mods, ids, dm.params.axes_dim, dm.params.theta)
        scores.append(layer)
    return scores


def hunyuan_video_15(seed: int):
    """A tiny HunyuanVideo 1.5 (ComfyUI 0.8 on): no pooled vector or guidance embedding, text-type embeddings,
    32 latent channels plus the image-to-video condition's 32 and its mask."""
    if not hasattr(comfy.supported_models, "HunyuanVideo15"):
        pytest.skip("HunyuanVideo 1.5 exists from ComfyUI 0.8 on")
    return tiny_hunyuan_video(seed, pooled=False, guidance_embed=False, use_cond_type_embedding=True, in_channels=65,
                              out_channels=32, config_class=comfy.supported_models.HunyuanVideo15)


@pytest.mark.parametrize("version", ["1.0", "1.5", "1.0 image to video (replace)"])
def test_scores_match_the_equations_frame_by_frame(ca, version):
    model, clip = tiny_hunyuan_video(5) if version.startswith("1.0") else hunyuan_video_15(5), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0, size=(3, 8, 12)), "steps": 1}
    if version.endswith("(replace)"):
        inputs["positive"] = [[c, {**extra, "guiding_frame_index": 0}] for c, extra in inputs["positive"]]
    args, kwargs = first_forward_call(model, inputs)
    dm = model.get_model_object("diffusion_model")
    call = inspect.signature(dm.forward).bind(*args, **kwargs).arguments
    x, t, context, y, guidance = (call[name] for name in ("x", "timestep", "context", "y", "guidance"))
    guiding = call.get("guiding_frame_index")
    assert (guiding is not None) == version.endswith("(replace)")
    family = ca.nodes.hunyuan_video.HunyuanVideoFamily()
    concepts, _ = ca.nodes.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    with torch.no_grad():
        expected = hunyuan_reference_scores(dm, x, t, context, y, guidance, concepts, guiding)
        # a refiner run over the concepts as one prompt mixes them: the test can tell
        mixed = dm.txt_in(concepts, t, None)
        assert not torch.allclose(mixed, torch.cat([dm.txt_in(concepts[:, k:k + 1], t, None) for k in range(3)], 1))
    assert_maps_match(ca, model, clip, inputs, expected, (3, 4, 6))


def test_without_a_pooled_vector_or_guidance(ca):
    """HunyuanVideo 1.5 and HunyuanImage 2.1 take no pooled vector; the clip stays untouched."""
    model, clip = tiny_hunyuan_video(3, pooled=False, guidance_embed=False), tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5, size=(2, 8, 8))
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], ksampler(model, inputs)) and maps.maps.shape == (2, 3, 4, 4)


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
    family = ca.nodes.hunyuan_video.HunyuanVideoFamily()
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


def planted_clip(boundaries: list[int], height: int = 8, width: int = 12) -> torch.Tensor:
    """A clip whose latent frame f shows 'left' on its first boundaries[f] token columns, 'right' after."""
    from test_planted import planted_latent

    return torch.stack([planted_latent(height, width, boundary)[0] for boundary in boundaries], dim=1)[None]


def test_masks_follow_a_moving_object_frame_by_frame(ca):
    """The object ('left') grows one token column per latent frame; each decoded frame's mask is the object of
    the latent frame it comes from (the first frame alone, then four per latent frame)."""
    boundaries = [1, 2, 3, 4]
    latent = planted_clip(boundaries)
    from test_planted import one_pass_maps

    maps = one_pass_maps(ca, planted_hunyuan_video(), concept_context(), torch.zeros(1, 16), latent, 8)
    assert maps.video_frames == (0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3)
    mask = ca.nodes.map_nodes.ConceptMask.execute(
        concept_maps=maps, concepts="left", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
        invert=False, space="as_made").args[0]
    assert mask.shape == (13, 64, 96)
    for frame, token_frame in enumerate(maps.video_frames):
        expected = torch.zeros(64, 96)
        expected[:, : boundaries[token_frame] * 16] = 1.0
        assert torch.equal(mask[frame], expected), frame


def test_saliency_map_gives_a_heatmap_clip_per_concept(ca):
    latent = planted_clip([1, 2, 3])
    from test_planted import one_pass_maps

    maps = one_pass_maps(ca, planted_hunyuan_video(), concept_context(), torch.zeros(1, 16), latent, 8)
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
    latent = planted_clip(boundaries)
    from test_planted import one_pass_maps

    maps = one_pass_maps(ca, planted_hunyuan_video(), concept_context(), torch.zeros(1, 16), latent, 8)

    def mask(smoothing):
        return ca.nodes.map_nodes.ConceptMask.execute(
            concept_maps=maps, concepts="left", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
            invert=False, space="as_made", temporal_smoothing=smoothing).args[0]

    plain, steady = mask(0.0), mask(4.0)
    assert plain[6, 0, 3 * 16 + 1] == 1.0 and steady[6, 0, 3 * 16 + 1] == 0.0  # the flicker is gone
    assert torch.equal(steady[24], plain[24])  # beyond the smoothing's reach (3 sigma), nothing changes


def test_segment_image_takes_a_clip(ca):
    """17 frames through a causal video VAE (Wan 2.1's: the first frame alone, then 4 per latent frame) give 5
    latent frames and maps for all 17 frames; a count the VAE cannot take is refused, naming the fix."""
    model, clip, vae = tiny_hunyuan_video(3), tiny_clip(), random_wan21_vae()
    frames = torch.rand(17, 32, 48, 3, generator=torch.Generator().manual_seed(5))
    maps = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=vae, image=frames, concepts="dog, grass", layers="auto", space="output",
        softmax=True, token_pooling="first", noise_level=0.5, noise_samples=1, seed=0, caption="").args[0]
    assert maps.frames == 5 and maps.output_frames == 17 and maps.pixel_maps().shape == (17, 2, 32, 48)
    with pytest.raises(ValueError, match="16 frames.*Trim the clip to 13 frames.*extend it to 17"):
        ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
            model=model, clip=clip, vae=vae, image=frames[:16], concepts="dog, grass", layers="auto",
            space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=1, seed=0, caption="")


def test_frame_counts_follow_the_vaes_temporal_stride(ca):
    family = ca.nodes.hunyuan_video.HunyuanVideoFamily()
    dm = tiny_hunyuan_video(3).get_model_object("diffusion_model")
    assert family.video_frame_tokens(dm, 1) == (0,)
    assert family.video_frame_tokens(dm, 5) == (0,) + sum(((f,) * 4 for f in range(1, 5)), ())
    assert len(family.video_frame_tokens(dm, 9)) == 33
    assert family.token_grid(dm, torch.zeros(1, 16, 9, 7, 11)) == (9, 4, 6)  # odd sides round as img_ids does


def test_concepts_align_inside_hunyuan_videos_llama_template(ca):
    """ComfyUI's HunyuanVideo encoder cuts the prompt out of its Llama 3 template: after '<|start_header_id|>user
    <|end_header_id|>\\n\\n', up to and including '<|eot_id|>'. (Token ids written out: the Llama tokenizer's
    vocabulary does not ship with the host.)"""
    family = ca.nodes.hunyuan_video.HunyuanVideoFamily()
    system = [128000, 128006, 9125, 128007, 271, 5, 6, 7, 128009]
    ids = system + [128006, 882, 128007, 271, 9509, 3177, 128009]  # ... 'traffic', ' light', <|eot_id|>
    tokens = {"l": [[(49406, 1.0, 0)]], "llama": [[(token, 1.0, 0) for token in ids]]}
    assert family.concept_token_indices(None, "traffic light", tokens, 3) == [0, 1]
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'traffic light'.*hunyuan_video"):
        family.concept_token_indices(None, "traffic light", tokens, 5)


def test_hunyuan_image_21_has_one_frame_of_2d_patches(ca):
    """HunyuanImage 2.1: the same class with 2-D patches and no pooled vector: one map per image."""
    if not hasattr(comfy.supported_models, "HunyuanImage21"):
        pytest.skip("HunyuanImage 2.1 exists from ComfyUI 0.8 on")
    model = tiny_hunyuan_video(3, pooled=False, guidance_embed=False, patch_size=[1, 1], axes_dim=[8, 8],
                               in_channels=64, out_channels=64, config_class=comfy.supported_models.HunyuanImage21)
    clip = tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5, size=(6, 10))
    inputs["latent_image"] = {"samples": torch.zeros(1, 64, 6, 10)}
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], ksampler(model, inputs))
    assert maps.maps.shape == (1, 3, 6, 10) and maps.frames == 1 and maps.video_frames == ()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(1, 6, 10), atol=1e-5)
    assert ca.nodes.hunyuan_video.HunyuanVideoFamily().token_pixels(model) == 32  # its VAE: 32 px per latent cell


@pytest.mark.parametrize("frames", [3, 5])
def test_memory_is_frames_times_tokens_times_concepts_whatever_the_steps_and_layers(ca, frames):
    """What a finished run keeps: its latent and one running sum per map space of [K, frames * tokens] floats,
    however many steps ran and layers were averaged."""
    import nodes

    model, clip = tiny_hunyuan_video(3), tiny_clip()
    family = ca.nodes.hunyuan_video.HunyuanVideoFamily()
    concepts, _ = ca.nodes.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    held = set()
    for steps, layers in ((1, (0,)), (4, (0, 1, 2))):
        patch = ca.nodes.patch.ConceptAttentionPatch(family, concepts, layers, (0, 10000))
        inputs = sampler_inputs(clip, 1, 3.5, size=(frames, 8, 12))
        nodes.common_ksampler(patch.install(model.clone()), inputs["seed"], steps, 3.5, "euler", "simple",
                              inputs["positive"], inputs["negative"], inputs["latent_image"])
        held.add(patch.recorder.held_bytes())
    latent_bytes = 16 * frames * 8 * 12 * 4
    assert held == {latent_bytes + 2 * 3 * frames * 4 * 6 * 4}


def test_a_mask_for_an_unknown_concept_names_the_concepts_there_are(ca):
    from test_planted import one_pass_maps

    maps = one_pass_maps(ca, planted_hunyuan_video(), concept_context(), torch.zeros(1, 16), planted_clip([1, 2]), 8)
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
