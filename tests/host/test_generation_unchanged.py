"""The Concept Attention Sampler's LATENT equals KSampler's: concepts never touch the image."""

import nodes
import pytest
import torch
from ca_test_nodes import tiny_clip, tiny_flux


def prompt(clip, text):
    tokens = clip.tokenize(text)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def sampler_inputs(clip, batch, cfg, size=(8, 10)):
    return dict(seed=7, steps=3, cfg=cfg, sampler_name="euler", scheduler="simple",
                positive=prompt(clip, "a red dog on green grass"), negative=prompt(clip, "blurry"),
                latent_image={"samples": torch.zeros(batch, 16, *size)}, denoise=1.0)


def concept_sampler(ca, model, clip, **inputs):
    out = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs)
    return out.args


@pytest.mark.parametrize("guidance_embed", [True, False], ids=["dev", "schnell"])
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_latent_equals_ksampler(ca, guidance_embed, batch, cfg):
    model, clip = tiny_flux(3, guidance_embed), tiny_clip()
    inputs = sampler_inputs(clip, batch, cfg)
    (reference,) = nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"],
                                         inputs["sampler_name"], inputs["scheduler"], inputs["positive"],
                                         inputs["negative"], inputs["latent_image"])
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.allclose(latent["samples"], reference["samples"], atol=1e-6, rtol=0)
    assert maps.maps.shape == (batch, 3, 4, 5)
    assert maps.steps == (0, 1, 2)
    # softmax maps over concepts sum to one at every token
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch, 4, 5), atol=1e-5)


def test_batch_rows_get_their_own_maps(ca):
    model, clip = tiny_flux(3), tiny_clip()
    inputs = sampler_inputs(clip, 2, 3.5)
    _, maps = concept_sampler(ca, model, clip, **inputs)
    assert not torch.allclose(maps.maps[0], maps.maps[1])


def test_maps_come_from_the_positive_prompt(ca):
    """With cfg > 1 the uncond rows run too; maps must equal a run whose rows are all positive."""
    model, clip = tiny_flux(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5)
    _, maps_cfg = concept_sampler(ca, model, clip, **{**inputs, "steps": 1})
    _, maps_cfg1 = concept_sampler(ca, model, clip, **{**inputs, "steps": 1, "cfg": 1.0})
    # the first step's input is pure noise either way, so the positive rows see the same tensors
    assert torch.allclose(maps_cfg.maps, maps_cfg1.maps, atol=1e-5)


def run_sampler(ca, model, clip, inputs, **overrides):
    values = dict(concepts="dog, grass, sky", layers="all", space="output", softmax=True, token_pooling="first",
                  start_step=0, end_step=10000)
    values.update(overrides)
    return ca.nodes.sampler_node.ConceptAttentionSampler.execute(model=model, clip=clip, **values, **inputs).args


def test_step_range_chooses_the_contributing_steps(ca):
    model, clip = tiny_flux(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 1.0)
    _, late = run_sampler(ca, model, clip, inputs, start_step=1, end_step=3)
    _, early = run_sampler(ca, model, clip, inputs, start_step=0, end_step=1)
    assert late.steps == (1, 2) and early.steps == (0,)
    assert not torch.allclose(late.maps, early.maps)
    with pytest.raises(ValueError, match="start_step 2 must be below end_step 2"):
        run_sampler(ca, model, clip, inputs, start_step=2, end_step=2)
    # the Sampler knows its step count, so a range it never reaches is refused before sampling
    with pytest.raises(ValueError, match=r"start_step 50 is past the last step: this run has 3 steps \(0-2\)"):
        run_sampler(ca, model, clip, inputs, start_step=50)


def test_cross_attention_space_is_made_in_the_same_run(ca):
    model, clip = tiny_flux(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 1.0)
    latent_out, out_maps = run_sampler(ca, model, clip, inputs, space="output")
    latent_cross, cross_maps = run_sampler(ca, model, clip, inputs, space="cross_attention")
    assert torch.equal(latent_out["samples"], latent_cross["samples"])
    assert torch.equal(out_maps.cross_attention_maps, cross_maps.cross_attention_maps)
    assert torch.equal(cross_maps.selected(), cross_maps.cross_attention_maps)
    assert not torch.allclose(out_maps.maps, out_maps.cross_attention_maps)
    with pytest.raises(ValueError, match="unknown map space 'bogus'"):
        run_sampler(ca, model, clip, inputs, space="bogus")
