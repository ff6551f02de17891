import math

import cv2
import numpy as np
import pytest
import torch

from ca_core import masks
from ca_core.masks import MASK_METHODS, concept_mask, refine_mask, split_objects


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


# Grow, shrink and blur at any radius: the fast paths against OpenCV's full-size references.

def _refined(mask: np.ndarray, **options) -> np.ndarray:
    return refine_mask(torch.from_numpy(mask)[None], **options)[0].numpy()


def _blobs(rng, h, w):
    smooth = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 8)
    return (smooth > np.median(smooth)).astype(np.float32)


def _shapes_over_the_border(rng, h, w):
    """Discs and rectangles, some centred outside the image, so the mask touches its border."""
    m = np.zeros((h, w), np.uint8)
    for _ in range(4):
        centre = (int(rng.integers(-10, w + 10)), int(rng.integers(-10, h + 10)))
        cv2.circle(m, centre, int(rng.integers(5, 40)), 1, -1)
        x, y = int(rng.integers(-20, w)), int(rng.integers(-20, h))
        cv2.rectangle(m, (x, y), (x + int(rng.integers(5, 60)), y + int(rng.integers(5, 60))), 1, -1)
    return m.astype(np.float32)


def _sparse_noise(rng, h, w):
    return (rng.random((h, w)) < 0.01).astype(np.float32)


def _thin_lines(rng, h, w):
    m = np.zeros((h, w), np.uint8)
    for _ in range(5):
        ends = rng.integers(0, [w, h], size=(2, 2))
        cv2.line(m, tuple(map(int, ends[0])), tuple(map(int, ends[1])), 1, 1)
    return m.astype(np.float32)


def _smooth_soft(rng, h, w):
    smooth = cv2.GaussianBlur(rng.random((h, w)).astype(np.float32), (0, 0), 6)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min())


