"""Flux.2 (ComfyUI 0.8 and newer): the image is untouched, the maps are the paper's equations with the
shared text modulation and each concept at its own token's RoPE position, a planted model gives the
known answer, reference latents stay out of the maps, and concepts align inside the chat template."""

import comfy.patcher_extension
import comfy.supported_models
import nodes
import pytest
import torch
import torch.nn.functional as F
from ca_test_nodes import flux2_tokenizer_class, planted, random_flux2_vae, tiny_flux2, tiny_flux2_clip
from test_generation_unchanged import concept_sampler, sampler_inputs
from test_math import assert_maps_match, linear, mlp_embed, modulation, reference_joint_block, run_layers, timestep_embedding
from test_patch_hygiene import ksampler
from test_planted import concept_context, one_pass_maps

if not hasattr(comfy.supported_models, "Flux2"):
    pytest.skip("Flux.2 arrived in ComfyUI 0.8; this host predates it", allow_module_level=True)



def flux2_inputs(clip, batch, cfg, size=(4, 6)):
    return {**sampler_inputs(clip, batch, cfg), "latent_image": {"samples": torch.zeros(batch, 128, *size)}}


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_latent_is_bit_identical_to_plain_sampling(ca, batch, cfg):
    model, clip = tiny_flux2(3), tiny_flux2_clip()
    inputs = flux2_inputs(clip, batch, cfg)  # non-square
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (batch, 3, 4, 6) and maps.token_pixels == 16
    assert maps.image_size == (64, 96)
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch, 4, 6), atol=1e-5)


def flux2_residual(x, attn_out, proj, mlp, mod):
    """Flux.2's update: gated SiLU MLP, no biases."""
    x = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    gate, value = linear(mlp[0], h).chunk(2, dim=-1)
    return x + mod[5] * linear(mlp[2], F.silu(gate) * value)


def flux2_reference_scores(dm, x, t, context, guidance, concept_context, concept_positions):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper's Flux.2 code."""
    p = dm.params
    b, _, hh, ww = x.shape
    img = linear(dm.img_in, x.flatten(2).transpose(1, 2))
    txt = linear(dm.txt_in, context)
    concepts = linear(dm.txt_in, concept_context.expand(b, -1, -1))
    vec = mlp_embed(dm.time_in, timestep_embedding(t)) + mlp_embed(dm.guidance_in, timestep_embedding(guidance))
    img_mod = modulation(dm.double_stream_modulation_img, vec)
    txt_mod = modulation(dm.double_stream_modulation_txt, vec)  # the text's and the concepts': no pooled vector
    rows, cols = torch.meshgrid(torch.arange(hh), torch.arange(ww), indexing="ij")
    zeros = torch.zeros_like(rows)
    img_ids = torch.stack([zeros, rows, cols, zeros], dim=-1).reshape(1, -1, 4).float().expand(b, -1, -1)
    txt_ids = torch.zeros(b, txt.shape[1], 4)
    txt_ids[..., 3] = torch.arange(txt.shape[1]).float()
    concept_ids = torch.zeros(b, concepts.shape[1], 4)
    concept_ids[..., 3] = torch.tensor(concept_positions).float()
    ids = torch.cat([txt_ids, img_ids], dim=1)
    scores, streams = [], (img, txt, concepts)
    for block in dm.double_blocks:
        layer, streams = reference_joint_block(block, streams, (img_mod, txt_mod, txt_mod), ids, p.axes_dim,
                                               p.theta, concept_ids=concept_ids, update=flux2_residual)
        scores.append(layer)
    return scores


def recorded_call(model, inputs):
    calls = []

    def record(executor, x, timestep, context, y=None, guidance=None, *args, **kwargs):
        calls.append((x.clone(), timestep.clone(), context.clone(), guidance.clone()))
        return executor(x, timestep, context, y, guidance, *args, **kwargs)

    recorder = model.clone()
    recorder.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "record", record)
    nodes.common_ksampler(recorder, inputs["seed"], 1, 1.0, "euler", "simple", inputs["positive"],
                          inputs["negative"], inputs["latent_image"])
    return calls[0]


def own_positions(clip, names):
    """Each concept's first own token, found here by the template's prefix length; klein pads to 512 on
    the right, so the model's text position is that index."""
    empty = [t[0] for t in clip.tokenize("")["qwen3_4b"][0]]
    positions = []
    for name in names:
        ids = [t[0] for t in clip.tokenize(name)["qwen3_4b"][0]]
        positions.append(next(i for i, (a, e) in enumerate(zip(ids, empty, strict=True)) if a != e))
    return positions


