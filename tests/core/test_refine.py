"""Concept maps refined with the image as guide (ca_core.refine): they follow the image's edges."""

import pytest
import torch

from ca_core.refine import edge_aware_maps, guided_filter


def step_scene(size: int = 128, edge: int = 60, token: int = 16):
    """A guide split by a vertical edge at column `edge` (red | blue, colours of equal brightness), and maps
    that ramp across it over two tokens, as maps upsampled from a token grid do."""
    guide = torch.zeros(1, size, size, 3)
    guide[:, :, :edge] = torch.tensor([0.86, 0.08, 0.08])
    guide[:, :, edge:] = torch.tensor([0.10, 0.25, 0.90])
    columns = torch.arange(size, dtype=torch.float32)
    left = (1 - (columns - (edge - token)) / (2 * token)).clamp(0, 1).expand(size, size)
    return guide, torch.stack([left, 1 - left])[None]


def test_refined_maps_change_across_the_image_edge_not_across_the_tokens():
    guide, maps = step_scene()
    refined = edge_aware_maps(maps, guide, token_pixels=16)
    row = refined[0, 0, 64]
    assert float(maps[0, 0, 64, 58] - maps[0, 0, 64, 62]) < 0.15  # the plain maps: a slow ramp over the edge
    assert float(row[58] - row[62]) > 0.4  # refined: a step at the edge
    # away from the edge each side is flat, as the image is
    assert float(row[20:50].std()) < 0.05 and float(row[75:120].std()) < 0.05
    # the argmax now splits at the image's edge, within a pixel
    split = int((refined[0, 0, 64] > refined[0, 1, 64]).float().argmin())
    assert abs(split - 60) <= 1


def test_a_flat_image_leaves_a_flat_map_flat_and_keeps_its_range():
    maps = torch.rand(2, 3, 48, 64)
    flat = torch.full((2, 48, 64, 3), 0.5)
    constant = torch.full((2, 3, 48, 64), 0.25)
    assert torch.allclose(guided_filter(constant, flat, radius=8), constant, atol=1e-5)
    refined = edge_aware_maps(maps, torch.rand(2, 48, 64, 3), token_pixels=16)
    assert refined.shape == maps.shape and refined.dtype == maps.dtype
    low, high = maps.amin(dim=(-2, -1), keepdim=True), maps.amax(dim=(-2, -1), keepdim=True)
    assert bool(((refined >= low) & (refined <= high)).all())


def test_the_coarse_fit_agrees_with_the_full_resolution_one():
    guide, maps = step_scene(size=128)
    full = guided_filter(maps, guide, radius=16, subsample=1)
    coarse = guided_filter(maps, guide, radius=16, subsample=4)
    assert float((full - coarse).abs().mean()) < 0.03


def test_an_image_of_another_size_is_refused_naming_the_fix():
    with pytest.raises(ValueError, match="the image must be the one the maps were made for"):
        edge_aware_maps(torch.rand(1, 2, 64, 64), torch.rand(1, 32, 32, 3), token_pixels=16)


def test_shrunk_colours_are_the_pooled_colour_planes():
    """The guide's coarse colours through OpenCV's area resize: the average pool of the colour planes within float
    rounding; images that the cells do not tile are pooled as before."""
    from ca_core.refine import shrink, shrunk_colours

    for image, factor in ((torch.rand(2, 36, 52, 3), 4), (torch.rand(1, 9, 11, 3), 2), (torch.rand(1, 16, 8, 3), 1)):
        pooled = shrink(image.permute(0, 3, 1, 2), factor)
        got = shrunk_colours(image, factor)
        assert got.shape == pooled.shape and got.is_contiguous()
        torch.testing.assert_close(got, pooled, rtol=0, atol=1e-6)


def test_token_maps_refined_straight_from_the_grid_are_the_pixel_maps_refined():
    """refined_token_maps fits the filter on the coarse grid upsampled from the tokens: the refinement of the pixel
    maps (edge_aware_maps) within float rounding, except that it keeps to the tokens' range, which the bilinear
    pixel maps never quite reach."""
    from ca_core.maps import token_maps_to_pixels
    from ca_core.refine import edge_guide, refined_token_maps, token_range

    generator = torch.Generator().manual_seed(0)
    tokens = torch.randn(2, 3, 6, 8, generator=generator).softmax(dim=1)
    image = torch.rand(2, 96, 128, 3, generator=generator)
    guide = edge_guide(image, 16)
    pixels = token_maps_to_pixels(tokens, (96, 128), 16)
    expected = edge_aware_maps(pixels, guide, 16)
    got = refined_token_maps(tokens, guide, (96, 128), 16)
    low, high = token_range(tokens)
    assert bool(((got >= low) & (got <= high)).all())
    inside = (expected > pixels.amin(dim=(-2, -1), keepdim=True)) & (expected < pixels.amax(dim=(-2, -1), keepdim=True))
    assert inside.float().mean() > 0.9
    torch.testing.assert_close(got[inside], expected[inside], rtol=0, atol=1e-5)
