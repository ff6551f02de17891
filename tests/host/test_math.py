"""The concept stream on Flux.1, beyond the family contract's equations (test_family_contract.py, with the
independent implementation of the paper's equations in helpers/equations/): a later layer's scores come from
the stream through the earlier blocks."""

import torch
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import run_layers, sampler_inputs


def test_a_later_layer_depends_on_the_stream_through_earlier_blocks(ca):
    """Concepts evolve block by block: layer 2's scores differ from a stream started at layer 2."""
    model, clip = tiny_flux(5, depth=3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    _, evolved = run_layers(ca, model, clip, inputs, "2", softmax=False)
    _, first = run_layers(ca, model, clip, inputs, "0", softmax=False)
    assert not torch.allclose(evolved.maps, first.maps)

