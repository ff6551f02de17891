import pytest
import torch

from ca_core.masks import MASK_METHODS, concept_mask, refine_mask


def _three_stripes(h=6, w=9):
    """[1, 3, h, w]: concept k is strongest in the k-th vertical third."""
    maps = torch.full((1, 3, h, w), 0.1)
    third = w // 3
    for k in range(3):
        maps[0, k, :, k * third:(k + 1) * third] = 0.9
    return maps


def _single(mask_2d):
    """A one-concept [1, 1, H, W] map that is 1 on the mask and 0 elsewhere."""
    return mask_2d.float()[None, None]


def _square(size=21, side=5):
    m = torch.zeros(size, size)
    lo = (size - side) // 2
    m[lo:lo + side, lo:lo + side] = 1
    return m


def test_argmax_picks_the_pixels_a_selected_concept_wins():
    maps = _three_stripes()
    mask = concept_mask(maps, [1], method="argmax")
    expected = torch.zeros(1, 6, 9)
    expected[..., 3:6] = 1
    assert torch.equal(mask, expected)


def test_argmax_union_of_two_concepts():
    mask = concept_mask(_three_stripes(), [0, 2], method="argmax")
    expected = torch.ones(1, 6, 9)
    expected[..., 3:6] = 0
    assert torch.equal(mask, expected)


def test_argmax_compares_against_unselected_concepts():
    # Concept 0 is above its own mean everywhere on the left, but concept 1 beats it in the middle.
    maps = torch.zeros(1, 2, 1, 4)
    maps[0, 0] = torch.tensor([5.0, 4.0, 3.0, 0.0])
    maps[0, 1] = torch.tensor([0.0, 9.0, 0.0, 1.0])
    assert concept_mask(maps, [0], method="argmax").flatten().tolist() == [1, 0, 1, 0]


def test_mean_threshold_is_above_the_maps_own_mean():
    maps = torch.zeros(1, 2, 2, 4)
    maps[0, 0] = torch.tensor([[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]])  # mean 3.5
    maps[0, 1] = 100.0  # a larger unselected concept must not matter
    mask = concept_mask(maps, [0], method="mean_threshold")
    assert mask.tolist() == [[[0, 0, 0, 0], [1, 1, 1, 1]]]


def test_mean_threshold_union():
    maps = torch.zeros(1, 2, 1, 4)
    maps[0, 0] = torch.tensor([1.0, 0.0, 0.0, 0.0])
    maps[0, 1] = torch.tensor([0.0, 0.0, 0.0, 1.0])
    assert concept_mask(maps, [0, 1], method="mean_threshold").flatten().tolist() == [1, 0, 0, 1]


def test_otsu_splits_a_bimodal_map_between_its_modes():
    g = torch.Generator().manual_seed(0)
    low = 0.15 + 0.05 * torch.rand(16, 16, generator=g)
    high = 0.40 + 0.05 * torch.rand(16, 16, generator=g)
    region = torch.zeros(16, 16, dtype=torch.bool)
    region[4:12, 2:10] = True
    m = torch.where(region, high, low)
    m[0, 0], m[15, 15] = 0.0, 1.0  # outliers stretch the 0..1 scale: a fixed 0.5 misses the modes
    maps = m[None, None]
    otsu = concept_mask(maps, [0], method="otsu")
    assert otsu.shape == (1, 16, 16)
    expected = region.clone()
    expected[15, 15] = True
    assert torch.equal(otsu[0].bool(), expected)
    assert concept_mask(maps, [0], method="threshold", threshold=0.5).sum() == 1


def test_threshold_is_on_the_map_scaled_to_0_1():
    maps = (torch.arange(10, dtype=torch.float32) * 3 + 7).reshape(1, 1, 1, 10)  # 7..34
    mask = concept_mask(maps, [0], method="threshold", threshold=0.7)
    # scaled values k/9: k/9 >= 0.7 for k >= 7
    assert mask.flatten().tolist() == [0] * 7 + [1] * 3
    assert concept_mask(maps, [0], method="threshold", threshold=0.0).sum() == 10


def test_soft_is_the_scaled_map():
    maps = torch.tensor([[2.0, 4.0], [6.0, 10.0]]).reshape(1, 1, 2, 2)
    mask = concept_mask(maps, [0], method="soft")
    torch.testing.assert_close(mask, torch.tensor([[[0.0, 0.25], [0.5, 1.0]]]))


def test_soft_union_is_the_pixelwise_max():
    maps = torch.zeros(1, 2, 1, 3)
    maps[0, 0] = torch.tensor([0.0, 0.5, 1.0])
    maps[0, 1] = torch.tensor([1.0, 0.0, 0.0])
    torch.testing.assert_close(concept_mask(maps, [0, 1], method="soft"), torch.tensor([[[1.0, 0.5, 1.0]]]))


@pytest.mark.parametrize("method", MASK_METHODS)
def test_every_method_gives_a_batch_of_float_masks_in_0_1(method):
    g = torch.Generator().manual_seed(1)
    maps = torch.randn(2, 4, 12, 10, generator=g) * 5
    mask = concept_mask(maps, [1, 3], method=method, blur=0.5)
    assert mask.shape == (2, 12, 10)
    assert mask.dtype == torch.float32
    assert mask.min() >= 0 and mask.max() <= 1
    assert 0 < mask.sum() < mask.numel()


