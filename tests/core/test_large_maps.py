"""The fast paths for large maps equal the straightforward computations: the argmax plane by plane, objects
written where the mask is not zero, the guided filter assembled strip by strip, and previews scaled down."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from ca_core import maps, masks, refine


def test_winning_is_torch_argmax_ties_included():
    values = torch.randint(0, 3, (2, 4, 33, 47)).float()  # many ties
    expected = values.argmax(dim=1, keepdim=True) == torch.tensor([1, 3])[:, None, None]
    assert torch.equal(masks.winning(values, [1, 3]), expected)


def straightforward_objects(mask: torch.Tensor) -> list[np.ndarray]:
    import cv2

    objects = []
    for m in mask.numpy():
        solid = (m >= 0.5).astype(np.uint8)
        count, labels, stats, _ = cv2.connectedComponentsWithStats(solid, connectivity=8)
        order = 1 + np.argsort(-stats[1:, cv2.CC_STAT_AREA], kind="stable")
        if count == 2:
            nearest = np.ones_like(labels)
        elif count > 2:
            _, zero = cv2.distanceTransformWithLabels(1 - solid, cv2.DIST_L2, 5, labelType=cv2.DIST_LABEL_PIXEL)
            of_zero = np.zeros(int(zero.max()) + 1, np.int32)
            of_zero[zero[solid == 1]] = labels[solid == 1]
            nearest = of_zero[zero]
        objects += [np.where(nearest == region, m, 0.0).astype(np.float32) for region in order[:count - 1]]
    return objects


def test_split_objects_equals_the_region_by_region_split():
    generator = torch.Generator().manual_seed(0)
    blobs = (F.avg_pool2d(torch.rand(3, 1, 64, 80, generator=generator), 7, 1, 3)[:, 0] > 0.55).float()
    feathered = masks.refine_mask(blobs, blur=2.0)
    feathered[2] = 0  # an image without objects
    for mask in (blobs, feathered):
        objects, count = masks.split_objects(mask)
        expected = straightforward_objects(mask)
        assert count == len(expected) > 2
        assert torch.equal(objects, torch.from_numpy(np.stack(expected)))


@pytest.mark.parametrize("size", [(256, 384), (96, 100)])  # whole coarse cells, and a last cell cut short
def test_guided_filter_in_strips_equals_whole_planes(size, monkeypatch):
    generator = torch.Generator().manual_seed(1)
    values = torch.rand(2, 3, *size, generator=generator)
    image = torch.rand(2, *size, 3, generator=generator)
    monkeypatch.setattr(refine, "STRIP_ROWS", 40)
    strips = refine.edge_aware_maps(values, image, 16)
    monkeypatch.setattr(refine, "STRIP_ROWS", 1 << 20)
    whole = refine.edge_aware_maps(values, image, 16)
    assert (strips - whole).abs().max() <= 1e-6  # the same weights; some widths vectorise the sums otherwise
    old = refine.guided_filter(values, image, 16, subsample=4).clamp(0, 1)  # the planes' range here is 0..1
    assert (strips - old.clamp(values.amin((-2, -1), True), values.amax((-2, -1), True))).abs().max() <= 1e-6
    guide = refine.edge_guide(image, 16)  # one guide for several map sets
    assert torch.equal(refine.edge_aware_maps(values, guide, 16), whole)


def test_preview_sized_keeps_small_images_and_shrinks_large_ones():
    small = torch.rand(2, 64, 96, 3)
    assert maps.preview_sized(small) is small
    large = torch.rand(2, 2048, 1024, 3)
    shrunk = maps.preview_sized(large)
    assert shrunk.shape == (2, 1024, 512, 3)
    assert torch.allclose(shrunk, F.avg_pool2d(large.movedim(-1, 1), 2).movedim(1, -1), atol=1e-6)
    assert maps.preview_sized(torch.rand(1, 4096, 3000)).shape == (1, 1024, 750)


def cumulative_window_sum(x: torch.Tensor, radius: int) -> torch.Tensor:
    return refine.box_sum(refine.box_sum(x, radius, -1), radius, -2)


def test_window_sum_on_the_cpu_is_the_running_sum_within_rounding():
    values = torch.rand(2, 5, 70, 131, generator=torch.Generator().manual_seed(2))
    for radius in (1, 4, 9):
        expected = cumulative_window_sum(values, radius)
        assert torch.allclose(refine.window_sum(values, radius), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("size,frames", [((256, 384), 1), ((200, 328), 1), ((128, 192), 3)])  # non-square, a cut
def test_masks_of_refined_maps_match_the_running_sum_filter_but_for_near_ties(size, frames, monkeypatch):
    """OpenCV's box sums round differently from the running sums: the refined maps agree within 1e-5, and the
    argmax masks differ only where two maps tie to that precision: in no pixel here, in 19 of 16.8 million at
    4096 x 4096 with 4 concepts (bench/large_images.py's maps; none with 2)."""
    generator = torch.Generator().manual_seed(3)
    tokens = (-(-size[0] // 16), -(-size[1] // 16))
    for concepts in (2, 4):
        token_maps = torch.rand(frames, concepts, *tokens, generator=generator).softmax(dim=1)
        pixel_maps = maps.token_maps_to_pixels(token_maps, size, 16)
        image = F.interpolate(torch.rand(frames, 3, size[0] // 8, size[1] // 8, generator=generator), size=size,
                              mode="nearest").movedim(1, -1)
        fast = refine.edge_aware_maps(pixel_maps, image, 16)
        monkeypatch.setattr(refine, "window_sum", cumulative_window_sum)
        reference = refine.edge_aware_maps(pixel_maps, image, 16)
        monkeypatch.undo()
        assert (fast - reference).abs().max() <= 1e-5
        differing = (masks.concept_mask(fast, [0]) != masks.concept_mask(reference, [0])).sum()
        assert differing == 0


def test_presence_and_pixel_maps_of_some_concepts_are_theirs_in_the_whole_set():
    token_maps = torch.randn(2, 4, 12, 20, generator=torch.Generator().manual_seed(4))
    concept_maps = maps.ConceptMaps(names=list("abcd"), maps=token_maps.softmax(dim=1),
                                    cross_attention_maps=token_maps.softmax(dim=1), image_size=(190, 320),
                                    token_pixels=16, raw_maps=token_maps)
    whole = concept_maps.pixel_maps(raw=True)
    assert torch.equal(concept_maps.pixel_maps(raw=True, concepts=[3, 1]), whole[:, [3, 1]])
    assert torch.equal(masks.concept_presence(whole[:, [3, 1]]), masks.concept_presence(whole)[:, [3, 1]])


def test_binary_masks_refine_as_bytes_as_they_did_as_floats():
    generator = torch.Generator().manual_seed(5)
    blobs = F.avg_pool2d(torch.rand(2, 1, 90, 70, generator=generator), 9, 1, 4)[:, 0] > 0.52
    for options in ({"grow": 5, "blur": 2.0}, {"grow": -3, "fill_holes": True, "min_region": 30}, {"grow": 20},
                    {"grow": -20, "invert": True}):
        assert torch.equal(masks.refine_mask(blobs, **options), masks.refine_mask(blobs.float(), **options))
