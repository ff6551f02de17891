import cv2
import numpy as np
import pytest
import torch

from research.shapes import (
    BACKGROUNDS,
    COLOURS,
    HELD_OUT_SEED_OFFSET,
    IMAGE_SIZE,
    SHAPES,
    TRAIN_SEEDS,
    VOCABULARY,
    WORD_TO_ID,
    caption_words,
    held_out_seeds,
    is_centred,
    is_same_colour,
    make_batch,
    make_scene,
    word_ids,
)

SEEDS = list(range(48))


@pytest.fixture(scope="module")
def scenes():
    return [make_scene(seed) for seed in SEEDS]


def test_same_seed_gives_the_identical_scene():
    first, second = make_scene(7), make_scene(7)
    assert np.array_equal(first.image, second.image)
    assert first.caption == second.caption
    assert first.background == second.background
    assert first.masks.keys() == second.masks.keys()
    for word in first.masks:
        assert np.array_equal(first.masks[word], second.masks[word])


def test_different_seeds_give_different_scenes(scenes):
    images = {scene.image.tobytes() for scene in scenes}
    assert len(images) == len(scenes)


def test_image_format(scenes):
    for scene in scenes[:8]:
        assert scene.image.shape == (IMAGE_SIZE, IMAGE_SIZE, 3)
        assert scene.image.dtype == np.float32
        assert 0.0 <= scene.image.min() and scene.image.max() <= 1.0


def test_mostly_two_objects_with_distinct_shapes_and_colours(scenes):
    counts = [len(scene.objects) for scene in scenes]
    assert set(counts) <= {1, 2}
    assert counts.count(2) > len(scenes) // 2
    for scene in scenes:
        assert len({obj.shape for obj in scene.objects}) == len(scene.objects)
        assert len({obj.colour for obj in scene.objects}) == len(scene.objects)


def test_caption_names_exactly_the_objects_present(scenes):
    for scene in scenes:
        phrases, _, rest = scene.caption.partition(" on a ")
        assert rest == f"{scene.background} background"
        named = {tuple(phrase.split()[1:]) for phrase in phrases.split(" and ")}
        assert named == {(obj.colour, obj.shape) for obj in scene.objects}
        words = caption_words(scene.caption)
        assert not set(words) & (set(SHAPES) - {obj.shape for obj in scene.objects})
        assert not set(words) & (set(COLOURS) - {obj.colour for obj in scene.objects})


def test_caption_object_order_varies(scenes):
    # Object order in the caption must not always follow drawing order (or a fixed shape order).
    firsts = {caption_words(scene.caption)[2] == scene.objects[0].shape for scene in scenes if len(scene.objects) == 2}
    assert firsts == {True, False}


def test_every_caption_word_is_in_the_vocabulary(scenes):
    for scene in scenes:
        assert set(caption_words(scene.caption)) <= set(VOCABULARY)
        assert WORD_TO_ID["<unk>"] not in word_ids(scene.caption)


def test_vocabulary_layout():
    assert VOCABULARY[0] == "<pad>"
    assert "<unk>" in VOCABULARY
    assert len(set(VOCABULARY)) == len(VOCABULARY)
    assert set(SHAPES) | set(COLOURS) | set(BACKGROUNDS) | {"a", "and", "on", "background"} <= set(VOCABULARY)
    assert word_ids("a mauve circle") == [WORD_TO_ID["a"], WORD_TO_ID["<unk>"], WORD_TO_ID["circle"]]


def test_masks_are_nonempty_disjoint_and_background_is_the_rest(scenes):
    for scene in scenes:
        union = np.zeros((IMAGE_SIZE, IMAGE_SIZE), bool)
        for obj in scene.objects:
            assert obj.mask.dtype == bool and obj.mask.any()
            assert not (union & obj.mask).any()
            union |= obj.mask
            assert np.array_equal(scene.masks[obj.shape], obj.mask)
            assert np.array_equal(scene.masks[obj.colour], obj.mask)
        assert np.array_equal(scene.masks["background"], ~union)
        present = {obj.shape for obj in scene.objects} | {obj.colour for obj in scene.objects} | {"background"}
        assert set(scene.masks) == present


def test_shapes_keep_a_clear_gap(scenes):
    for scene in scenes:
        if len(scene.objects) == 2:
            distance = cv2.distanceTransform((~scene.objects[0].mask).astype(np.uint8), cv2.DIST_L2, 5)
            assert distance[scene.objects[1].mask].min() >= 3


def test_shapes_are_large(scenes):
    for scene in scenes:
        for obj in scene.objects:
            assert obj.mask.mean() > 0.02  # > 737 of 36864 pixels
            rows, cols = np.nonzero(obj.mask)
            assert max(np.ptp(rows), np.ptp(cols)) >= 40