def _token_map_soft(rng, h, w):
    """What the soft method gives: a map over 16-pixel tokens, upsampled bilinearly and scaled to 0..1."""
    tokens = rng.random((-(-h // 16), -(-w // 16))).astype(np.float32)
    up = cv2.resize(tokens, (tokens.shape[1] * 16, tokens.shape[0] * 16), interpolation=cv2.INTER_LINEAR)[:h, :w]
    return (up - up.min()) / (up.max() - up.min())


def _grating(rng, h, w):
    """Stripes 31 pixels apart, about the downscaled blur's cell width at sigma 256: the worst case found (aliasing)."""
    return np.tile((np.arange(w) % 31 < 15).astype(np.float32), (h, 1))


BINARY_MASKS = (_blobs, _shapes_over_the_border, _sparse_noise, _thin_lines)
SOFT_MASKS = (_smooth_soft, _token_map_soft)
SIZES = ((96, 160), (150, 101))  # non-square, neither a multiple of the cells


def _disc_morph(mask: np.ndarray, radius: float, grow: int) -> np.ndarray:
    """The exact dilation (grow > 0) or erosion by the disc of real radius `radius`, OpenCV's borders."""
    reach = int(radius)
    offsets = np.arange(-reach, reach + 1)
    disc = (offsets[:, None] ** 2 + offsets[None, :] ** 2 <= radius * radius).astype(np.uint8)
    return cv2.dilate(mask, disc) if grow > 0 else cv2.erode(mask, disc)


def _between(mask, low, high):
    return bool(np.all(low <= mask) and np.all(mask <= high))


@pytest.mark.parametrize("make", BINARY_MASKS)
@pytest.mark.parametrize("size", SIZES)
def test_binary_grow_and_shrink_match_the_ellipse_kernel(make, size):
    rng = np.random.default_rng(len(make.__name__) + size[0])
    differing, changed = 0, 0
    for grow in (9, 12, 20, 31, 45, -9, -12, -20, -31, -45):
        mask = make(rng, *size)
        fast = _refined(mask, grow=grow)
        reference = masks._grow_reference(mask, grow)
        # The distance disc of radius r + 3/8 lies between the ellipse kernels of radius r - 1 and r + 1.
        step = 1 if grow > 0 else -1
        narrower, wider = masks._grow_reference(mask, grow - step), masks._grow_reference(mask, grow + step)
        assert _between(fast, *((narrower, wider) if grow > 0 else (wider, narrower))), grow
        assert np.sum(fast != reference) <= 0.01 * mask.size, grow
        differing += int(np.sum(fast != reference))
        changed += int(np.sum(reference != mask))
    assert differing <= 0.03 * changed  # measured: 0.2 % of the changed pixels over all these masks


@pytest.mark.parametrize("grow", [1, 3, 8, -1, -3, -8])
def test_small_grows_are_the_ellipse_kernel_itself(grow):
    rng = np.random.default_rng(grow + 10)
    for mask in (_blobs(rng, 64, 80), _smooth_soft(rng, 64, 80)):
        assert np.array_equal(_refined(mask, grow=grow), masks._grow_reference(mask, grow))


@pytest.mark.parametrize("radius", [9, 40, 100])
def test_grow_from_one_pixel_reaches_every_pixel_within_the_radius_and_no_farther(radius):
    size = 2 * radius + 21
    mask = np.zeros((size, size), np.float32)
    mask[size // 2, size // 2] = 1
    grown = _refined(mask, grow=radius)
    y, x = np.mgrid[:size, :size] - size // 2
    distance = np.hypot(y, x)
    assert np.all(grown[distance <= radius] == 1)
    assert np.all(grown[distance > radius + 0.5] == 0)
    assert math.pi * radius ** 2 < grown.sum() < math.pi * (radius + 0.5) ** 2


@pytest.mark.parametrize("radius", [9, 30, 77])
def test_shrink_removes_a_disc_no_wider_than_its_radius_and_leaves_the_core_of_a_wider_one(radius):
    size = 2 * radius + 31
    y, x = np.mgrid[:size, :size] - size // 2
    distance = np.hypot(y, x)
    for disc_radius in (radius - 3, radius - 0.5, radius):
        assert _refined((distance <= disc_radius).astype(np.float32), grow=-radius).sum() == 0
    core = _refined((distance <= radius + 5).astype(np.float32), grow=-radius)
    assert np.all(core[distance <= 4] == 1) and np.all(core[distance > 6] == 0)


def test_the_image_border_neither_grows_nor_shrinks_the_mask():
    left_half = np.zeros((90, 100), np.float32)
    left_half[:, :50] = 1
    shrunk = _refined(left_half, grow=-30)
    assert np.all(shrunk[:, :20] == 1) and np.all(shrunk[:, 20:] == 0)  # eaten from x = 50 only
    grown = _refined(left_half, grow=30)
    assert np.all(grown[:, :80] == 1) and np.all(grown[:, 80:] == 0)  # 30 beyond the last column, 49
    for level in (0.0, 0.7, 1.0):
        flat = np.full((70, 90), level, np.float32)
        for grow in (-60, -20, 20, 60):
            assert np.array_equal(_refined(flat, grow=grow), flat), (level, grow)


@pytest.mark.parametrize("make", SOFT_MASKS)
@pytest.mark.parametrize("size", SIZES)
def test_soft_grow_and_shrink_lie_between_discs_a_cell_diagonal_narrower_and_wider(make, size):
    rng = np.random.default_rng(len(make.__name__) + size[1])
    mask = make(rng, *size)
    for grow in (9, 16, 20, 33, 70, -9, -20, -33, -70):
        fast = _refined(mask, grow=grow)
        slack = (masks._soft_grow_cell(abs(grow)) - 1) * math.sqrt(2)
        reach = abs(grow) + masks.GROW_MARGIN
        narrower, wider = _disc_morph(mask, reach - slack, grow), _disc_morph(mask, reach + slack, grow)
        assert _between(fast, *((narrower, wider) if grow > 0 else (wider, narrower))), grow
        # and so between the ellipse kernels a cell diagonal and a pixel narrower and wider
        step = 1 if grow > 0 else -1
        inner = masks._grow_reference(mask, step * math.floor(reach - slack - 0.5))
        outer = masks._grow_reference(mask, step * math.ceil(reach + slack))
        assert _between(fast, *((inner, outer) if grow > 0 else (outer, inner))), grow
        assert np.abs(fast - masks._grow_reference(mask, grow)).mean() < 0.01, grow


def test_a_soft_mask_of_only_zeros_and_ones_grows_as_a_binary_mask():
    mask = _blobs(np.random.default_rng(3), 80, 120)
    soft = concept_mask(torch.from_numpy(mask)[None, None], [0], method="soft", grow=25)[0].numpy()
    assert np.array_equal(soft, _refined(mask, grow=25))
    assert np.array_equal(soft, masks._grow_binary(mask, 25))


@pytest.mark.parametrize("size", SIZES + ((40, 40),))
def test_large_blurs_match_the_full_gaussian(size):
    rng = np.random.default_rng(size[0])
    worst = 0.0
    for make in BINARY_MASKS + SOFT_MASKS + (_grating,):
        mask = make(rng, *size)
        for sigma in (16, 23.5, 40, 64, 100, 256):
            fast = _refined(mask, blur=sigma)
            worst = max(worst, float(np.abs(fast - masks._blur_reference(mask, sigma)).max()))
    assert worst <= 0.01  # measured up to 0.006, on stripes as far apart as the cells


@pytest.mark.parametrize("sigma", [0.5, 3.0, 15.5])
def test_small_blurs_are_the_full_gaussian_itself(sigma):
    mask = _shapes_over_the_border(np.random.default_rng(7), 70, 90)
    assert np.array_equal(_refined(mask, blur=sigma), masks._blur_reference(mask, sigma))


@pytest.mark.parametrize("sigma", [16, 30])
def test_a_large_blur_keeps_the_mass_of_a_mask_away_from_the_border_and_a_flat_mask_flat(sigma):
    size = 301
    y, x = np.mgrid[:size, :size] - size // 2
    disc = (np.hypot(y, x) <= 20).astype(np.float32)  # 130 pixels from the border: beyond 4 sigma
    blurred = _refined(disc, blur=sigma)
    assert blurred.sum() == pytest.approx(disc.sum(), rel=2e-3)
    assert blurred[size // 2, size // 2] < 1 and blurred[size // 2, size // 2 + 3 * sigma] > 0
    flat = np.full((50, 70), 0.6, np.float32)
    np.testing.assert_allclose(_refined(flat, blur=sigma), flat, atol=1e-5)


def test_the_nodes_largest_grow_and_blur_never_take_the_full_size_kernels(monkeypatch):
    """The full-size ellipse kernel at radius 512 takes 20 s at 1024x1024, the full Gaussian at sigma 256 about 3 s."""
    full_grow, full_blur = masks._grow_reference, masks._blur_reference

    def small_grow_only(mask, grow):
        assert abs(grow) <= masks.KERNEL_GROW_MAX
        return full_grow(mask, grow)

    def small_blur_only(mask, sigma):
        assert sigma < masks.FULL_BLUR_MAX_SIGMA
        return full_blur(mask, sigma)

    monkeypatch.setattr(masks, "_grow_reference", small_grow_only)
    monkeypatch.setattr(masks, "_blur_reference", small_blur_only)
    rng = np.random.default_rng(5)
    for mask in (_blobs(rng, 1024, 1024), _token_map_soft(rng, 1024, 1024)):
        for grow in (512, -512):
            out = _refined(mask, grow=grow, blur=256.0)
            assert out.shape == (1024, 1024) and 0 <= out.min() and out.max() <= 1


def test_presence_keeps_a_concept_only_where_its_raw_map_is_in_the_upper_half_of_its_range():
    raw = torch.zeros(1, 2, 4, 4)
    raw[0, 0, :, 0] = 10.0  # concept 0 strong in column 0, weak elsewhere
    raw[0, 0, :, 1] = 4.0
    raw[0, 1, :, 3] = 2.0  # concept 1 strong in column 3 (its own range is what counts)
    present = masks.concept_presence(raw)
    assert present[0, 0].any(dim=0).tolist() == [True, False, False, False]
    assert present[0, 1].any(dim=0).tolist() == [False, False, False, True]


def test_with_presence_a_concept_does_not_take_the_background_it_wins_by_default():
    """Two objects and no "background" concept: the softmax hands the background to one of them, which the
    argmax alone would mask; presence keeps the object's own region."""
    winners = torch.zeros(1, 2, 1, 6)
    winners[0, 0] = torch.tensor([0.9, 0.9, 0.1, 0.8, 0.8, 0.8])  # object 0 at 0-1, and wins the background 3-5
    winners[0, 1] = 1 - winners[0, 0]
    raw = torch.zeros(1, 2, 1, 6)
    raw[0, 0] = torch.tensor([5.0, 5.0, 0.0, 1.0, 1.0, 1.0])
    raw[0, 1] = torch.tensor([0.0, 0.0, 5.0, 0.0, 0.0, 0.0])
    present = masks.concept_presence(raw)
    assert concept_mask(winners, [0], method="argmax")[0, 0].tolist() == [1, 1, 0, 1, 1, 1]
    assert concept_mask(winners, [0], method="argmax", present=present)[0, 0].tolist() == [1, 1, 0, 0, 0, 0]
    for method in ("otsu", "threshold", "mean_threshold"):
        assert concept_mask(winners, [0], method=method, present=present)[0, 0, 3:].tolist() == [0, 0, 0], method
    assert torch.equal(concept_mask(winners, [0], method="soft", present=present), concept_mask(winners, [0], "soft"))


def test_presence_is_judged_per_frame_of_a_clip():
    """A clip's pixel maps are one [frames, K, H, W] batch: a frame where the concept is faint still gets its own
    upper half, as each frame's mask is that frame's."""
    raw = torch.zeros(2, 1, 1, 4)
    raw[0, 0, 0] = torch.tensor([10.0, 0.0, 0.0, 0.0])
    raw[1, 0, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0])  # frame 1: ten times fainter
    assert masks.concept_presence(raw)[:, 0, 0].tolist() == [[True, False, False, False], [False, False, False, True]]


def test_split_objects_gives_each_region_largest_first_with_its_own_feather():
    mask = torch.zeros(2, 64, 64)
    mask[0, 5:15, 5:15] = 1  # 100 px
    mask[0, 30:60, 30:60] = 1  # 900 px
    mask[1, 40:50, 10:30] = 1  # 200 px, the next image's
    objects, count = split_objects(mask)
    assert count == 3 and objects.shape == (3, 64, 64)
    assert [int(o.sum()) for o in objects] == [900, 100, 200]  # image by image, largest first
    assert torch.equal(objects[0] + objects[1], mask[0]) and torch.equal(objects[2], mask[1])
    # a feathered mask: each object keeps the soft pixels nearest it, and together they are the mask
    feathered = refine_mask(mask[:1], blur=3.0)
    objects, count = split_objects(feathered)
    assert count == 2 and torch.allclose(objects.sum(dim=0), feathered[0])
    assert float(objects[0, 45, 25]) > 0 and float(objects[1, 45, 25]) == 0  # the ring around the big square
    # one region keeps its whole feather
    alone, count = split_objects(refine_mask(mask[1:], blur=3.0))
    assert count == 1 and torch.allclose(alone[0], refine_mask(mask[1:], blur=3.0)[0])


def test_split_objects_of_an_empty_mask_is_one_empty_mask_and_zero():
    objects, count = split_objects(torch.zeros(2, 16, 24))
    assert count == 0 and objects.shape == (1, 16, 24) and not objects.any()


@pytest.mark.parametrize("images", [1, 3])
@pytest.mark.parametrize("invert", [False, True])
def test_refine_mask_writes_a_new_mask_and_leaves_its_input_alone(images, invert):
    """One image's mask is clamped and inverted in place of a copy: never in the caller's tensor."""
    soft = torch.rand(images, 20, 24, generator=torch.Generator().manual_seed(0)) * 1.5 - 0.25
    binary = soft > 0.5
    for mask, expected in ((soft, soft.clamp(0, 1)), (binary, binary.float())):
        before = mask.clone()
        got = masks.refine_mask(mask, invert=invert)
        assert torch.equal(mask, before)
        assert got.dtype == torch.float32 and torch.equal(got, 1 - expected if invert else expected)
