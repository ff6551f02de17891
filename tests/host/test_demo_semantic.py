"""The semantic test: the shipped demo model's concept maps find the shapes a caption names.

Runs the product's own Segment Image and Concept Mask nodes on held-out scenes (never trained
on), at noise 0.5 and layers auto, with a caption naming the present shapes as in the paper's
segmentation experiments, argmax over the scene's shapes and "background" (the semantic test). Concept Mask's
threshold masks, one concept at a time, are measured too: argmax only compares the concepts' values
at each pixel, so it cannot see a mistake that shifts each concept's map by a constant, while the
threshold masks read each map's values across the image. research/semantic.py prints the full table
(per class, noise, layers).
"""

import importlib

import pytest
import torch

from research import evaluation, semantic
from research.shapes import IMAGE_SIZE

# The semantic test's thresholds live in research/semantic.py, which prints each criterion against them. Measured
# on ComfyUI 0.8.0 with the shipped weights: mIoU 0.706 (argmax masks) and 0.715 (threshold masks);
# cross-attention 0.610, a margin of 0.096 (0.091 over 1,000 scenes); the broken variants lose at
# least 0.43 on the reading that sees them; drawing 84 %.
HELD_OUT_SCENES = semantic.SEMANTIC_SCENES
NOISE, LAYERS = semantic.SEMANTIC_NOISE, semantic.SEMANTIC_LAYERS
READINGS = ("output", semantic.thresholded("output"))  # ConceptAttention's argmax and threshold masks


@pytest.fixture(scope="module")
def demo(ca):
    loader = importlib.import_module(f"{ca.__name__}.nodes.demo_loader")
    return loader.load_demo_model(), evaluation


@pytest.fixture(scope="module")
def scored(ca, demo):
    (model, clip, vae), evaluation = demo
    tables = evaluation.evaluate_segmentation(
        semantic.product_segmenter(ca, model, clip, vae, NOISE, LAYERS), HELD_OUT_SCENES)
    return {space: table.mean() for space, table in tables.items()}


def test_concept_attention_masks_segment_held_out_scenes(scored):
    assert scored["output"] >= semantic.REQUIRED_MIOU, scored


def test_concept_masks_at_the_default_threshold_segment_held_out_scenes(scored):
    assert scored[semantic.thresholded("output")] >= semantic.REQUIRED_MIOU, scored


def test_concept_attention_beats_the_cross_attention_baseline(scored):
    assert scored["output"] >= scored["cross_attention"] + semantic.REQUIRED_OVER_CROSS_ATTENTION, scored


@pytest.mark.parametrize("variant", semantic.BROKEN_VARIANTS)
def test_a_broken_method_scores_clearly_lower(ca, demo, scored, variant):
    """The measurement catches the mistake: ConceptAttention's masks lose >= 0.2 mIoU on the reading that
    sees it (argmax masks cannot see softmax over tokens; threshold masks can)."""
    (model, clip, vae), evaluation = demo
    with semantic.broken_method(ca, variant):
        tables = evaluation.evaluate_segmentation(
            semantic.product_segmenter(ca, model, clip, vae, NOISE, LAYERS), HELD_OUT_SCENES)
    lost = {reading: scored[reading] - tables[reading].mean() for reading in READINGS}
    assert max(lost.values()) >= semantic.REQUIRED_BROKEN_LOWER_BY, (variant, lost, scored)


def test_each_broken_variant_changes_the_maps_and_is_undone(ca, demo):
    """Each variant really alters the method inside its `with`, and leaves the extension as it was."""
    (model, clip, vae), evaluation = demo
    scene = evaluation.make_scene(next(iter(evaluation.held_out_seeds(1))))
    segment = ca.nodes.segment_node.ConceptAttentionSegmentImage

    def maps():
        return segment.execute(model=model, clip=clip, vae=vae, image=torch.from_numpy(scene.image)[None],
                               concepts=", ".join([o.shape for o in scene.objects] + ["background"]), layers=LAYERS,
                               space="output", softmax=True, token_pooling="first", noise_level=NOISE,
                               noise_samples=1, seed=0, caption="").args[0].maps

    with torch.inference_mode():
        before = maps()
        for variant in semantic.BROKEN_VARIANTS:
            with semantic.broken_method(ca, variant):
                assert not torch.allclose(maps(), before), variant
            assert torch.equal(maps(), before), variant


def test_the_demo_model_draws_the_prompted_shape(ca, demo):
    (model, clip, vae), evaluation = demo
    drawn = evaluation.evaluate_generation(semantic.product_generator(model, clip, vae, IMAGE_SIZE), seeds_per_shape=10)
    assert drawn["shape_accuracy"] >= semantic.REQUIRED_DRAWING, drawn


def test_the_benchmark_reads_the_concept_attention_without_changing_the_maps(ca, demo):
    """research/semantic.py's where-the-concepts-look table: the recording sees each double block's
    concept attention (probabilities over [concepts; image tokens]) and leaves the maps as they were."""
    (model, clip, vae), evaluation = demo
    scene = next(scene for scene in map(evaluation.make_scene, evaluation.held_out_seeds(20)) if len(scene.objects) == 2)
    shapes = [obj.shape for obj in scene.objects]
    concepts, image = shapes + [evaluation.BACKGROUND], torch.from_numpy(scene.image)[None]
    segment = semantic.product_segmenter(ca, model, clip, vae, NOISE, "all")
    stock = ca.nodes.stream.step.attend_concepts
    double_blocks = len(model.model.diffusion_model.double_blocks)
    plain = segment(image, concepts, evaluation.segmentation_caption(shapes))
    with semantic.recorded_concept_attention(ca) as recorded:
        watched = segment(image, concepts, evaluation.segmentation_caption(shapes))
    assert ca.nodes.stream.step.attend_concepts is stock
    assert all(torch.equal(plain[space], watched[space]) for space in plain)
    tokens = (scene.image.shape[0] // 16) * (scene.image.shape[1] // 16)
    assert len(recorded) == double_blocks
    for probabilities in recorded:
        assert probabilities.shape == (len(concepts), len(concepts) + tokens)
        torch.testing.assert_close(probabilities.sum(-1), torch.ones(len(concepts)))
    table = semantic.concept_attention_shares(ca, evaluation, model, clip, vae, NOISE, images=6)
    assert sorted(table) == list(range(double_blocks))
    for block in table.values():
        for shares in block.values():
            assert sum(shares.values()) == pytest.approx(1.0) and min(shares.values()) >= 0.0
        assert 0.0 < block["area"]["own object"] < block["area"]["background"]
