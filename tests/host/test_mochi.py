"""Mochi's own: a planted moving object followed frame by frame, the VAE's temporal stride (the first frame alone, then
6 per latent frame), and the last block, which scores the concepts without updating them. (Its contract:
test_family_contract.py.)"""

import torch
from helpers.models import tiny_mochi
from helpers.planted import mochi_clip_maps


def test_masks_follow_a_moving_object_frame_by_frame(ca):
    """The object ('left') grows one token column per latent frame; each decoded frame's mask is the object of the
    latent frame it comes from (the first frame alone, then six per latent frame)."""
    boundaries = [1, 2, 3, 4]
    maps = mochi_clip_maps(ca, boundaries)
    assert maps.video_frames == (0,) + sum(((f,) * 6 for f in range(1, 4)), ())
    mask = ca.nodes.map_nodes.ConceptMask.execute(
        concept_maps=maps, concepts="left", method="argmax", threshold=0.5, grow=0, blur=0.0, fill_holes=False,
        invert=False, space="as_made").args[0]
    assert mask.shape == (19, 64, 96)
    for frame, token_frame in enumerate(maps.video_frames):
        expected = torch.zeros(64, 96)
        expected[:, : boundaries[token_frame] * 16] = 1.0
        assert torch.equal(mask[frame], expected), frame


def test_frame_counts_follow_the_vaes_temporal_stride(ca):
    family = ca.nodes.families.mochi.MochiFamily()
    dm = tiny_mochi(3).get_model_object("diffusion_model")
    assert family.video_frame_tokens(dm, 1) == (0,)
    assert family.video_frame_tokens(dm, 3) == (0,) + (1,) * 6 + (2,) * 6
    assert len(family.video_frame_tokens(dm, 28)) == 163  # Mochi's 163-frame clips: 28 latent frames
    assert family.token_grid(dm, torch.zeros(1, 12, 28, 60, 106)) == (28, 30, 53)  # 848 x 480 pixels


def test_the_last_block_scores_the_concepts_without_updating_them(ca):
    """Block 47 of 48 does not update the text (update_y False): mod_y gives its attention's scale alone, and it has
    no proj_y or mlp_y."""
    family = ca.nodes.families.mochi.MochiFamily()
    dm = tiny_mochi(3, depth=3).get_model_object("diffusion_model")
    conditioning = {"c": torch.randn(1, dm.hidden_size_x)}
    assert [family.text_stream(dm, index).ends_here for index in range(3)] == [False, False, True]
    attention, mlp = family.concept_modulations(dm, 2, {}, conditioning, slice(None))
    assert mlp is None and attention.gate is None and attention.scale.shape == (1, 1, dm.hidden_size_y)
    attention, mlp = family.concept_modulations(dm, 0, {}, conditioning, slice(None))
    assert torch.all(attention.gate.abs() < 1) and torch.all(mlp.gate.abs() < 1)  # tanh gates
