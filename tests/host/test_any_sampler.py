"""Concept maps from any sampler: the Concept Attention Model node and the Concept Maps collector, run
through ComfyUI's executor with its real cache."""

import gc
import warnings

import pytest
import torch
from comfy_host import make_executor
from helpers.graph import (
    KEPT,
    SEED,
    base,
    collector,
    concept_sampler_node,
    keep,
    model_node,
    run,
    sampler,
)


def succeed(prompt, executor=None) -> set:
    result, executed = run(prompt, executor)
    assert result["success"], result["errors"]
    return executed


def live_tensors() -> int:
    with warnings.catch_warnings():  # isinstance on some of torch's deprecated objects warns
        warnings.simplefilter("ignore")
        return sum(1 for obj in gc.get_objects() if isinstance(obj, torch.Tensor))


def assert_same_maps(a, b):
    assert a.names == b.names and a.prompts == b.prompts
    assert torch.equal(a.maps, b.maps) and torch.equal(a.cross_attention_maps, b.cross_attention_maps)


@pytest.mark.parametrize("kind", ["KSampler", "KSamplerAdvanced", "BasicGuider", "CFGGuider"])
def test_model_node_and_collector_with_any_sampler(kind):
    cfg = 2.0 if kind == "CFGGuider" else 1.0
    patched, patched_latent = sampler(kind, "10", ("5", 0), cfg=cfg)
    plain, plain_latent = sampler(kind, "20", ("1", 0), cfg=cfg)
    succeed({**base(), **model_node(), **patched, **collector("11", patched_latent),
             "12": keep("patched latent", latent=patched_latent), **plain,
             "22": keep("plain latent", latent=plain_latent), **concept_sampler_node("30", cfg=cfg)})
    # the image is bit-identical to the same sampler without the model node
    assert torch.equal(KEPT["patched latent"]["latent"]["samples"], KEPT["plain latent"]["latent"]["samples"])
    assert torch.equal(KEPT["patched latent"]["latent"]["samples"], KEPT["30"]["latent"]["samples"])
    # and the maps are the Concept Attention Sampler's
    maps = KEPT["11"]["concept_maps"]
    assert maps.names == ["dog", "grass", "sky"] and maps.maps.shape == (1, 3, 4, 6)
    assert maps.image_size == (64, 96) and maps.steps == (0, 1)
    assert_same_maps(maps, KEPT["30"]["concept_maps"])


def test_cache_a_new_seed_recomputes_the_maps_and_nothing_changed_reuses_everything():
    def graph(seed):
        branch, latent = sampler("KSampler", "10", ("5", 0), seed=seed)
        return {**base(), **model_node(), **branch, **collector("11", latent)}

    executor = make_executor()
    assert {"5", "10", "11"} <= succeed(graph(3), executor)
    first = KEPT["11"]["concept_maps"]
    assert succeed(graph(3), executor) == set()  # every output reused, maps included
    executed = succeed(graph(4), executor)
    assert {"10", "11"} <= executed and "5" not in executed  # the patched model is reused
    second = KEPT["11"]["concept_maps"]
    assert not torch.equal(first.maps, second.maps)
    # the maps of this run, never of the earlier one: a fresh ComfyUI gives exactly these for seed 4
    succeed(graph(4))
    assert_same_maps(second, KEPT["11"]["concept_maps"])
    # and back to seed 3: the first maps again, not the seed-4 run's
    succeed(graph(3), executor)
    assert_same_maps(first, KEPT["11"]["concept_maps"])