def test_scores_match_the_equations_with_concept_positions(ca):
    model, clip = tiny_flux2(5), tiny_flux2_clip()
    inputs = {**flux2_inputs(clip, 1, 1.0), "steps": 1}
    x, t, context, guidance = recorded_call(model, inputs)
    assert context.shape[1] == 512  # ComfyUI pads Flux.2's context to 512 tokens
    names = ["dog", "grass", "sky"]
    family = ca.nodes.flux2.Flux2Family()
    concept_context, positions = ca.nodes.encoding.encode_concepts(clip, names, "first", family)
    assert positions == own_positions(clip, names) == [3, 3, 3]  # after "<|im_start|>user\n"
    dm = model.get_model_object("diffusion_model")
    with torch.no_grad():
        expected = flux2_reference_scores(dm, x, t, context, guidance, concept_context, positions)
        unrotated = flux2_reference_scores(dm, x, t, context, guidance, concept_context, [0, 0, 0])
    assert not torch.allclose(expected[1][0], unrotated[1][0], atol=1e-4)  # the positions matter
    assert_maps_match(ca, model, clip, inputs, expected, x.shape[-2:])



def test_auto_layers_are_the_last_three_double_blocks(ca):
    model, clip = tiny_flux2(3, depth=5), tiny_flux2_clip()
    _, maps = run_layers(ca, model, clip, {**flux2_inputs(clip, 1, 1.0), "steps": 1}, "auto", True)
    assert maps.layers == (2, 3, 4)


def test_concepts_align_inside_the_chat_template(ca):
    """Klein's real tokenizer and template (a stand-in with the same template and Qwen3 tokenizer on hosts
    without it): a multi-token concept's own tokens are found, never the template's."""
    clip = tiny_flux2_clip()
    family = ca.nodes.flux2.Flux2Family()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    ids = [t[0] for t in tokens["qwen3_4b"][0]]
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    template = flux2_tokenizer_class()().tokenize_with_weights("")["qwen3_4b"][0]
    prefix = next(i for i, (a, e) in enumerate(zip(ids, [t[0] for t in template], strict=True)) if a != e)
    assert own == [prefix, prefix + 1]  # "traffic", " light"
    assert ids[own[-1] + 1] == template[prefix][0]  # then the template's tail, "<|im_end|>"
    first, positions = ca.nodes.encoding.encode_concepts(clip, ["traffic light"], "first", family)
    mean, _ = ca.nodes.encoding.encode_concepts(clip, ["traffic light"], "mean", family)
    assert positions == [prefix]
    assert torch.allclose(first[0, 0], states[0, own[0]])
    assert torch.allclose(mean[0, 0], states[0, own].mean(dim=0))


def test_concept_positions_follow_the_left_padding_to_512(ca):
    """Flux.2 dev's Mistral encoding is not padded by its tokenizer; ComfyUI pads the context on the left
    to 512, so a token at index i of a T-token encoding sits at position i + 512 - T."""
    family = ca.nodes.flux2.Flux2Family()
    assert family.concept_position(40, 42) == 510  # the paper's code: the concept token at 510
    assert family.concept_position(3, 512) == 3  # klein: right-padded to 512 by its tokenizer


def test_segment_image_runs_on_flux2(ca):
    model, clip = tiny_flux2(3), tiny_flux2_clip()
    (maps,) = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=random_flux2_vae(), image=torch.rand(1, 64, 96, 3), concepts="dog, grass",
        layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=2,
        seed=0, caption="a dog on grass").args
    assert maps.maps.shape == (1, 2, 4, 6) and maps.image_size == (64, 96) and maps.token_pixels == 16
    assert torch.isfinite(maps.maps).all()


def planted_flux2_latent(height, width, boundary):
    """128-channel latent, one token per cell: left tokens carry e0 - e1, right tokens e2 - e3."""
    latent = torch.zeros(1, 128, height, width)
    latent[0, 0, :, :boundary], latent[0, 1, :, :boundary] = 1.0, -1.0
    latent[0, 2, :, boundary:], latent[0, 3, :, boundary:] = 1.0, -1.0
    return latent


def run_planted_flux2(ca, latent, reference=None):
    return one_pass_maps(ca, planted(tiny_flux2(0, depth=2)), concept_context(), None, latent, 16, reference)


@pytest.mark.parametrize("with_reference", [False, True], ids=["plain", "edit reference"])
def test_planted_left_concept_wins_left_tokens(ca, with_reference):
    reference = planted_flux2_latent(4, 4, 4) if with_reference else None  # all 'left': not the output
    maps = run_planted_flux2(ca, planted_flux2_latent(4, 6, 2), reference=reference)
    assert maps.maps.shape == (1, 2, 4, 6)  # the generated grid only, never the reference's tokens
    winner = maps.maps.argmax(dim=1)[0]
    expected = torch.ones(4, 6, dtype=torch.long)
    expected[:, :2] = 0
    assert torch.equal(winner, expected)
