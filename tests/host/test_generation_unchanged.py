"""The Concept Attention Sampler's settings on Flux.1: the maps come from the positive prompt, the step range
chooses the steps, and the cross-attention space is made in the same run. (That its LATENT equals KSampler's,
for every family: test_family_contract.py.)"""

import pytest
import torch
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import concept_sampler, run_sampler, sampler_inputs


def test_maps_come_from_the_positive_prompt(ca):
    """With cfg > 1 the uncond rows run too; maps must equal a run whose rows are all positive."""
    model, clip = tiny_flux(3), tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5)
    _, maps_cfg = concept_sampler(ca, model, clip, **{**inputs, "steps": 1})
    _, maps_cfg1 = concept_sampler(ca, model, clip, **{**inputs, "steps": 1, "cfg": 1.0})
    # the first step's input is pure noise either way, so the positive rows see the same tensors
    assert torch.allclose(maps_cfg.maps, maps_cfg1.maps, atol=1e-5)


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