def test_masks_match_the_pixels(scenes):
    # Inside a shape's mask the image is (almost everywhere) the shape's colour.
    for scene in scenes[:8]:
        for obj in scene.objects:
            inner = cv2.erode(obj.mask.astype(np.uint8), np.ones((3, 3), np.uint8)).astype(bool)
            np.testing.assert_allclose(scene.image[inner], np.broadcast_to(COLOURS[obj.colour], (inner.sum(), 3)), atol=1e-5)


def test_held_out_seeds_are_disjoint_from_training():
    held_out = held_out_seeds(4)
    assert held_out[0] == HELD_OUT_SEED_OFFSET and TRAIN_SEEDS[0] == 0
    assert all(seed not in TRAIN_SEEDS for seed in held_out)
    for train_seed, held_out_seed in zip(range(4), held_out, strict=True):
        assert not np.array_equal(make_scene(train_seed).image, make_scene(held_out_seed).image)


def test_make_batch():
    images, captions, scenes = make_batch([3, 5])
    assert images.shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE) and images.dtype == torch.float32
    assert captions == [scene.caption for scene in scenes]
    assert torch.equal(images[1], torch.from_numpy(make_scene(5).image).permute(2, 0, 1))


def test_centred_scene_is_one_object_in_the_middle():
    for seed in range(12):
        scene = make_scene(seed, centred=True)
        assert len(scene.objects) == 1
        obj = scene.objects[0]
        rows, cols = np.nonzero(obj.mask)
        # the polygon's centre is the image centre; its mask's bounding box is centred up to a pixel
        assert abs((rows.min() + rows.max()) / 2 - (IMAGE_SIZE - 1) / 2) <= 1.0 or obj.shape in ("triangle", "star")
        assert abs((cols.min() + cols.max()) / 2 - (IMAGE_SIZE - 1) / 2) <= 1.0
        article = "an" if obj.colour[0] in "aeiou" else "a"
        assert scene.caption == f"{article} {obj.colour} {obj.shape} on a {scene.background} background"
        assert np.array_equal(scene.image, make_scene(seed, centred=True).image)


def test_batches_mix_in_the_asked_share_of_centred_scenes():
    seeds = range(400)
    centred = [seed for seed in seeds if is_centred(seed, 0.25)]
    assert 70 <= len(centred) <= 130
    assert not any(is_centred(seed, 0.0) for seed in seeds)
    images, _, scenes = make_batch(range(24), centred_share=0.25)
    for seed, image, scene in zip(range(24), images, scenes, strict=True):
        expected = make_scene(seed, centred=is_centred(seed, 0.25))
        assert scene.caption == expected.caption
        assert torch.equal(image, torch.from_numpy(expected.image).permute(2, 0, 1))
    # without the share, a batch is the ordinary scenes (the held-out set never changes)
    assert [scene.caption for scene in make_batch(range(24))[2]] == [make_scene(seed).caption for seed in range(24)]


def test_same_colour_scenes_change_only_the_second_colour_and_mask_the_colour_word_as_both_objects():
    seed = next(seed for seed in range(50) if len(make_scene(seed).objects) == 2)
    ordinary, painted = make_scene(seed), make_scene(seed, same_colour=True)
    first = ordinary.objects[0].colour
    assert [obj.colour for obj in painted.objects] == [first, first]
    assert [obj.shape for obj in painted.objects] == [obj.shape for obj in ordinary.objects]
    assert all(np.array_equal(a.mask, b.mask) for a, b in zip(painted.objects, ordinary.objects, strict=True))
    assert painted.background == ordinary.background
    assert painted.caption.count(f" {first} ") == 2
    assert np.array_equal(painted.masks[first], painted.objects[0].mask | painted.objects[1].mask)
    assert not np.array_equal(painted.image, ordinary.image)
    # the second object is painted in the first one's colour
    second = painted.objects[1].mask
    assert np.allclose(painted.image[second].mean(axis=0), ordinary.image[ordinary.objects[0].mask].mean(axis=0), atol=0.02)


def test_batches_mix_in_the_asked_share_of_same_colour_scenes():
    seeds = range(400)
    assert 70 <= sum(is_same_colour(seed, 0.25) for seed in seeds) <= 130
    assert not any(is_same_colour(seed, 0.0) for seed in seeds)
    _, captions, scenes = make_batch(range(40), same_colour_share=0.25)
    for seed, caption, scene in zip(range(40), captions, scenes, strict=True):
        assert caption == make_scene(seed, same_colour=is_same_colour(seed, 0.25)).caption
        if is_same_colour(seed, 0.25) and len(scene.objects) == 2:
            assert scene.objects[0].colour == scene.objects[1].colour
