"""Concept Prompts: each object's box and peak points from planted maps, in the formats SAM3 Detect reads, run
through ComfyUI 0.33's own SAM3 nodes on a tiny SAM 3.1."""

import json

import comfy.model_management
import comfy.supported_models
import pytest
import torch
from helpers.sam3 import TEXT_WIDTH, sam3_modules_use_sdpa, tiny_sam31

TOKEN = 16
# Token cells (rows, columns) of each planted object on an 8 x 12 grid: two dogs apart, one cat, background
# elsewhere.
DOGS = [(slice(1, 4), slice(1, 4)), (slice(4, 7), slice(8, 11))]
CAT = (slice(5, 7), slice(3, 6))
NAMES = ["dog", "cat", "background", "bird"]  # the bird wins nowhere


def planted_maps(ca, images: int = 1):
    """Maps where each planted object's concept scores 0.8 on its cells and the others 0.1 (bird: 0.05)."""
    grid = torch.full((images, len(NAMES), 8, 12), 0.1)
    grid[:, 3] = 0.05
    grid[:, 2] = 0.8
    for rows, columns in [*DOGS, CAT]:
        grid[:, 2, rows, columns] = 0.1
    for rows, columns in DOGS:
        grid[:, 0, rows, columns] = 0.8
    grid[:, 1, CAT[0], CAT[1]] = 0.8
    if images > 1:  # the second image has the first dog only
        grid[1, 0, DOGS[1][0], DOGS[1][1]] = 0.1
        grid[1, 2, DOGS[1][0], DOGS[1][1]] = 0.8
    return ca.ca_core.maps.ConceptMaps(names=NAMES, maps=grid, cross_attention_maps=grid.clone(),
                                       image_size=(8 * TOKEN, 12 * TOKEN), token_pixels=TOKEN)


def pixels(cells) -> tuple[int, int, int, int]:
    """The planted object's pixel rectangle: x0, y0, x1, y1 (exclusive)."""
    rows, columns = cells
    return columns.start * TOKEN, rows.start * TOKEN, columns.stop * TOKEN, rows.stop * TOKEN


def inside(point: dict, cells) -> bool:
    x0, y0, x1, y1 = pixels(cells)
    return x0 <= point["x"] < x1 and y0 <= point["y"] < y1


def prompts(ca, maps, concepts="dog", **options):
    node = ca.nodes.prompt_node.ConceptPrompts
    settings = {"points_per_object": 1, "batch_index": 0, "min_region": 256, "space": "as_made", **options}
    return node.execute(concept_maps=maps, concepts=concepts, **settings)


def test_each_object_gets_a_box_around_it_and_a_point_inside_it(ca):
    out = prompts(ca, planted_maps(ca))
    bboxes, positive, negative, objects = out.args
    assert len(bboxes) == 1 and len(bboxes[0]) == 2  # one list per image, one box per dog
    for box, dog in zip(bboxes[0], DOGS, strict=True):  # two dogs of one size: in reading order
        x0, y0, x1, y1 = pixels(dog)
        assert set(box) == {"x", "y", "width", "height"}
        # the argmax changes sides halfway between token centres: at the object's edge, give or take a pixel
        assert abs(box["x"] - x0) <= 1 and abs(box["y"] - y0) <= 1
        assert abs(box["x"] + box["width"] - x1) <= 1 and abs(box["y"] + box["height"] - y1) <= 1
    positive, negative = json.loads(positive), json.loads(negative)
    assert len(positive) == 2 and all(set(p) == {"x", "y"} and isinstance(p["x"], int) for p in positive)
    assert sorted(inside(p, dog) for p in positive for dog in DOGS) == [False, False, True, True]
    # the negatives: one in the cat, one in the background (a single region around everything)
    assert len(negative) == 2
    assert inside(negative[0], CAT)
    assert not any(inside(negative[1], cells) for cells in [*DOGS, CAT])
    assert objects.shape == (2, 8 * TOKEN, 12 * TOKEN)
    assert len(out.ui.as_dict()["images"]) == 1  # the preview


def test_more_points_per_object_and_other_concepts(ca):
    maps = planted_maps(ca)
    _, positive, negative, _ = prompts(ca, maps, points_per_object=3).args
    positive = json.loads(positive)
    assert 2 < len(positive) <= 6 and all(any(inside(p, dog) for dog in DOGS) for p in positive)
    bboxes, positive, negative, objects = prompts(ca, maps, concepts="cat").args
    assert len(bboxes[0]) == 1 and objects.shape[0] == 1
    assert inside(json.loads(positive)[0], CAT)
    # the dogs and the background give the negatives
    assert sum(any(inside(p, dog) for dog in DOGS) for p in json.loads(negative)) == 2


def test_boxes_cover_every_image_and_points_come_from_the_chosen_one(ca):
    maps = planted_maps(ca, images=2)
    bboxes, first, _, objects = prompts(ca, maps).args
    assert [len(boxes) for boxes in bboxes] == [2, 1]
    assert len(json.loads(first)) == 2 and objects.shape[0] == 2
    _, second, _, objects = prompts(ca, maps, batch_index=1).args
    assert len(json.loads(second)) == 1 and inside(json.loads(second)[0], DOGS[0])
    assert objects.shape[0] == 1


