"""SD3 / SD3.5's own: the concepts follow the blocks before the pre_only last one, concepts take their CLIP (or
T5) tokens from SD3's real tokenizers, a T5-only text encoder works, and SD3 hooks APPLY_MODEL (its forward skips
DIFFUSION_MODEL). (Its contract, in SD3, SD3.5 large and SD3.5 medium variants: test_family_contract.py.)"""

import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
import pytest
import torch
from helpers.models import tiny_sd3, tiny_sd3_clip
from helpers.sampling import concept_sampler, ksampler, run_layers, sampler_inputs


def test_the_concepts_follow_the_blocks_before_the_last(ca):
    """The last (pre_only) layer's scores depend on the concepts' updates in the blocks before it."""
    model, clip = tiny_sd3(5), tiny_sd3_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    _, last = run_layers(ca, model, clip, inputs, "2", softmax=False)
    _, first = run_layers(ca, model, clip, inputs, "0", softmax=False)
    assert torch.isfinite(last.maps).all() and not torch.allclose(last.maps, first.maps)


def test_concepts_take_their_clip_tokens_from_sd3s_real_tokenizers(ca):
    """SD3's context is CLIP-L/G's 77 positions (start token first), then T5's: a concept's own tokens are its
    CLIP word pieces after the start token; with only T5 loaded, its T5 pieces."""
    family = ca.nodes.families.sd3.SD3Family()
    clip = tiny_sd3_clip()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    assert states.shape[1] == len(tokens["l"][0]) == 77  # no T5 loaded: CLIP-L/G alone
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    assert own == [1, 2]  # "traffic", "light": CLIP reads each as one piece, after its start token
    assert tokens["l"][0][0][0] == 49406 and tokens["l"][0][3][0] == 49407  # start, then the end token

    # CLIP-L/G and T5 both loaded: the CLIP positions come first, so the indices are the same
    clip.cond_stage_model.t5xxl = tiny_sd3_clip(t5_only=True).cond_stage_model.t5xxl
    both = 77 + len(tokens["t5xxl"][0])
    assert family.concept_token_indices(clip, "traffic light", tokens, both) == [1, 2]

    t5_clip = tiny_sd3_clip(t5_only=True)
    t5_tokens = t5_clip.tokenize("traffic light", return_word_ids=True)
    t5_states = t5_clip.encode_from_tokens(t5_clip.tokenize("traffic light"))
    t5_own = family.concept_token_indices(t5_clip, "traffic light", t5_tokens, t5_states.shape[1])
    pieces = t5_tokens["t5xxl"][0]
    assert t5_own == [i for i, piece in enumerate(pieces) if piece[2] > 0] and len(t5_own) >= 2 and t5_own[0] == 0
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'dog'.*TripleCLIPLoader"):
        family.concept_token_indices(clip, "dog", clip.tokenize("dog", return_word_ids=True), 99)


def test_sd3_runs_with_a_t5_only_text_encoder(ca):
    model, clip = tiny_sd3(3, context_dim=32, pooled_dim=2048), tiny_sd3_clip(t5_only=True)
    inputs = sampler_inputs(clip, 1, 3.5)
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference) and torch.isfinite(maps.maps).all()


def test_sd3_is_its_own_family(ca):
    model = tiny_sd3(3)
    family = ca.nodes.families.family_for(model)
    assert isinstance(family, ca.nodes.families.sd3.SD3Family) and family.hook == ca.nodes.families.base.Hook.APPLY_MODEL
    assert isinstance(model.get_model_object("diffusion_model"), mmdit.OpenAISignatureMMDITWrapper)