def test_images_in_a_batch_are_masked_independently():
    maps = torch.full((2, 2, 1, 3), 0.5)
    maps[0, 0] = torch.tensor([1.0, 0.0, 0.0])
    maps[1, 0] = torch.tensor([0.0, 0.0, 1.0])
    mask = concept_mask(maps, [0], method="argmax")
    assert mask.tolist() == [[[1, 0, 0]], [[0, 0, 1]]]


def test_grow_dilates_and_negative_grow_erodes():
    maps = _single(_square())
    plain = concept_mask(maps, [0], method="threshold")
    grown = concept_mask(maps, [0], method="threshold", grow=1)
    shrunk = concept_mask(maps, [0], method="threshold", grow=-1)
    assert plain.sum() == 25
    assert 45 <= grown.sum() <= 49  # a radius-1 disc: the 5x5 square plus (at least) its four sides
    assert torch.all(grown >= plain)
    assert shrunk.sum() == 9  # the inner 3x3
    assert torch.all(shrunk <= plain)
    assert shrunk[0, 9:12, 9:12].sum() == 9
    assert concept_mask(maps, [0], method="threshold", grow=3).sum() > grown.sum()
    assert concept_mask(maps, [0], method="threshold", grow=-3).sum() == 0


def test_blur_feathers_the_edge():
    maps = _single(_square(size=31))
    hard = concept_mask(maps, [0], method="threshold")
    soft = concept_mask(maps, [0], method="threshold", blur=1.5)
    assert torch.all((hard == 0) | (hard == 1))
    feathered = (soft > 0) & (soft < 1)
    assert feathered.sum() > 25
    assert feathered[0, 15, 12] and feathered[0, 15, 13] and feathered[0, 15, 17] and feathered[0, 15, 18]
    assert soft[0, 0, 0] == 0  # far from the square
    assert float(soft.sum()) == pytest.approx(25.0, rel=1e-3)  # a blur moves mass, it does not add it


def _ring_and_notch():
    m = torch.zeros(16, 24)
    m[2:10, 2:10] = 1
    m[4:8, 4:8] = 0  # an enclosed hole
    m[0:10, 13:22] = 1
    m[0:6, 15:20] = 0  # a notch open to the top border
    return m


def test_fill_holes_fills_an_enclosed_hole_but_not_a_notch():
    m = _ring_and_notch()
    filled = concept_mask(_single(m), [0], method="threshold", fill_holes=True)[0]
    assert torch.all(filled[4:8, 4:8] == 1)
    assert torch.all(filled[0:6, 15:20] == 0)
    assert torch.all(filled[10:, :] == 0) and torch.all(filled[:, 10:13] == 0)
    assert filled.sum() == m.sum() + 16
    unfilled = concept_mask(_single(m), [0], method="threshold")[0]
    assert torch.equal(unfilled, m)


def test_fill_holes_does_not_apply_to_soft_masks():
    m = _ring_and_notch()
    soft = concept_mask(_single(m), [0], method="soft", fill_holes=True)[0]
    assert torch.all(soft[4:8, 4:8] == 0)


def test_invert():
    maps = _three_stripes()
    mask = concept_mask(maps, [1], method="argmax")
    inverted = concept_mask(maps, [1], method="argmax", invert=True)
    assert torch.equal(inverted, 1 - mask)
    soft = concept_mask(maps, [0], method="soft", blur=1.0)
    torch.testing.assert_close(concept_mask(maps, [0], method="soft", blur=1.0, invert=True), 1 - soft)


def test_refine_mask_order_fill_then_grow():
    # A hole 3 px wide inside a ring: eroding first would open it; filling first keeps it solid.
    m = torch.zeros(1, 15, 15)
    m[0, 2:13, 2:13] = 1
    m[0, 6:9, 6:9] = 0
    out = refine_mask(m, grow=-1, fill_holes=True)
    assert torch.all(out[0, 6:9, 6:9] == 1)


def test_unknown_method():
    with pytest.raises(ValueError, match="unknown mask method 'kmeans'"):
        concept_mask(_three_stripes(), [0], method="kmeans")


def test_empty_selection():
    with pytest.raises(ValueError, match="no concept selected"):
        concept_mask(_three_stripes(), [], method="argmax")


def test_min_region_drops_islands_smaller_than_it_and_keeps_the_rest_exactly():
    m = _square()  # a 5x5 object: 25 pixels
    m[0, 0] = m[0, 1] = 1  # a 2-pixel stray island in a corner
    m[20, 20] = 1  # and a 1-pixel one
    maps = _single(m)
    kept_all = concept_mask(maps, [0], method="threshold")
    assert kept_all.sum() == 28
    cleaned = concept_mask(maps, [0], method="threshold", min_region=3)
    torch.testing.assert_close(cleaned[0], _square())
    assert concept_mask(maps, [0], method="threshold", min_region=2).sum() == 27  # an island of exactly 2 stays
    assert concept_mask(maps, [0], method="threshold", min_region=26).sum() == 0  # the object too is under 26
    # drawn before the feather, so a dropped island leaves no trace in the blurred mask
    blurred = concept_mask(maps, [0], method="threshold", min_region=3, blur=1.0)
    assert blurred[0, 0, 0] == 0 and blurred[0, 10, 10] > 0.9


def test_min_region_leaves_soft_masks_alone_and_refuses_a_negative_size_by_name():
    maps = _single(_square())
    torch.testing.assert_close(concept_mask(maps, [0], method="soft", min_region=1000),
                               concept_mask(maps, [0], method="soft"))
    with pytest.raises(ValueError, match="min_region"):
        concept_mask(maps, [0], method="threshold", min_region=-1)
