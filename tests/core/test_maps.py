import pytest
import torch

from ca_core.maps import (
    ConceptMaps,
    colourise,
    label_images,
    normalise,
    overlay,
    token_grid_maps,
    token_maps_to_pixels,
)

TP = 16  # pixels per token side (Flux: 8 px latents, 2x2 patches)


def _ramp(h, w, along):
    """A [1, 1, h, w] token grid whose value is the column (along="x") or row (along="y") index."""
    rows, cols = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    return (cols if along == "x" else rows)[None, None]


def _expected_ramp(pixels, tokens):
    """Bilinear (align_corners=False) upsampling of 0, 1, ..., tokens-1 at TP px/token, per pixel."""
    x = (torch.arange(pixels, dtype=torch.float32) + 0.5) / TP - 0.5
    return x.clamp(0, tokens - 1)


def test_token_grid_maps_is_row_major():
    h, w = 2, 3
    scores = torch.zeros(1, 2, h * w)
    for r in range(h):
        for c in range(w):
            scores[0, 0, r * w + c] = 10 * r + c
    scores[0, 1] = -scores[0, 0]
    grid = token_grid_maps(scores, (h, w))
    assert grid.shape == (1, 2, h, w)
    for r in range(h):
        for c in range(w):
            assert grid[0, 0, r, c] == 10 * r + c
            assert grid[0, 1, r, c] == -(10 * r + c)


def test_token_grid_maps_rejects_a_wrong_token_count():
    with pytest.raises(ValueError, match="7 image tokens do not form a 2x3 grid"):
        token_grid_maps(torch.zeros(1, 1, 7), (2, 3))


