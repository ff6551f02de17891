"""Chroma and Chroma Radiance: the image is untouched, the maps are the paper's equations with the
approximator's modulations, every node runs, and concepts align with Chroma's real tokenizer."""

import comfy.ldm.chroma.model
import comfy.patcher_extension
import nodes
import pytest
import torch
from ca_test_nodes import random_vae, tiny_chroma, tiny_chroma_clip
from test_generation_unchanged import concept_sampler, sampler_inputs
from test_math import assert_maps_match, linear, mlp_embed, reference_joint_block, run_layers, timestep_embedding
from test_patch_hygiene import ksampler


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_latent_is_bit_identical_to_plain_sampling(ca, batch, cfg):
    model, clip = tiny_chroma(3, depth=3), tiny_chroma_clip()
    inputs = sampler_inputs(clip, batch, cfg, size=(8, 12))  # non-square
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (batch, 3, 4, 6)
    assert maps.steps == (0, 1, 2)
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch, 4, 6), atol=1e-5)


def approximator(layer, x):
    """Chroma's distilled_guidance_layer: in_proj, residual MLP embedders on RMS-normed input, out_proj."""
    x = linear(layer.in_proj, x)
    for embedder, norm in zip(layer.layers, layer.norms, strict=True):
        scale = norm.scale if hasattr(norm, "scale") else norm.weight
        eps = getattr(norm, "eps", None) or (torch.finfo(x.dtype).eps if hasattr(norm, "eps") else 1e-6)
        x = x + mlp_embed(embedder, x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * scale)
    return linear(layer.out_proj, x)


def modulation_table(dm, t, guidance):
    """[B, 344, C]: every row Chroma's forward makes from (timestep, guidance, row index)."""
    b = t.shape[0]
    rows = timestep_embedding(torch.arange(344), 32)
    conditioning = torch.cat([timestep_embedding(t, 16), timestep_embedding(guidance, 16)], dim=-1)
    x = torch.cat([conditioning[:, None].expand(b, 344, -1), rows[None].expand(b, -1, -1)], dim=-1)
    return approximator(dm.distilled_guidance_layer, x)


