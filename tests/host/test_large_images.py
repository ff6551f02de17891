"""Large images and large batches through Saliency Map and Concept Mask, on planted maps: previews are scaled down
while the outputs keep the image's size, a batch gives what each image gives alone, and a 4096 x 4096 Concept Mask
with refine 'image edges', grow and blur runs (bench/large_images.py times it)."""

import folder_paths
import numpy as np
import pytest
import torch
from PIL import Image

TOKEN = 16
NAMES = ["dog", "cat", "background"]


def planted_maps(ca, images: int, rows: int, columns: int):
    """Per image a dog and a cat at their own token cells (they move from image to image), background elsewhere."""
    generator = torch.Generator().manual_seed(images * rows)
    raw = torch.randn(images, len(NAMES), rows, columns, generator=generator) * 0.1
    for i in range(images):
        top, left = i % max(1, rows // 2), (2 * i) % max(1, columns // 2)
        raw[i, 0, top:top + rows // 3, left:left + columns // 3] += 2.0
        raw[i, 1, rows // 2:, columns // 2:] += 1.5
    raw[:, 2] += 1.0
    maps = raw.softmax(dim=1)
    return ca.ca_core.maps.ConceptMaps(names=NAMES, maps=maps, cross_attention_maps=maps.clone(),
                                       image_size=(rows * TOKEN, columns * TOKEN), token_pixels=TOKEN,
                                       raw_maps=raw, raw_cross_attention_maps=raw.clone())


def picture(images: int, height: int, width: int) -> torch.Tensor:
    return torch.rand(images, height, width, 3, generator=torch.Generator().manual_seed(height))


def saved_sizes(shown: dict) -> list[tuple[int, int]]:
    sizes = []
    for entry in shown["images"]:
        path = f"{folder_paths.get_temp_directory()}/{entry['subfolder']}/{entry['filename']}"
        with Image.open(path) as saved:
            sizes.append(saved.size)
    return sizes


def saliency(ca, maps, **options):
    settings = {"normalisation": "joint", "overlay_opacity": 0.6, "space": "as_made", **options}
    return ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, **settings)


def concept_mask(ca, maps, **options):
    settings = {"concepts": "dog", "method": "argmax", "threshold": 0.5, "grow": 4, "blur": 2.0,
                "fill_holes": False, "invert": False, "space": "as_made", **options}
    return ca.nodes.map_nodes.ConceptMask.execute(concept_maps=maps, **settings)


def test_saliency_previews_are_scaled_down_and_the_heatmaps_keep_full_size(ca):
    maps = planted_maps(ca, 1, 80, 128)  # 2048 x 1280 pixels
    out = saliency(ca, maps, image=picture(1, 1280, 2048), label=True)
    heatmaps, masks = out.args
    assert heatmaps.shape == (3, 1280, 2048, 3) and masks.shape == (3, 1280, 2048)
    shown = out.ui.as_dict() if hasattr(out.ui, "as_dict") else out.ui
    assert saved_sizes(shown) == [(1024, 640)] * 3
    assert [entry["display_name"] for entry in shown["images"]] == NAMES


def test_small_previews_keep_their_size(ca):
    maps = planted_maps(ca, 1, 16, 24)
    shown = saliency(ca, maps).ui
    shown = shown.as_dict() if hasattr(shown, "as_dict") else shown
    assert saved_sizes(shown) == [(384, 256)] * 3


def test_concept_mask_preview_is_scaled_down_and_the_mask_keeps_full_size(ca):
    maps = planted_maps(ca, 2, 96, 96)  # 1536 x 1536
    out = concept_mask(ca, maps, refine="image edges", image=picture(2, 1536, 1536))
    mask, objects, count = out.args
    assert mask.shape == (2, 1536, 1536) and objects.shape[1:] == (1536, 1536) and count >= 2
    assert saved_sizes(out.ui.as_dict()) == [(1024, 1024)] * 2


@pytest.mark.parametrize("label", [False, True])
def test_a_batch_gives_what_each_image_gives_alone(ca, label):
    images = 4
    maps = planted_maps(ca, images, 12, 16)
    image = picture(images, 192, 256)
    heatmaps, masks = saliency(ca, maps, image=image, label=label).args
    mask, objects, count = concept_mask(ca, maps, refine="image edges", image=image).args
    ConceptMaps = ca.ca_core.maps.ConceptMaps
    alone_objects = []
    for i in range(images):
        one = ConceptMaps(names=NAMES, maps=maps.maps[i:i + 1], cross_attention_maps=maps.cross_attention_maps[i:i + 1],
                          image_size=maps.image_size, token_pixels=TOKEN, raw_maps=maps.raw_maps[i:i + 1],
                          raw_cross_attention_maps=maps.raw_cross_attention_maps[i:i + 1])
        one_heat, one_masks = saliency(ca, one, image=image[i:i + 1], label=label).args
        assert torch.equal(heatmaps[3 * i:3 * i + 3], one_heat)
        assert torch.equal(masks[3 * i:3 * i + 3], one_masks)
        one_mask, one_objects, one_count = concept_mask(ca, one, refine="image edges", image=image[i:i + 1]).args
        assert torch.equal(mask[i:i + 1], one_mask)
        alone_objects += list(one_objects[:one_count])
    assert count == len(alone_objects) and torch.equal(objects, torch.stack(alone_objects))


def test_a_batch_matches_the_whole_batch_computed_at_once(ca):
    """The image-by-image outputs equal the straightforward computation over the whole batch at once."""
    core = ca.ca_core
    images = 3
    maps = planted_maps(ca, images, 12, 16)
    heatmaps, masks = saliency(ca, maps, normalisation="per_concept", overlay_opacity=0.5).args
    whole = core.maps.normalise(maps.pixel_maps(), "per_concept")
    expected = core.maps.colourise(whole)
    assert torch.equal(heatmaps, expected.flatten(0, 1))
    assert torch.equal(masks, whole.clamp(0, 1).flatten(0, 1))
    mask = concept_mask(ca, maps, grow=0, blur=0.0).args[0]
    present = core.masks.concept_presence(maps.pixel_maps(raw=True))
    present[:, 2] = True  # "background" is present wherever it wins
    assert torch.equal(mask, core.masks.concept_mask(maps.pixel_maps(), [0], present=present))


def test_a_4096_concept_mask_with_image_edges_grow_and_blur_runs(ca):
    maps = planted_maps(ca, 1, 256, 256)
    image = torch.from_numpy(np.kron(picture(1, 64, 64)[0].numpy(), np.ones((64, 64, 1), np.float32)))[None]
    mask, objects, count = concept_mask(ca, maps, refine="image edges", image=image, grow=8, blur=4.0).args
    assert mask.shape == (1, 4096, 4096) and count >= 1 and objects.shape[1:] == (4096, 4096)
    assert 0 < mask.mean() < 1
