"""A planted model with a known answer: concept 'left' must win exactly the left image tokens."""

import comfy.sample
import comfy.samplers
import pytest
import torch
from ca_test_nodes import (
    CONTEXT_DIM,
    planted_chroma,
    planted_flux,
    planted_hunyuan_video,
    planted_qwen_image,
    planted_sd3,
)

SIZES = {"square": (8, 8), "wide": (6, 12), "tall": (12, 6), "odd": (7, 11)}  # latent cells (8 px each)
PLANTED = {"flux": planted_flux, "chroma": planted_chroma, "sd3": planted_sd3, "qwen_image": planted_qwen_image,
           "hunyuan_video": planted_hunyuan_video}


def planted_latent(height: int, width: int, boundary: int) -> torch.Tensor:
    """Channel 0 patterns: left tokens get e0 - e1, right tokens e2 - e3 (token = 2x2 cells)."""
    latent = torch.zeros(1, 16, height, width)
    left = torch.zeros(2, 2)
    left[0, 0], left[0, 1] = 1.0, -1.0
    right = torch.zeros(2, 2)
    right[1, 0], right[1, 1] = 1.0, -1.0
    tiles_h, tiles_w = -(-height // 2), -(-width // 2)
    pattern = torch.cat([left.repeat(tiles_h, boundary), right.repeat(tiles_h, tiles_w - boundary)], dim=1)
    latent[0, 0] = pattern[:height, :width]
    return latent


def concept_context() -> torch.Tensor:
    context = torch.zeros(1, 2, CONTEXT_DIM)
    context[0, 0, 0], context[0, 0, 1] = 1.0, -1.0  # "left" matches e0 - e1
    context[0, 1, 2], context[0, 1, 3] = 1.0, -1.0  # "right" matches e2 - e3
    return context


def one_pass_maps(ca, model, concepts, pooled, latent, pixels_per_latent, reference=None):
    """Maps of "left" and "right" from one partial denoising pass of `model` at sigma 0, cfg 1."""
    family = ca.nodes.families.family_for(model)
    patch = ca.nodes.patch.ConceptAttentionPatch(family, concepts, (0, 1), (0, 1), stop_after_last_layer=True)
    patched = patch.install(model.clone())
    extras = {"pooled_output": pooled}
    if reference is not None:
        extras["reference_latents"] = [reference]
    cond = [[torch.zeros(1, 4, CONTEXT_DIM), extras]]
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)
    sampler = comfy.samplers.KSAMPLER(ca.nodes.segment_node.one_partial_pass)
    latent = comfy.sample.fix_empty_latent_channels(model, latent)  # as KSampler: Qwen-Image's latents are 5-D
    guider.sample(torch.zeros_like(latent), latent, sampler, torch.tensor([0.0, 0.0]), disable_pbar=True, seed=0)
    h, w = latent.shape[-2:]
    return patch.concept_maps(["left", "right"], (h * pixels_per_latent, w * pixels_per_latent), "output", 16)


def run_planted(ca, latent, reference=None, family="flux"):
    return one_pass_maps(ca, PLANTED[family](), concept_context(), torch.zeros(1, 16), latent, 8, reference)


@pytest.mark.parametrize("family", PLANTED)
@pytest.mark.parametrize("shape", SIZES, ids=list(SIZES))
def test_left_concept_wins_left_half(ca, shape, family):
    height, width = SIZES[shape]
    tokens_w = -(-width // 2)
    boundary = tokens_w // 2
    maps = run_planted(ca, planted_latent(height, width, boundary), family=family)
    assert maps.maps.shape == (1, 2, -(-height // 2), tokens_w)
    mask = ca.ca_core.masks.concept_mask(maps.pixel_maps(), [0], method="argmax")
    assert mask.shape == (1, height * 8, width * 8)
    expected = torch.zeros_like(mask)
    expected[..., : boundary * 16] = 1.0
    # On odd sizes ComfyUI pads the latent circularly, so the last token row/column mixes both
    # contents; compare the tokens that lie wholly inside the image, less the half token next to the mixed
    # one, which the bilinear upsampling blends with it.
    whole_h, whole_w = height // 2 * 16 - 8 * (height % 2), width // 2 * 16 - 8 * (width % 2)
    whole = (slice(None), slice(0, whole_h), slice(0, whole_w))
    assert torch.equal(mask[whole], expected[whole])
    # the paper's mean threshold gives the same region up to the bilinear ramp at the edge
    mean_mask = ca.ca_core.masks.concept_mask(maps.pixel_maps(), [0], method="mean_threshold")
    far = torch.ones(width * 8, dtype=torch.bool)
    far[boundary * 16 - 8: boundary * 16 + 8] = False
    assert torch.equal(mean_mask[whole][..., far[:whole_w]], expected[whole][..., far[:whole_w]])


def test_kontext_reference_tokens_are_not_mapped(ca):
    height, width = 8, 12
    latent = planted_latent(height, width, 3)
    reference = planted_latent(8, 8, 4)  # all 'left' content: a reference that is not the output
    maps = run_planted(ca, latent, reference=reference)
    assert maps.maps.shape == (1, 2, 4, 6)  # the generated grid only, not the reference's tokens
    mask = ca.ca_core.masks.concept_mask(maps.pixel_maps(), [0], method="argmax")
    expected = torch.zeros_like(mask)
    expected[..., : 3 * 16] = 1.0
    assert torch.equal(mask, expected)