@pytest.mark.parametrize("h, w", [(2, 3), (3, 2)])
@pytest.mark.parametrize("corner", ["top_left", "top_right", "bottom_left"])
def test_orientation_survives_grid_and_upsampling(h, w, corner):
    r, c = {"top_left": (0, 0), "top_right": (0, w - 1), "bottom_left": (h - 1, 0)}[corner]
    scores = torch.zeros(1, 1, h * w)
    scores[0, 0, r * w + c] = 1.0
    pixels = token_maps_to_pixels(token_grid_maps(scores, (h, w)), (h * TP, w * TP), TP)
    assert pixels.shape == (1, 1, h * TP, w * TP)
    hot = pixels[0, 0]
    ys = slice(0, TP // 2) if r == 0 else slice(h * TP - TP // 2, h * TP)
    xs = slice(0, TP // 2) if c == 0 else slice(w * TP - TP // 2, w * TP)
    # The outer half of the hot token is untouched by interpolation.
    assert torch.all(hot[ys, xs] == 1.0)
    # The heat's centre of mass lies inside the hot token.
    yy, xx = torch.meshgrid(torch.arange(h * TP, dtype=torch.float32), torch.arange(w * TP, dtype=torch.float32),
                            indexing="ij")
    cy, cx = (hot * yy).sum() / hot.sum(), (hot * xx).sum() / hot.sum()
    assert r * TP <= cy < (r + 1) * TP and c * TP <= cx < (c + 1) * TP
    # Far corners stay cold.
    far_y = h * TP - 1 if r == 0 else 0
    far_x = w * TP - 1 if c == 0 else 0
    assert hot[far_y, far_x] == 0.0


def test_output_is_the_image_size_and_cropped_not_resized():
    # 40x72 pixels at 16 px/token need a 3x5 grid that covers 48x80: crop the bottom/right.
    maps_x, maps_y = _ramp(3, 5, "x"), _ramp(3, 5, "y")
    out_x = token_maps_to_pixels(maps_x, (40, 72), TP)
    out_y = token_maps_to_pixels(maps_y, (40, 72), TP)
    assert out_x.shape == (1, 1, 40, 72) and out_y.shape == (1, 1, 40, 72)
    assert out_x.dtype == torch.float32
    torch.testing.assert_close(out_x[0, 0], _expected_ramp(72, 5).expand(40, 72))
    torch.testing.assert_close(out_y[0, 0], _expected_ramp(40, 3)[:, None].expand(40, 72))


def test_grid_short_by_one_token_repeats_the_edge():
    # 40 px need 3 rows of 16 px tokens but the grid has 2 (the VAE dropped the last pixels).
    out_y = token_maps_to_pixels(_ramp(2, 3, "y"), (40, 48), TP)
    assert out_y.shape == (1, 1, 40, 48)
    torch.testing.assert_close(out_y[0, 0], _expected_ramp(40, 2)[:, None].expand(40, 48))
    assert torch.all(out_y[0, 0, 24:] == 1.0)  # past the last row's centre: the last row, repeated
    # Same on the right: 3 columns needed for 40 px, 2 given.
    out_x = token_maps_to_pixels(_ramp(2, 2, "x"), (32, 40), TP)
    torch.testing.assert_close(out_x[0, 0], _expected_ramp(40, 2).expand(32, 40))


@pytest.mark.parametrize("grid, image", [((1, 3), (40, 48)), ((3, 1), (48, 40)), ((2, 2), (64, 64))])
def test_grid_short_by_more_than_one_token_is_an_error(grid, image):
    with pytest.raises(ValueError, match="cannot cover"):
        token_maps_to_pixels(torch.zeros(1, 1, *grid), image, TP)


def test_half_precision_maps_come_back_as_float32():
    out = token_maps_to_pixels(torch.ones(1, 2, 2, 2, dtype=torch.bfloat16), (20, 32), TP)
    assert out.dtype == torch.float32 and out.shape == (1, 2, 20, 32)


def _two_images():
    maps = torch.zeros(2, 2, 4, 4)
    maps[0, 0] = torch.linspace(1, 3, 16).reshape(4, 4)  # range 1..3
    maps[0, 1] = torch.linspace(0, 10, 16).reshape(4, 4)  # range 0..10
    maps[1, 0] = torch.linspace(-5, -4, 16).reshape(4, 4)
    maps[1, 1] = torch.linspace(-6, -5.5, 16).reshape(4, 4)
    return maps


def test_normalise_per_concept():
    maps = _two_images()
    out = normalise(maps, "per_concept")
    assert out.shape == maps.shape
    for b in range(2):
        for k in range(2):
            assert out[b, k].min() == pytest.approx(0.0, abs=1e-6)
            assert out[b, k].max() == pytest.approx(1.0, abs=1e-6)
    torch.testing.assert_close(out[0, 0], (maps[0, 0] - 1) / 2)


def test_normalise_joint_keeps_concepts_comparable_within_an_image():
    maps = _two_images()
    out = normalise(maps, "joint")
    torch.testing.assert_close(out[0], maps[0] / 10)  # image 0 spans 0..10 over both concepts
    torch.testing.assert_close(out[1], (maps[1] + 6) / 2)  # image 1 spans -6..-4
    assert out[0, 0].max() == pytest.approx(0.3)


def test_normalise_none_is_identity():
    maps = _two_images()
    assert torch.equal(normalise(maps, "none"), maps)


def test_normalise_default_is_per_concept():
    maps = _two_images()
    assert torch.equal(normalise(maps), normalise(maps, "per_concept"))


def test_normalise_constant_map_is_finite():
    out = normalise(torch.full((1, 1, 3, 3), 7.0))
    assert torch.isfinite(out).all() and torch.all(out == 0)


def test_normalise_unknown_mode():
    with pytest.raises(ValueError, match="unknown normalisation 'max'"):
        normalise(torch.zeros(1, 1, 2, 2), "max")


def test_colourise_shape_and_range():
    maps = torch.linspace(0, 1, 2 * 3 * 5 * 7).reshape(2, 3, 5, 7)
    rgb = colourise(maps)
    assert rgb.shape == (2, 3, 5, 7, 3)
    assert rgb.dtype == torch.float32
    assert rgb.min() >= 0 and rgb.max() <= 1
    # A perceptual map: low values dark, high values bright, and not grey.
    assert rgb[0, 0, 0, 0].sum() < 0.1
    assert rgb[-1, -1, -1, -1].sum() > 2.0
    assert not torch.allclose(rgb[..., 0], rgb[..., 2])


def test_colourise_clamps_and_takes_a_bare_map():
    maps = torch.tensor([[-1.0, 0.0], [1.0, 3.0]])
    rgb = colourise(maps)
    assert rgb.shape == (2, 2, 3)
    assert torch.equal(rgb[0, 0], rgb[0, 1])
    assert torch.equal(rgb[1, 0], rgb[1, 1])
    assert not torch.equal(rgb[0, 0], rgb[1, 1])


def test_overlay_blends_and_drops_alpha():
    image = torch.full((1, 4, 6, 4), 0.2)  # RGBA
    heat = torch.full((1, 4, 6, 3), 1.0)
    out = overlay(image, heat, alpha=0.25)
    assert out.shape == (1, 4, 6, 3)
    torch.testing.assert_close(out, torch.full((1, 4, 6, 3), 0.75 * 0.2 + 0.25))


def test_overlay_size_mismatch():
    with pytest.raises(ValueError, match="image is 6x4 but the maps are 4x6"):
        overlay(torch.zeros(1, 4, 6, 3), torch.zeros(1, 6, 4, 3))


def test_concept_maps_selects_a_space_and_upsamples_it():
    out_maps = torch.zeros(1, 2, 2, 3)
    cross = torch.ones(1, 2, 2, 3)
    cm = ConceptMaps(names=["a", "b"], maps=out_maps, cross_attention_maps=cross, image_size=(30, 40),
                     token_pixels=TP, space="cross_attention")
    assert cm.selected() is cross
    assert cm.selected("output") is out_maps
    assert cm.pixel_maps().shape == (1, 2, 30, 40)
    assert torch.all(cm.pixel_maps() == 1) and torch.all(cm.pixel_maps("output") == 0)


def test_maps_of_both_prompts_are_laid_out_prompt_by_prompt_and_labelled():
    maps = torch.rand(4, 2, 2, 3)  # 2 images x 2 prompts
    cm = ConceptMaps(names=["dog", "sky"], maps=maps, cross_attention_maps=maps, image_size=(32, 48),
                     token_pixels=TP, prompts=("positive", "negative"))
    assert cm.images == 2
    assert cm.labels() == ["dog (positive)", "sky (positive)", "dog (positive)", "sky (positive)",
                           "dog (negative)", "sky (negative)", "dog (negative)", "sky (negative)"]
    one = ConceptMaps(names=["dog", "sky"], maps=maps[:2], cross_attention_maps=maps[:2], image_size=(32, 48),
                      token_pixels=TP)
    assert one.labels() == ["dog", "sky", "dog", "sky"]  # positive only: the names as typed
    with pytest.raises(ValueError, match="3 map sets do not divide among the prompts"):
        ConceptMaps(names=["dog", "sky"], maps=maps[:3], cross_attention_maps=maps[:3], image_size=(32, 48),
                    token_pixels=TP, prompts=("positive", "negative"))


def test_label_images_writes_the_text_top_left_and_leaves_the_rest_exact():
    images = torch.rand(2, 96, 128, 3)
    labelled = label_images(images, ["dog", "traffic light"])
    changed = (labelled != images).any(dim=-1)
    for image in changed:
        rows, cols = image.nonzero(as_tuple=True)
        assert len(rows) > 50 and rows.max() < 32 and cols.min() == 0
    assert changed[1].sum() > changed[0].sum()  # the longer name takes a longer band
    assert torch.equal(labelled[~changed], images[~changed])  # every other pixel keeps its exact value
    # light text on a black band
    assert ((labelled > 0.9).all(dim=-1) & changed).any() and ((labelled == 0).all(dim=-1) & changed).any()
    with pytest.raises(ValueError, match="1 labels for 2 images"):
        label_images(images, ["dog"])


def test_the_legend_draws_the_colormap_from_low_to_high_at_the_bottom_left():
    images = torch.full((1, 96, 128, 3), 0.5)
    plain = label_images(images, ["dog"])
    with_legend = label_images(images, ["dog"], legend=True)
    added = (with_legend != plain).any(dim=-1)[0]
    rows, cols = added.nonzero(as_tuple=True)
    assert rows.min() > 96 // 2 and rows.max() == 95 and cols.min() == 0 and cols.max() < 128 * 3 // 4
    # the bar's row: the colormap's own colours, dark (low) on the left and bright (high) on the right
    bar = colourise(torch.linspace(0, 1, 32))
    row = with_legend[0, rows.max() - 3]
    brightness = row.sum(dim=-1)
    bar_columns = [c for c in range(128) if not torch.equal(row[c], torch.zeros(3))
                   and any(torch.allclose(row[c], colour, atol=2 / 255) for colour in bar)]
    assert len(bar_columns) >= 128 // 4 - 2
    assert brightness[bar_columns[0]] < 0.3 < 2.0 < brightness[bar_columns[-1]]
