"""The time axis of concept maps: token frames to video frames, clip-wide scales, smoothing over time."""

import pytest
import torch

from ca_core.maps import ConceptMaps, normalise, token_grid_maps
from ca_core.masks import smooth_over_time


def _frame_valued_scores(clips: int, frames: int, h: int, w: int, concepts: int = 2) -> torch.Tensor:
    """[clips, K, F*h*w] scores whose value is clip*100 + frame*10 + concept, frame by frame, row-major."""
    clip = torch.arange(clips)[:, None, None]
    concept = torch.arange(concepts)[None, :, None]
    frame = (torch.arange(frames * h * w) // (h * w))[None, None, :]
    return (clip * 100 + frame * 10 + concept).float()


def test_token_grid_maps_splits_video_tokens_frame_by_frame():
    scores = _frame_valued_scores(clips=2, frames=3, h=2, w=4)
    maps = token_grid_maps(scores, (3, 2, 4))
    assert maps.shape == (6, 2, 2, 4)
    for clip in range(2):
        for frame in range(3):
            assert torch.all(maps[clip * 3 + frame, 1] == clip * 100 + frame * 10 + 1)


def test_token_grid_maps_refuses_a_grid_the_tokens_do_not_fill():
    with pytest.raises(ValueError, match="do not form a 3x2x4 grid"):
        token_grid_maps(torch.zeros(1, 2, 23), (3, 2, 4))


def _video_maps(clips=1, frames=3, video_frames=(0, 1, 1, 1, 1, 2, 2, 2, 2), prompts=("positive",)):
    scores = _frame_valued_scores(clips * len(prompts), frames, 2, 2)
    maps = token_grid_maps(scores, (frames, 2, 2))
    return ConceptMaps(names=["dog", "sky"], maps=maps, cross_attention_maps=maps.clone(), image_size=(32, 32),
                       token_pixels=16, prompts=prompts, frames=frames, video_frames=video_frames)


def test_pixel_maps_give_each_decoded_frame_its_token_frame():
    maps = _video_maps(clips=2)
    pixels = maps.pixel_maps()
    assert pixels.shape == (2 * 9, 2, 32, 32) and maps.images == 2 and maps.output_frames == 9
    shown = pixels[:, 0, 0, 0].reshape(2, 9)
    expected = torch.tensor([0, 10, 10, 10, 10, 20, 20, 20, 20]).float()
    assert torch.equal(shown, torch.stack([expected, expected + 100]))


def test_labels_follow_the_saliency_layout_concept_clip_after_clip():
    labels = _video_maps(video_frames=(0, 1, 2)).labels()
    assert labels == ["dog"] * 3 + ["sky"] * 3


def test_video_frames_must_name_existing_token_frames():
    with pytest.raises(ValueError, match="token frames"):
        _video_maps(frames=3, video_frames=(0, 3))


def test_map_sets_must_divide_into_whole_clips():
    maps = token_grid_maps(_frame_valued_scores(1, 3, 2, 2), (3, 2, 2))
    with pytest.raises(ValueError, match="frames"):
        ConceptMaps(names=["dog", "sky"], maps=maps[:2], cross_attention_maps=maps[:2], image_size=(32, 32),
                    token_pixels=16, frames=3)


def test_normalise_scales_a_clip_as_one_image():
    maps = torch.stack([torch.full((2, 4, 4), float(frame)) for frame in range(4)])  # frame f holds f
    maps[:, 1] = maps[:, 1] * 2
    clip_wide = normalise(maps, "per_concept", frames=4)
    assert torch.allclose(clip_wide[:, 0, 0, 0], torch.tensor([0, 1 / 3, 2 / 3, 1]))  # a fade stays a fade
    per_frame = normalise(maps + torch.linspace(0, 1, 4)[None, None, None, :], "per_concept")
    assert torch.allclose(per_frame.amax(dim=(-2, -1)), torch.ones(4, 2))
    joint = normalise(maps, "joint", frames=4)
    assert joint.max() == 1 and torch.allclose(joint[3, 0], torch.full((4, 4), 0.5))


def test_smoothing_over_time_averages_neighbours_and_keeps_constant_clips():
    clip = torch.zeros(9, 1, 2, 2)
    clip[4] = 1.0  # one flickering frame
    smoothed = smooth_over_time(clip, frames=9, sigma=1.0)
    assert smoothed[4, 0, 0, 0] < 0.5 and smoothed[3, 0, 0, 0] > 0 and smoothed[0, 0, 0, 0] < 1e-3
    gaussian = torch.exp(-0.5 * torch.arange(-3, 4).float() ** 2)
    assert torch.allclose(smoothed[3:6, 0, 0, 0], gaussian[2:5] / gaussian.sum())  # interior: a Gaussian
    constant = torch.full((2 * 5, 2, 3, 3), 0.7)
    assert torch.allclose(smooth_over_time(constant, frames=5, sigma=2.0), constant)  # ends not darkened
    two_clips = torch.cat([torch.zeros(5, 1, 1, 1), torch.ones(5, 1, 1, 1)])
    assert torch.equal(smooth_over_time(two_clips, frames=5, sigma=3.0), two_clips)  # clips never mix
    assert smooth_over_time(clip, frames=9, sigma=0.0) is clip
