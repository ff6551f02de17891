"""Concept Mask's sharp masks: refine (edges that follow the image), measured on the demo model's held-out scenes,
and objects (each region of the concept on its own).

research/refine_masks.py prints the full table (200 scenes); this re-measures the first scenes through the same
nodes and asserts what the README states: with `image edges`, the boundary F-score at 2 px rises by more than
0.10 and the IoU does not fall, for the argmax over the concepts and for one concept alone.
"""

import importlib

import numpy as np
import pytest
import torch

from research import shapes
from research.evaluation import boundary_f, iou, segmentation_caption

SCENES = 12


@pytest.fixture(scope="module")
def nodes(ca):
    loader = importlib.import_module(f"{ca.__name__}.nodes.demo_loader")
    model, clip, vae = loader.load_demo_model()
    segment_node = importlib.import_module(f"{ca.__name__}.nodes.segment_node").ConceptAttentionSegmentImage

    def segment(image, concepts: list[str], caption: str):
        return segment_node.execute(model=model, clip=clip, vae=vae, image=image, concepts=", ".join(concepts),
                                    layers="auto", space="output", softmax=True, token_pooling="first",
                                    noise_level=0.5, noise_samples=1, seed=0, caption=caption).args[0]

    return segment, ca.nodes.map_nodes.ConceptMask


def mask(concept_mask, maps, word: str, refine: str, image=None) -> np.ndarray:
    out = concept_mask.execute(concept_maps=maps, concepts=word, method="argmax", threshold=0.5, grow=0, blur=0.0,
                               fill_holes=False, invert=False, space="as_made", refine=refine, image=image)
    return out.args[0][0].numpy() > 0.5


@pytest.fixture(scope="module")
def measured(nodes) -> dict[str, dict[str, float]]:
    segment, concept_mask = nodes
    scores: dict[str, dict[str, list[float]]] = {}
    for seed in shapes.held_out_seeds(SCENES):
        scene = shapes.make_scene(seed)
        words = [obj.shape for obj in scene.objects]
        image = torch.from_numpy(scene.image)[None]
        caption = segmentation_caption(words)
        together, = [segment(image, [*words, "background"], caption)]
        for word in words:
            alone = segment(image, [word], caption)
            for reading, maps in (("argmax", together), ("one concept", alone)):
                for refine in ("none", "image edges"):
                    predicted = mask(concept_mask, maps, word, refine, image)
                    entry = scores.setdefault(f"{reading}, {refine}", {"iou": [], "boundary_f": []})
                    entry["iou"].append(iou(predicted, scene.masks[word]))
                    entry["boundary_f"].append(boundary_f(predicted, scene.masks[word]))
    return {way: {name: float(np.mean(values)) for name, values in entry.items()} for way, entry in scores.items()}


@pytest.mark.parametrize("reading", ["argmax", "one concept"])
def test_image_edges_make_the_mask_follow_the_object(measured, reading):
    plain, sharp = measured[f"{reading}, none"], measured[f"{reading}, image edges"]
    assert sharp["boundary_f"] >= plain["boundary_f"] + 0.10, measured
    assert sharp["iou"] >= plain["iou"], measured


def test_image_edges_without_the_image_is_refused_naming_the_fix(nodes):
    segment, concept_mask = nodes
    scene = shapes.make_scene(next(iter(shapes.held_out_seeds(1))))
    words = [obj.shape for obj in scene.objects]
    maps = segment(torch.from_numpy(scene.image)[None], [*words, "background"], segmentation_caption(words))
    with pytest.raises(ValueError, match="connect it to Concept Mask's image input"):
        mask(concept_mask, maps, words[0], "image edges")
    with pytest.raises(ValueError, match="the maps were made for"):
        mask(concept_mask, maps, words[0], "image edges", torch.rand(1, 64, 64, 3))
    # without refinement the image is not needed, and the default is none
    assert mask(concept_mask, maps, words[0], "none").any()


def two_circles() -> tuple[torch.Tensor, list[np.ndarray]]:
    """A gray picture with a large and a small red circle, and each circle's true mask."""
    import cv2

    image = np.full((shapes.IMAGE_SIZE, shapes.IMAGE_SIZE, 3), shapes.BACKGROUNDS["gray"], np.float32)
    truths = []
    for centre, radius in (((70, 80), 48), ((190, 170), 30)):
        disc = np.zeros(image.shape[:2], np.uint8)
        cv2.circle(disc, centre, radius, 1, -1)
        image[disc == 1] = shapes.COLOURS["red"]
        truths.append(disc == 1)
    return torch.from_numpy(image)[None], truths


def test_objects_gives_each_circle_on_its_own_largest_first(nodes):
    segment, concept_mask = nodes
    image, truths = two_circles()
    maps = segment(image, ["circle", "background"], segmentation_caption(["circle", "circle"]))
    out = concept_mask.execute(concept_maps=maps, concepts="circle", method="argmax", threshold=0.5, grow=0,
                               blur=0.0, fill_holes=True, invert=False, space="as_made", refine="image edges",
                               image=image)
    mask, objects, count = out.args
    assert count == 2 and objects.shape == (2, *mask.shape[1:])
    assert torch.equal(objects.sum(dim=0), mask[0])  # the objects make up the mask
    for found, truth in zip(objects.numpy() > 0.5, truths, strict=True):  # the large circle first
        assert iou(found, truth) > 0.8


def test_objects_of_an_empty_mask_is_one_empty_mask(nodes):
    segment, concept_mask = nodes
    image, _ = two_circles()
    maps = segment(image, ["circle", "background"], segmentation_caption(["circle", "circle"]))
    out = concept_mask.execute(concept_maps=maps, concepts="circle", method="argmax", threshold=0.5, grow=0,
                               blur=0.0, fill_holes=False, invert=False, space="as_made", min_region=1 << 24)
    mask, objects, count = out.args
    assert count == 0 and objects.shape == (1, *mask.shape[1:]) and not objects.any()


def test_the_refined_argmax_mask_is_the_one_cut_from_the_full_size_maps(nodes, ca):
    """Concept Mask settles a refined argmax mask tile by tile (ca_core.refined_masks); it is the mask the full-size
    refined maps give (MaskingMaps), on the demo's scenes, with and without a concept named background."""
    segment, concept_mask = nodes
    map_nodes = ca.nodes.map_nodes
    compared = 0
    for seed in shapes.held_out_seeds(3):
        scene = shapes.make_scene(seed)
        words = [obj.shape for obj in scene.objects]
        image = torch.from_numpy(scene.image)[None]
        for concepts in ([*words, "background"], words):
            if len(concepts) < 2:
                continue
            maps = segment(image, concepts, segmentation_caption(words))
            guide = map_nodes.refinement_guide("image edges", image, maps)
            for word in words:
                selected = [concepts.index(word)]
                tiled = map_nodes.refined_argmax(maps, "argmax", 0.5, None, 0.0, guide, 0, selected)
                whole = map_nodes.MaskingMaps.of(maps, "argmax", 0.5, None, 0.0, guide, 0, selected)
                expected = whole.mask(selected) > 0.5
                assert tiled is not None and 0 < int(expected.sum()) < expected.numel()
                assert torch.equal(tiled, expected), f"scene {seed}, {word} of {concepts}"
                compared += 1
    assert compared >= 6
