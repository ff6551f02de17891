"""The concepts are embedded once per sampling run where the family's embedding takes nothing of the model call
(install.ConceptAttentionPatch.embedded_concepts): the same maps as embedding them at every call, and a run whose
conditioning carries hooks (which patch weights in place mid-run) embeds them at every call."""

import comfy.hooks
import pytest
import torch
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import concept_sampler, ksampler, sampler_inputs


@pytest.fixture
def counted(ca, monkeypatch):
    """The Flux family's embed_concepts, counting its calls."""
    model, clip = tiny_flux(5), tiny_clip()
    family = type(ca.nodes.families.family_for(model))
    calls = []
    embed = family.embed_concepts

    def counting(self, *args, **kwargs):
        calls.append(1)
        return embed(self, *args, **kwargs)

    monkeypatch.setattr(family, "embed_concepts", counting)
    return model, clip, family, calls


def test_a_run_embeds_the_concepts_once_and_its_maps_are_those_of_every_call(ca, counted, monkeypatch):
    model, clip, family, calls = counted
    inputs = sampler_inputs(clip, 1, 1.0)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], ksampler(model, inputs))
    assert len(calls) == 1, f"{len(calls)} embeddings over {inputs['steps']} steps"
    calls.clear()
    monkeypatch.setattr(family, "concept_embedding_per_call", True)
    _, per_call = concept_sampler(ca, model, clip, **inputs)
    assert len(calls) == inputs["steps"]
    assert torch.equal(maps.maps, per_call.maps) and torch.equal(maps.raw_maps, per_call.raw_maps)


def test_a_run_with_hooks_embeds_the_concepts_at_every_call(ca, counted):
    model, clip, _, calls = counted
    inputs = sampler_inputs(clip, 1, 1.0)
    inputs["positive"] = comfy.hooks.set_hooks_for_conditioning(inputs["positive"], comfy.hooks.HookGroup())
    concept_sampler(ca, model, clip, **inputs)
    assert len(calls) == inputs["steps"]
