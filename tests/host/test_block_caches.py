"""Step-skipping caches (First Block Cache, TeaCache, ...): the maps average only the steps whose chosen
blocks ran, record which steps those were, and say so when a cache skipped every chosen step."""

import nodes
import pytest
import torch
from comfy_host import make_executor, run_prompt
from helpers.block_cache import block_cache
from helpers.graph import KEPT, base, model_node, sampler
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import sampler_inputs

STEPS = 4


def run(ca, model, clip, inputs, layers="1,2", start_step=0, end_step=10000):
    return ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers=layers, space="output", softmax=True,
        token_pooling="first", start_step=start_step, end_step=end_step, **inputs).args


@pytest.fixture(scope="module")
def setup():
    clip = tiny_clip()
    return tiny_flux(3), clip, {**sampler_inputs(clip, 1, 3.5), "steps": STEPS}


@pytest.mark.parametrize("mode", ["after_first_block", "whole_model"])
def test_maps_average_only_the_steps_whose_blocks_ran(ca, setup, mode):
    model, clip, inputs = setup
    cached = block_cache(model, {1, 2}, mode)
    latent, maps = run(ca, cached, clip, inputs)
    assert maps.steps == (0, 3) and maps.skipped_steps == (1, 2)
    # the image is the cached model's own, untouched by the concepts
    (plain,) = nodes.common_ksampler(cached, inputs["seed"], STEPS, inputs["cfg"], "euler", "simple",
                                     inputs["positive"], inputs["negative"], inputs["latent_image"])
    assert torch.equal(latent["samples"], plain["samples"])
    # the mean over the steps that ran: each of them alone, averaged
    _, first = run(ca, cached, clip, inputs, start_step=0, end_step=1)
    _, last = run(ca, cached, clip, inputs, start_step=3, end_step=4)
    assert first.steps == (0,) and last.steps == (3,)
    assert torch.allclose(maps.maps, (first.maps + last.maps) / 2, atol=1e-6)
    assert not torch.allclose(first.maps, last.maps)


def test_a_step_whose_first_block_ran_contributes_that_layer(ca, setup):
    """After the first block a cache skips the rest: a step scores the chosen blocks that ran (here block 0)."""
    model, clip, inputs = setup
    _, maps = run(ca, block_cache(model, {1, 2}), clip, inputs, layers="all")
    assert maps.steps == (0, 1, 2, 3) and maps.skipped_steps == ()


@pytest.mark.parametrize("mode", ["after_first_block", "whole_model"])
def test_every_chosen_step_skipped_says_why(ca, setup, mode):
    model, clip, inputs = setup
    with pytest.raises(RuntimeError) as error:
        run(ca, block_cache(model, {1, 2}, mode), clip, inputs, start_step=1, end_step=3)
    message = str(error.value)
    assert "ran steps 1-2 without the chosen joint blocks" in message
    assert "First Block Cache" in message and "widen the step range" in message


def test_saliency_map_shows_the_skipped_steps(ca, setup):
    model, clip, inputs = setup
    _, maps = run(ca, block_cache(model, {1, 2}), clip, inputs)
    out = ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.6,
                                                 space="as_made")
    assert out.ui["steps"] == ["maps from steps 0, 3; a block cache skipped steps 1, 2"]
    _, full = run(ca, model, clip, inputs)
    assert "steps" not in ca.nodes.map_nodes.SaliencyMap.execute(
        concept_maps=full, normalisation="joint", overlay_opacity=0.6, space="as_made").ui


@pytest.mark.parametrize("cache_first", [True, False], ids=["cache_then_concepts", "concepts_then_cache"])
def test_a_cache_node_in_the_graph_either_side_of_the_model_node(cache_first, ca):
    """The cache node before or after the Concept Attention Model node, sampled by KSampler."""
    KEPT.clear()
    graph = base()
    if cache_first:
        graph["c"] = {"class_type": "CATestBlockCache", "inputs": {"model": ["1", 0], "skip_steps": "1",
                                                                    "mode": "whole_model"}}
        graph.update(model_node(model=("c", 0)))
        model_out = ("5", 0)
    else:
        graph.update(model_node())
        graph["c"] = {"class_type": "CATestBlockCache", "inputs": {"model": ["5", 0], "skip_steps": "1",
                                                                    "mode": "whole_model"}}
        model_out = ("c", 0)
    nodes_, latent = sampler("KSampler", "k", model_out)
    graph.update(nodes_)
    graph["m"] = {"class_type": "ConceptAttentionMaps", "inputs": {"recorder": ["5", 1], "latent": latent}}
    graph["keep"] = {"class_type": "CATestKeep", "inputs": {"key": "maps", "concept_maps": ["m", 0]}}
    result = run_prompt(graph, make_executor())
    assert result["valid"] and result["success"], result
    maps = KEPT["maps"]["concept_maps"]
    assert maps.steps == (0,) and maps.skipped_steps == (1,)
