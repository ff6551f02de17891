"""What a newcomer tries first: one concept, a step range the run never reaches, a bad name."""

import importlib

import nodes
import numpy as np
import pytest
import torch
from helpers.demo_nodes import mask, segment
from helpers.graph import KEPT, base, collector, model_node, run, sampler
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import prompt as encode_prompt

from research import shapes

ONE_CONCEPT_SCENES = 12  # held-out scenes past the semantic test's first 200 (their objects: about 22)


@pytest.fixture(scope="module")
def demo(ca):
    loader = importlib.import_module(f"{ca.__name__}.nodes.demo_loader")
    return loader.load_demo_model(), shapes


def iou(mask: torch.Tensor, truth: np.ndarray) -> float:
    ours, truth = mask[0].numpy() > 0.5, truth.astype(bool)
    return (ours & truth).sum() / max((ours | truth).sum(), 1)


@torch.inference_mode()
def test_one_concept_gets_a_mask_of_its_object(ca, demo):
    """A softmax over one concept is 1 everywhere: its argmax mask would be the whole image (IoU about 0.1
    here). One concept keeps its raw scores instead, cut at half their range (measured IoU 0.59 over 548
    objects, research/single_concept.py)."""
    models, shapes = demo
    ious, whole_image = [], []
    for seed in shapes.held_out_seeds(ONE_CONCEPT_SCENES, skip=200):
        scene = shapes.make_scene(seed)
        image = torch.from_numpy(scene.image).float()[None]
        for thing in scene.objects:
            maps = segment(ca, models, image, thing.shape, scene.caption)
            assert maps.one_concept_raw and not maps.softmax
            assert maps.maps.std() > 0  # a real map, not the softmax's constant
            ious.append(iou(mask(ca, maps, thing.shape), thing.mask))
            whole_image.append(iou(torch.ones(1, *thing.mask.shape), thing.mask))
    assert len(ious) >= 15
    assert np.mean(ious) >= 0.45, f"mean IoU {np.mean(ious):.3f} over {len(ious)} objects"
    assert np.mean(whole_image) < 0.2  # what the argmax over one softmaxed concept gave


@torch.inference_mode()
def test_saliency_map_says_one_concept_is_raw_and_two_keep_the_paper_softmax(ca, demo):
    models, shapes = demo
    scene = shapes.make_scene(next(iter(shapes.held_out_seeds(1, skip=200))))
    image = torch.from_numpy(scene.image).float()[None]
    saliency = ca.nodes.map_nodes.SaliencyMap
    one = segment(ca, models, image, "circle", scene.caption)
    shown = saliency.execute(concept_maps=one, normalisation="joint", overlay_opacity=0.5, space="as_made")
    assert shown.ui["concepts"] == ["circle · raw score (one concept)"]
    two = segment(ca, models, image, "circle, background", scene.caption)
    assert two.softmax and not two.one_concept_raw and two.score_note == ""
    torch.testing.assert_close(two.maps.sum(dim=1), torch.ones_like(two.maps[:, 0]))  # a mean of softmaxes
    shown = saliency.execute(concept_maps=two, normalisation="joint", overlay_opacity=0.5, space="as_made")
    assert shown.ui["concepts"] == ["circle", "background"]


@torch.inference_mode()
def test_one_concept_with_softmax_off_refuses_argmax_naming_the_fix(ca, demo):
    models, shapes = demo
    scene = shapes.make_scene(next(iter(shapes.held_out_seeds(1, skip=200))))
    image = torch.from_numpy(scene.image).float()[None]
    raw = segment(ca, models, image, "circle", scene.caption, softmax=False)
    assert not raw.one_concept_raw
    with pytest.raises(ValueError, match=r"argmax needs two or more concepts.*\('circle'\).*softmax off: turn "
                                         r"softmax back on.*method otsu or threshold.*add a second concept"):
        mask(ca, raw, "circle")
    assert 0 < mask(ca, raw, "circle", method="otsu").mean() < 1  # the named alternatives work


