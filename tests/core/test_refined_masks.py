"""The argmax mask of edge-refined maps settled tile by tile (ca_core.refined_masks): the very mask cut from the
full-size refined maps (masks.concept_mask with concept_presence), with full-size work only along the edges."""

import pytest
import torch
import torch.nn.functional as F

from ca_core import refined_masks
from ca_core.maps import token_maps_to_pixels
from ca_core.masks import concept_mask, concept_presence
from ca_core.refine import coarse_maps, edge_aware_maps, edge_guide, refined_token_maps, shrink, token_range
from ca_core.refined_masks import Filtered, refined_argmax_mask

TOKEN = 16


def scene(tokens: tuple[int, int], concepts: int, seed: int, texture: float, on_tokens: bool = False):
    """Planted softmax maps (each object a block of tokens, overlapping, over noise) at pixel size (on_tokens: on
    their token grid), their raw scores, and an image of flat 32-pixel squares with `texture` noise on top."""
    generator = torch.Generator().manual_seed(seed)
    rows, columns = tokens
    raw = torch.randn(1, concepts, rows, columns, generator=generator) * 0.3
    for k in range(concepts - 1):
        top, left = int(torch.randint(0, rows // 2, (1,), generator=generator)), int(
            torch.randint(0, columns // 2, (1,), generator=generator))
        raw[0, k, top:top + rows // 2, left:left + columns // 2] += 2.0
    raw[0, -1] += 1.0
    size = (rows * TOKEN, columns * TOKEN)

    def pixels(maps):
        return F.interpolate(maps, size=size, mode="bilinear", align_corners=False)

    squares = torch.rand(1, 3, -(-size[0] // 32), -(-size[1] // 32), generator=generator)
    image = squares.repeat_interleave(32, dim=2).repeat_interleave(32, dim=3)[..., :size[0], :size[1]]
    image = (image + texture * torch.rand(image.shape, generator=generator)).clamp(0, 1).permute(0, 2, 3, 1)
    if on_tokens:
        return raw.softmax(dim=1), raw, image
    return pixels(raw.softmax(dim=1)), pixels(raw), image


def full_size_mask(maps, raw, image, selected, raw_concepts):
    """What Concept Mask cut before: every map refined at full size, then the argmax and the presence cut."""
    guide = edge_guide(image, TOKEN)
    present = torch.ones(maps.shape, dtype=torch.bool)
    if raw_concepts:
        shown = raw[:, raw_concepts]
        low, high = shown.amin(dim=(-2, -1), keepdim=True), shown.amax(dim=(-2, -1), keepdim=True)
        present[:, raw_concepts] = concept_presence(edge_aware_maps(shown, guide, TOKEN), (low, high))
    return concept_mask(edge_aware_maps(maps, guide, TOKEN), selected, "argmax", present=present) > 0.5


def tiled_mask(maps, raw, image, selected, raw_concepts):
    guide = edge_guide(image, TOKEN)
    raw_filtered = Filtered.of(guide, raw[:, raw_concepts]) if raw_concepts else None
    return refined_argmax_mask(guide, Filtered.of(guide, maps), selected, raw_filtered, raw_concepts)


@pytest.mark.parametrize(("tokens", "concepts", "selected", "raw_concepts", "texture"), [
    ((32, 32), 2, [0], [0], 0.0),  # whole tiles
    ((22, 30), 3, [0], [0], 0.2),  # tiles past the image's edge, a textured image
    ((24, 20), 4, [0, 2], [0, 2], 0.05),  # a union, each with its presence
    ((20, 26), 3, [1], [], 0.1),  # no presence cut (a mask of "background")
    ((18, 18), 1, [0], [0], 0.1),  # one concept
])
@pytest.mark.parametrize("seed", [0, 1])
def test_the_tiled_mask_is_the_full_size_one(tokens, concepts, selected, raw_concepts, texture, seed):
    maps, raw, image = scene(tokens, concepts, seed, texture)
    expected = full_size_mask(maps, raw, image, selected, raw_concepts)
    got = tiled_mask(maps, raw, image, selected, raw_concepts)
    assert got.shape == expected.shape and got.dtype == torch.bool
    assert 0 < int(expected.sum()) < expected.numel()  # a mask with edges, not a trivial one
    assert torch.equal(got, expected)


def test_only_the_tiles_along_the_edges_are_filtered_at_full_size(monkeypatch):
    maps, raw, image = scene((64, 64), 3, 0, 0.0)
    filtered = []  # (tiles, concepts filtered, concepts of the map set) per call
    values = refined_masks._ImageTiles.values

    def counting(self, ringed, within, tile_rows, tile_columns, concepts):
        filtered.append((len(tile_rows), len(concepts), within[0].shape[0]))
        return values(self, ringed, within, tile_rows, tile_columns, concepts)

    monkeypatch.setattr(refined_masks._ImageTiles, "values", counting)
    got = tiled_mask(maps, raw, image, [0], [0])
    assert torch.equal(got, full_size_mask(maps, raw, image, [0], [0]))
    tiles = (64 * TOKEN // (refined_masks.TILE_CELLS * 4)) ** 2
    edge_tiles = sum(n for n, _, of in filtered if of == 3)
    assert 0 < edge_tiles < tiles / 2, f"{edge_tiles} of {tiles} tiles filtered at full size"
    # a concept that cannot win on a tile is not filtered there: along an object's edge two of the three compete
    assert sum(n * k for n, k, of in filtered if of == 3) < 3 * edge_tiles


def test_an_image_of_part_cells_is_left_to_the_full_size_filter():
    maps, raw, image = scene((8, 8), 2, 0, 0.0)
    guide = edge_guide(image[:, :126, :126], TOKEN)  # 126 px: not a whole number of 4-pixel cells
    assert refined_argmax_mask(guide, Filtered.of(guide, maps[..., :126, :126]), [0]) is None


@pytest.mark.parametrize(("token_pixels", "crop", "straight"), [
    (16, 0, True), (8, 0, True), (12, 0, True),  # cells of 4, 2 and 3 pixels, none across a token's middle
    (10, 0, False),  # cells of 2 pixels across the middle of 5-pixel half tokens: from the pixel maps
    (16, 7, False),  # an image short of the token grid: from the pixel maps
])
def test_coarse_maps_are_the_pixel_maps_averaged(token_pixels, crop, straight):
    tokens = torch.randn(2, 3, 9, 7, generator=torch.Generator().manual_seed(0))
    size = (9 * token_pixels - crop, 7 * token_pixels)
    subsample = max(1, token_pixels // 4)
    averaged = shrink(token_maps_to_pixels(tokens, size, token_pixels), subsample)
    got = coarse_maps(tokens, size, token_pixels, subsample)
    assert got.shape == averaged.shape
    if straight:  # upsampled from the tokens: the same values within float rounding, not the same arithmetic
        assert not torch.equal(got, averaged)
        torch.testing.assert_close(got, averaged, rtol=2e-6, atol=1e-6)
    else:
        assert torch.equal(got, averaged)


@pytest.mark.parametrize(("tokens", "concepts", "selected", "crop"), [
    ((24, 20), 4, [0, 2], 0),  # coarse maps straight from the tokens
    ((22, 18), 3, [1], 8),  # an image 8 px short of the grid: coarse maps from the pixel maps
])
def test_the_tiled_mask_from_tokens_is_the_one_cut_from_refined_token_maps(tokens, concepts, selected, crop):
    """Concept Mask's two routes from the token grid: every map refined at full size (refined_token_maps, with the
    presence cut in the tokens' range) and the tiles settled from their coarse coefficients (Filtered.of_tokens)."""
    maps, raw, image = scene(tokens, concepts, 0, 0.1, on_tokens=True)
    size = (tokens[0] * TOKEN - crop, tokens[1] * TOKEN)
    image = image[:, :size[0]]
    guide = edge_guide(image, TOKEN)
    shown = [s for s in selected if s < concepts - 1]  # the last concept is the background: no presence cut
    present = torch.ones(1, concepts, *size, dtype=torch.bool)
    present[:, shown] = concept_presence(refined_token_maps(raw[:, shown], guide, size, TOKEN),
                                         token_range(raw[:, shown]))
    expected = concept_mask(refined_token_maps(maps, guide, size, TOKEN), selected, "argmax", present=present) > 0.5
    got = refined_argmax_mask(guide, Filtered.of_tokens(guide, maps, size, TOKEN), selected,
                              Filtered.of_tokens(guide, raw[:, shown], size, TOKEN), shown)
    assert 0 < int(expected.sum()) < expected.numel()
    assert torch.equal(got, expected)