def chroma_reference_scores(dm, x, t, context, guidance, concept_context):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and Chroma's layout."""
    p = dm.params
    b, c, hh, ww = x.shape
    img = x.reshape(b, c, hh // 2, 2, ww // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, hh * ww // 4, c * 4)
    img = linear(dm.img_in, img)
    txt = linear(dm.txt_in, context)
    concepts = linear(dm.txt_in, concept_context.expand(b, -1, -1))
    table = modulation_table(dm, t, guidance)
    single, double = p.depth_single_blocks, p.depth
    rows, cols = torch.meshgrid(torch.arange(hh // 2), torch.arange(ww // 2), indexing="ij")
    img_ids = torch.stack([torch.zeros_like(rows), rows, cols], dim=-1).reshape(1, -1, 3).float().expand(b, -1, -1)
    ids = torch.cat([torch.zeros(b, txt.shape[1], 3), img_ids], dim=1)
    scores, streams = [], (img, txt, concepts)
    for i, block in enumerate(dm.double_blocks):
        img_rows = table[:, 3 * single + 6 * i: 3 * single + 6 * i + 6]
        txt_rows = table[:, 3 * single + 6 * double + 6 * i: 3 * single + 6 * double + 6 * i + 6]
        img_mod = [img_rows[:, j:j + 1] for j in range(6)]
        txt_mod = [txt_rows[:, j:j + 1] for j in range(6)]  # the concepts' too: no pooled vector in Chroma
        layer, streams = reference_joint_block(block, streams, (img_mod, txt_mod, txt_mod), ids, p.axes_dim, p.theta)
        scores.append(layer)
    return scores


def test_scores_match_the_equations_with_the_approximators_modulations(ca):
    model, clip = tiny_chroma(5, depth=3), tiny_chroma_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    x, t, context, guidance = recorded_chroma_call(model, inputs)
    names = ["dog", "grass", "sky"]
    family = ca.nodes.chroma.ChromaFamily()
    concept_context, _ = ca.nodes.encoding.encode_concepts(clip, names, "first", family)
    dm = model.get_model_object("diffusion_model")
    with torch.no_grad():
        expected = chroma_reference_scores(dm, x, t, context, guidance, concept_context)
    assert_maps_match(ca, model, clip, inputs, expected, (x.shape[-2] // 2, x.shape[-1] // 2))


def recorded_chroma_call(model, inputs):
    """Run a plain 1-step sampler and record Chroma's inputs (x, timestep, context, guidance: its order)."""
    calls = []

    def record(executor, x, timestep, context, guidance, *args, **kwargs):
        calls.append((x.clone(), timestep.clone(), context.clone(), guidance.clone()))
        return executor(x, timestep, context, guidance, *args, **kwargs)

    recorder = model.clone()
    recorder.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "record", record)
    nodes.common_ksampler(recorder, inputs["seed"], 1, 1.0, "euler", "simple", inputs["positive"],
                          inputs["negative"], inputs["latent_image"])
    return calls[0]



def test_auto_layers_are_the_last_four_double_blocks(ca):
    model, clip = tiny_chroma(3, depth=6), tiny_chroma_clip()
    _, maps = run_layers(ca, model, clip, {**sampler_inputs(clip, 1, 1.0), "steps": 1}, "auto", True)
    assert maps.layers == (2, 3, 4, 5)


def test_segment_image_runs_on_chroma(ca):
    model, clip = tiny_chroma(3, depth=3), tiny_chroma_clip()
    (maps,) = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=random_vae(), image=torch.rand(1, 48, 80, 3), concepts="dog, grass",
        layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=2,
        seed=0, caption="a dog on grass").args
    assert maps.maps.shape == (1, 2, 3, 5) and maps.image_size == (48, 80) and maps.token_pixels == 16
    assert torch.isfinite(maps.maps).all()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(1, 3, 5), atol=1e-5)


def test_chroma_radiance_pixel_space(ca):
    """Radiance: the 'latent' is the image, 16-pixel patches, a grid that rounds up."""
    model, clip = tiny_chroma(3, radiance=True), tiny_chroma_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 2, "latent_image": {"samples": torch.zeros(1, 3, 40, 72)}}
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (1, 3, 3, 5)  # ceil(40 / 16), ceil(72 / 16)
    assert maps.image_size == (40, 72) and maps.token_pixels == 16
    assert maps.pixel_maps().shape[-2:] == (40, 72)


def test_concepts_align_with_chromas_real_tokenizer(ca):
    """Chroma's T5 tokenizer (PixArt's: no padding, an end token): a multi-token concept's own word
    pieces are found, and the end token is never taken for the concept."""
    clip = tiny_chroma_clip()
    family = ca.nodes.chroma.ChromaFamily()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    pieces = [t for t in tokens["t5xxl"][0]]
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    assert states.shape[1] == len(pieces)  # no padding to 256 as with Flux's tokenizer
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    assert len(own) >= 2 and own == list(range(len(own)))
    assert pieces[len(own)][0] == 1  # the end token follows the concept's own pieces
    first, _ = ca.nodes.encoding.encode_concepts(clip, ["traffic light"], "first", family)
    mean, _ = ca.nodes.encoding.encode_concepts(clip, ["traffic light"], "mean", family)
    assert torch.allclose(first[0, 0], states[0, own[0]])
    assert torch.allclose(mean[0, 0], states[0, own].mean(dim=0))


def test_chroma_is_its_own_family(ca):
    model = tiny_chroma(3)
    family = ca.nodes.families.family_for(model)
    assert isinstance(family, ca.nodes.chroma.ChromaFamily)
    assert isinstance(model.get_model_object("diffusion_model"), comfy.ldm.chroma.model.Chroma)
