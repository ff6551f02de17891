"""Box and point prompts from a concept's mask and map (ca_core.prompts), for SAM 3 and SAM 2."""

import json

import torch

from ca_core.prompts import draw_prompts, object_prompts, peak_points, points_json


def two_objects(height: int = 96, width: int = 160):
    """A mask with a large rectangle and a small disc apart, and a score that peaks inside each (higher on the
    disc), with a stronger peak outside both that no object may take."""
    mask = torch.zeros(height, width)
    mask[10:70, 20:80] = 1  # 60 x 60 at x 20, y 10
    rows, columns = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
    disc = (rows - 50) ** 2 + (columns - 130) ** 2 <= 15 ** 2
    mask[disc] = 1
    score = torch.exp(-((rows - 30.0) ** 2 + (columns - 40.0) ** 2) / 400) * 0.6
    score += torch.exp(-((rows - 52.0) ** 2 + (columns - 128.0) ** 2) / 100) * 0.8
    score[90:, 0:10] = 5.0
    return mask, score, disc


def test_each_object_gets_its_box_and_its_peak_largest_first():
    mask, score, disc = two_objects()
    rectangle, circle = object_prompts(mask, score, points_per_object=1, spacing=32)
    assert rectangle.box == (20, 10, 60, 60)
    assert circle.box == (115, 35, 31, 31)
    assert rectangle.points == ((40, 30),)  # the score's peak, inside its object
    assert circle.points == ((128, 52),)
    assert rectangle.box_dict() == {"x": 20, "y": 10, "width": 60, "height": 60}
    for prompt in (rectangle, circle):
        x, y, width, height = prompt.box
        assert all(x <= px < x + width and y <= py < y + height and mask[py, px] == 1 for px, py in prompt.points)
    assert all(disc[py, px] for px, py in circle.points)


def test_several_points_keep_their_spacing_and_stay_inside():
    mask, score, _ = two_objects()
    rectangle, circle = object_prompts(mask, score, points_per_object=4, spacing=20)
    assert len(rectangle.points) == 4
    assert rectangle.points[0] == (40, 30)  # strongest first
    for prompt in (rectangle, circle):
        for i, (x, y) in enumerate(prompt.points):
            assert mask[y, x] == 1
            for ox, oy in prompt.points[:i]:
                assert (x - ox) ** 2 + (y - oy) ** 2 >= 20 ** 2
    assert 1 <= len(circle.points) < 4  # a disc of radius 15 holds no four points 20 px apart away from its edge


def test_points_keep_off_the_edge_of_their_object():
    region = torch.zeros(64, 64, dtype=torch.bool)
    region[8:56, 8:56] = True
    score = torch.zeros(64, 64)
    score[8, 8] = 1.0  # the score's maximum is on the object's corner
    (x, y), = peak_points(score, region, 1, spacing=32)
    assert min(x - 7, y - 7, 56 - x, 56 - y) >= 12  # from the nearest pixel outside: half the object's depth


def test_an_empty_mask_has_no_prompts():
    assert object_prompts(torch.zeros(32, 32), torch.rand(32, 32), 1, 16) == []


def test_points_are_the_points_editor_json():
    text = points_json([(3, 4), (10, 20)])
    assert json.loads(text) == [{"x": 3, "y": 4}, {"x": 10, "y": 20}]
    # as the SAM 2 packs (kijai's ComfyUI-segment-anything-2 and its forks) read their coordinates_positive
    assert [(point["x"], point["y"]) for point in json.loads(text.replace("'", '"'))] == [(3, 4), (10, 20)]
    assert points_json([]) == "[]"


def test_the_preview_draws_boxes_and_points_in_their_colours():
    mask, score, _ = two_objects()
    prompts = object_prompts(mask, score, 1, 32)
    image = torch.full((96, 160, 3), 0.5)
    drawn = draw_prompts(image, prompts, [(5, 85)])
    assert drawn.shape == image.shape and torch.equal(image, torch.full((96, 160, 3), 0.5))  # a copy
    assert drawn[10, 50, 1] > 0.9 and drawn[10, 50, 0] < 0.3  # the rectangle's top edge, green
    assert drawn[30, 40, 1] > 0.9  # its point
    assert drawn[85, 5, 0] > 0.9 and drawn[85, 5, 1] < 0.3  # the other concept's point, red
    boxes_only = draw_prompts(image, prompts, [(5, 85)], with_points=False)
    assert torch.equal(boxes_only[85, 5], image[85, 5]) and torch.equal(boxes_only[30, 40], image[30, 40])