def test_two_samplers_sharing_one_patched_model_each_get_their_own_maps():
    """A hires-fix: the second pass re-samples the upscaled first latent with the same patched model."""
    first, first_latent = sampler("KSampler", "10", ("5", 0))
    second, second_latent = sampler("CFGGuider", "20", ("5", 0), latent=("15", 0), seed=9, denoise=0.6)
    upscale = {"15": {"class_type": "LatentUpscaleBy",
                      "inputs": {"samples": first_latent, "upscale_method": "nearest-exact", "scale_by": 2.0}}}
    succeed({**base(), **model_node(), **first, **upscale, **second, **collector("11", first_latent),
             **collector("21", second_latent)})
    one, two = KEPT["11"]["concept_maps"], KEPT["21"]["concept_maps"]
    assert one.maps.shape == (1, 3, 4, 6) and two.maps.shape == (1, 3, 8, 12)
    assert two.image_size == (128, 192)

    # each equals its own run made alone, with a model node of its own
    succeed({**base(), **model_node(), **first, **collector("11", first_latent)})
    assert_same_maps(one, KEPT["11"]["concept_maps"])
    alone = {**base(), **model_node(), **first, **upscale, **second, **collector("21", second_latent)}
    alone["20g"]["inputs"]["model"] = ["6", 0]
    alone["20t"]["inputs"]["model"] = ["6", 0]
    alone.update(model_node("6"))
    alone["21"]["inputs"]["recorder"] = ["6", 1]
    alone["10"]["inputs"]["model"] = ["1", 0]
    succeed(alone)
    assert_same_maps(two, KEPT["21"]["concept_maps"])


def test_runs_are_replaced_and_nothing_grows_over_twenty_queued_prompts():
    executor = make_executor()
    held, tensors = [], []
    for seed in range(20):
        branch, latent = sampler("KSampler", "10", ("5", 0), seed=seed)
        hires, hires_latent = sampler("KSampler", "20", ("5", 0), latent=latent, seed=seed, denoise=0.5)
        succeed({**base(), **model_node(), **branch, **hires, **collector("11", latent),
                 **collector("21", hires_latent), "9": keep(f"recorder {seed}", recorder=["5", 1])}, executor)
        recorder = KEPT[f"recorder {seed}"]["recorder"].recorder
        assert len(recorder.runs) == 2  # one per sampler node: each run replaced the node's last one
        held.append(recorder.held_bytes())
        KEPT.clear()
        del recorder
        gc.collect()
        tensors.append(live_tensors())
    assert len(set(held)) == 1 and held[0] > 0
    assert tensors[-1] <= tensors[2], tensors  # flat once warm: nothing accumulates across prompts


def test_an_interrupt_mid_sampling_leaves_no_open_run_and_no_stale_maps():
    executor = make_executor()
    succeed({**base(), **model_node(), "9": keep("patched", recorder=["5", 1], model=["1", 0])}, executor)
    patch, original = KEPT["patched"]["recorder"], KEPT["patched"]["model"]

    graph = {**base(), **model_node(), "6": {"class_type": "CATestInterruptAtCall",
                                              "inputs": {"model": ["5", 0], "call": 2}}}
    branch, latent = sampler("KSampler", "10", ("6", 0))
    graph.update(branch)
    graph.update(collector("11", latent))
    result, executed = run(graph, executor)
    assert "10" in executed and not result["success"]
    assert any(event == "execution_interrupted" for event, _ in executor.status_messages)
    assert patch.open_recording is None and patch.recorder.runs == {}  # no open run, no stale maps
    assert "concept_attention" not in str(original.model_options)  # the loader's model was never patched

    # the same patched model, sampled again without the interrupt: exactly a fresh run's maps
    del graph["6"]
    graph["10"]["inputs"]["model"] = ["5", 0]
    executed = succeed(graph, executor)
    assert "5" not in executed  # the cached patched model, the one that was interrupted
    assert len(patch.recorder.runs) == 1
    resumed = KEPT["11"]["concept_maps"]
    succeed(graph)
    assert_same_maps(resumed, KEPT["11"]["concept_maps"])


def test_negative_prompt_maps_with_cfg_above_one():
    graph = {**base(), **concept_sampler_node("30", cfg=2.0, prompt="both"),
             **concept_sampler_node("31", cfg=2.0, prompt="positive"),
             **concept_sampler_node("32", cfg=2.0, prompt="negative")}
    succeed(graph)
    both, positive, negative = (KEPT[node]["concept_maps"] for node in ("30", "31", "32"))
    assert both.prompts == ("positive", "negative") and both.maps.shape == (2, 3, 4, 6)
    assert negative.prompts == ("negative",)
    # the same maps as one prompt alone (up to float rounding: both prompts' concepts run as one batch)
    assert torch.allclose(both.maps[:1], positive.maps, atol=1e-6)
    assert torch.allclose(both.maps[1:], negative.maps, atol=1e-6)
    assert not torch.allclose(positive.maps, negative.maps, atol=1e-4)  # another prompt, other maps
    assert both.labels() == ["dog (positive)", "grass (positive)", "sky (positive)",
                             "dog (negative)", "grass (negative)", "sky (negative)"]
    # the negative rows are the ones used: with the positive text as the negative, the maps agree
    succeed({**base(negative="a dog on grass"), **concept_sampler_node("30", cfg=2.0, prompt="both")})
    same = KEPT["30"]["concept_maps"]
    assert torch.allclose(same.maps[0], same.maps[1], atol=1e-5)

    # through the model node and a CFGGuider too
    branch, latent = sampler("CFGGuider", "10", ("5", 0), cfg=2.0)
    succeed({**base(), **model_node(prompt="both"), **branch, **collector("11", latent)})
    assert_same_maps(KEPT["11"]["concept_maps"], both)