def test_bad_inputs_are_refused_naming_the_fix(ca):
    maps = planted_maps(ca)
    with pytest.raises(ValueError, match="unknown concept"):
        prompts(ca, maps, concepts="horse")
    with pytest.raises(ValueError, match="won no region of 256 pixels or more in any image.*lower min_region"):
        prompts(ca, maps, concepts="bird")
    with pytest.raises(ValueError, match="batch_index is 1 but the maps cover 1 image.*choose 0 to 0"):
        prompts(ca, maps, batch_index=1)
    with pytest.raises(ValueError, match="connect it to Concept Mask's image input"):
        prompts(ca, maps, refine="image edges")


def test_image_edges_fit_the_boxes_to_the_objects_in_the_image(ca):
    maps = planted_maps(ca)
    image = torch.full((1, 8 * TOKEN, 12 * TOKEN, 3), 0.5)
    # the first dog in the image is 6 px inside its token cells on every side
    x0, y0, x1, y1 = pixels(DOGS[0])
    image[:, y0 + 6:y1 - 6, x0 + 6:x1 - 6] = torch.tensor([0.9, 0.6, 0.1])
    bboxes, *_ = prompts(ca, maps, refine="image edges", image=image).args
    box = bboxes[0][1]  # now the smaller dog: the larger comes first
    assert abs(box["x"] - (x0 + 6)) <= 2 and abs(box["x"] + box["width"] - (x1 - 6)) <= 2


requires_sam3 = pytest.mark.skipif(not hasattr(comfy.supported_models, "SAM31"),
                                   reason="SAM3's nodes need ComfyUI 0.33; this host predates them")


@pytest.fixture(scope="module")
def sam3():
    nodes_sam3 = pytest.importorskip("comfy_extras.nodes_sam3")
    yield nodes_sam3, tiny_sam31()
    comfy.model_management.unload_all_models()


@requires_sam3
def test_the_prompts_are_the_sockets_sam3_nodes_take(ca):
    import comfy_extras.nodes_sam3 as nodes_sam3

    ours = {output.id: output.io_type for output in ca.nodes.prompt_node.ConceptPrompts.GET_SCHEMA().outputs}
    detect = {node_input.id: node_input for node_input in nodes_sam3.SAM3_Detect.GET_SCHEMA().inputs}
    for name in ("bboxes", "positive_coords", "negative_coords"):
        assert ours[name] == detect[name].io_type, name
    track = {node_input.id: node_input.io_type for node_input in nodes_sam3.SAM3_VideoTrack.GET_SCHEMA().inputs}
    assert ours["objects"] == track["initial_mask"]


@requires_sam3
def test_sam3_detect_reads_a_box_per_object_and_the_points(ca, sam3, monkeypatch):
    nodes_sam3, model = sam3
    sam3_modules_use_sdpa(monkeypatch)
    maps = planted_maps(ca, images=2)
    bboxes, positive, negative, _ = prompts(ca, maps).args
    image = torch.rand(2, 8 * TOKEN, 12 * TOKEN, 3)
    masks, _ = nodes_sam3.SAM3_Detect.execute(model=model, image=image, bboxes=bboxes, refine_iterations=1,
                                              individual_masks=True).args
    # one mask per box: two dogs in the first image, one in the second
    assert masks.shape == (3, 8 * TOKEN, 12 * TOKEN) and set(masks.unique().tolist()) <= {0.0, 1.0}
    masks, _ = nodes_sam3.SAM3_Detect.execute(model=model, image=image, bboxes=bboxes, positive_coords=positive,
                                              negative_coords=negative, refine_iterations=1,
                                              individual_masks=True).args
    assert masks.shape[0] == 3 + 2  # and a mask from the points in each image
    masks, _ = nodes_sam3.SAM3_Detect.execute(model=model, image=image, bboxes=bboxes, positive_coords=positive,
                                              negative_coords=negative, refine_iterations=1).args
    assert masks.shape == (2, 8 * TOKEN, 12 * TOKEN)


@requires_sam3
def test_sam3_detect_takes_the_boxes_beside_a_text_prompt(ca, sam3, monkeypatch):
    nodes_sam3, model = sam3
    sam3_modules_use_sdpa(monkeypatch)
    bboxes, positive, negative, _ = prompts(ca, planted_maps(ca)).args
    text = [[torch.randn(1, 4, TEXT_WIDTH), {"attention_mask": torch.ones(1, 4, dtype=torch.int64)}]]
    masks, found = nodes_sam3.SAM3_Detect.execute(model=model, image=torch.rand(1, 8 * TOKEN, 12 * TOKEN, 3),
                                                  conditioning=text, bboxes=bboxes, positive_coords=positive,
                                                  negative_coords=negative, threshold=0.0, refine_iterations=0).args
    assert masks.shape == (1, 8 * TOKEN, 12 * TOKEN) and len(found) == 1


@requires_sam3
def test_sam3_video_track_follows_each_object_of_the_chosen_frame(ca, sam3, monkeypatch):
    nodes_sam3, model = sam3
    sam3_modules_use_sdpa(monkeypatch)
    *_, objects = prompts(ca, planted_maps(ca)).args
    frames = torch.rand(3, 8 * TOKEN, 12 * TOKEN, 3)
    track, = nodes_sam3.SAM3_VideoTrack.execute(images=frames, model=model, initial_mask=objects, max_objects=4).args
    assert track["packed_masks"].shape[:2] == (3, 2)  # every frame, both dogs
    masks, = nodes_sam3.SAM3_TrackToMask.execute(track_data=track, object_indices="1").args
    assert masks.shape == (3, 8 * TOKEN, 12 * TOKEN)