def sampler_inputs(**changes):
    clip = tiny_clip()
    inputs = dict(model=tiny_flux(0), clip=clip, seed=0, steps=12, cfg=1.0, sampler_name="euler", scheduler="simple",
                  positive=encode_prompt(clip, "a dog"), negative=encode_prompt(clip, ""),
                  latent_image={"samples": torch.zeros(1, 16, 8, 8)}, denoise=1.0, concepts="dog, sky",
                  layers="auto", space="output", softmax=True, token_pooling="first", start_step=0, end_step=10000)
    return {**inputs, **changes}


@pytest.fixture
def sampler_calls(monkeypatch):
    """Every sampling the Sampler node starts (nodes.common_ksampler, which it calls)."""
    calls = []
    stock = nodes.common_ksampler

    def counting(*args, **kwargs):
        calls.append(kwargs.get("denoise"))
        return stock(*args, **kwargs)

    monkeypatch.setattr(nodes, "common_ksampler", counting)
    return calls


def test_a_step_range_the_run_never_reaches_fails_before_sampling(ca, sampler_calls):
    node = ca.nodes.sampler_node.ConceptAttentionSampler
    with pytest.raises(ValueError, match=r"start_step 50 is past the last step: this run has 12 steps \(0-11\).*"
                                         r"set start_step below 12"):
        node.execute(**sampler_inputs(start_step=50))
    with pytest.raises(ValueError, match="at cfg 1.0 ComfyUI never runs the negative prompt"):
        node.execute(**sampler_inputs(prompt="negative"))
    with pytest.raises(ValueError, match="layer 7 is out of range: this model has 3 double blocks"):
        node.execute(**sampler_inputs(layers="7"))
    assert sampler_calls == []
    node.execute(**sampler_inputs(steps=1, start_step=0))  # a range that runs does sample
    assert sampler_calls == [1.0]


def test_the_model_nodes_run_that_misses_its_range_is_refused_naming_its_step_count():
    """The model node cannot know which sampler will run it (a hires pass may share it): each sampling run
    is judged by its own step count, before its first step, with the Sampler's message."""
    graph = {**base(), **model_node(), **sampler("KSampler", "10", ("5", 0))[0], **collector("11", ["10", 0])}
    graph["5"]["inputs"]["start_step"] = 5
    KEPT.clear()
    result, executed = run(graph)
    assert not result["success"] and "11" not in executed
    message = result["errors"][0]["exception_message"]
    assert "start_step 5 is past the last step: this run has 2 steps (0-1)" in message
    assert "set start_step below 2" in message


@torch.inference_mode()
def test_a_concept_that_encodes_to_nothing_is_named(ca, demo):
    models, shapes = demo
    image = torch.rand(1, 64, 64, 3)
    with pytest.raises(ValueError, match="'🐶'"):
        segment(ca, models, image, "circle, 🐶", "a red circle")


def test_a_concept_the_tokenizer_reads_as_unknown_is_named(ca, sampler_calls):
    """T5 (Flux's text encoder) turns an emoji into its unknown token: the map would be of <unk>."""
    node = ca.nodes.sampler_node.ConceptAttentionSampler
    for concepts in ("dog, 🐶", "🐶 dog, sky"):
        with pytest.raises(ValueError, match=r"the concept '🐶.*' has 1 piece\(s\) the text encoder cannot read"):
            node.execute(**sampler_inputs(concepts=concepts))
    assert sampler_calls == []


@torch.inference_mode()
def test_saliency_map_batch_mismatch_says_what_to_connect(ca, demo):
    models, _ = demo
    maps = segment(ca, models, torch.rand(2, 64, 64, 3), "circle, square", "a red circle")
    with pytest.raises(ValueError, match=r"image batch has 3 images but the maps cover 2: connect the decoded batch "
                                         r"the maps were made from, or a single image for all of them"):
        ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.5,
                                               space="as_made", image=torch.rand(3, 64, 64, 3))
    one = ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.5,
                                                 space="as_made", image=torch.rand(1, 64, 64, 3))
    assert one.args[0].shape == (4, 64, 64, 3)  # the fix it names works: one image under every map