def test_negative_maps_at_cfg_one_fail_naming_the_fix():
    # the Sampler knows its cfg, so it refuses before sampling
    result, executed = run({**base(), **concept_sampler_node("30", cfg=1.0, prompt="negative")})
    assert not result["success"]
    message = result["errors"][0]["exception_message"]
    assert "at cfg 1.0 ComfyUI never runs the negative prompt" in message and "raise cfg above 1" in message
    # behind the model node, the sampling run that would make no negative maps refuses before its first step,
    # with the Sampler's message (tests/host/test_newcomer_refusals_and_masks.py counts its model calls)
    result, executed = run({**base(), **model_node(prompt="negative"), **sampler("KSampler", "10", ("5", 0))[0],
                            **collector("11", ["10", 0])})
    assert not result["success"] and "11" not in executed
    message = result["errors"][0]["exception_message"]
    assert "at cfg 1.0 ComfyUI never runs the negative prompt" in message and "raise cfg above 1" in message


def test_saliency_map_labels_each_heatmap_with_its_concept(ca):
    succeed({**base(), **concept_sampler_node("30", cfg=2.0, prompt="both")})
    maps = KEPT["30"]["concept_maps"]
    saliency = ca.nodes.map_nodes.SaliencyMap

    def heatmaps(**label):
        out = saliency.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.6, space="as_made", **label)
        return out.args[0], out.ui["concepts"]

    plain, concepts = heatmaps()
    labelled, _ = heatmaps(label=True)
    assert concepts == maps.labels() and plain.shape == labelled.shape == (6, 64, 96, 3)
    assert torch.equal(plain, heatmaps(label=False)[0])  # off (and absent, as in older workflows) draws nothing
    changed = (plain != labelled).any(dim=-1)  # [6, H, W]
    for image, text in zip(changed, concepts, strict=True):
        rows, cols = image[: 64 // 2].nonzero(as_tuple=True)
        assert len(rows) > 60 and cols.min() == 0, text  # a band with the text in it at the top-left
        rows, cols = image[64 // 2:].nonzero(as_tuple=True)
        assert rows.max() == 64 // 2 - 1 and cols.min() == 0, text  # the colour bar's band at the bottom-left
        assert not image[24:44].any(), text  # the rest untouched
    # each heatmap carries its own text: "dog (positive)" and "dog (negative)" differ
    assert not torch.equal(changed[0], changed[3])


def test_collector_fed_by_an_unpatched_sampler_names_the_fix():
    plain, plain_latent = sampler("KSampler", "20", ("1", 0), seed=SEED + 1)  # the same seed would be the same latent
    unused = {**base(), **model_node(), **plain, **collector("11", plain_latent)}
    result, _ = run(unused)
    assert not result["success"]
    assert "no sampling run has used this Concept Attention Model yet: wire its MODEL output into the model input" \
        in result["errors"][0]["exception_message"]

    # the model node's MODEL sampled by one sampler; the collector given another sampler's LATENT
    executor = make_executor()
    patched, patched_latent = sampler("KSampler", "10", ("5", 0))
    succeed({**base(), **model_node(), **patched, **collector("11", patched_latent)}, executor)
    result, _ = run(unused, executor)
    assert not result["success"]
    message = result["errors"][0]["exception_message"]
    assert "this LATENT was not returned by a sampler running this Concept Attention Model's MODEL" in message
    assert "denoised_output" in message
