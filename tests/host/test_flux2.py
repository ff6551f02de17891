"""Flux.2's own (ComfyUI 0.8 and newer): concepts align inside klein's chat template, and a concept's RoPE position
follows the left padding to 512 of Flux.2 dev's encodings. (Its contract: test_family_contract.py.)"""

import pytest
from helpers.models import flux2_tokenizer_class
from helpers.variants import HAS_FLUX2, flux2_clip

if not HAS_FLUX2:
    pytest.skip("Flux.2 arrived in ComfyUI 0.8; this host predates it", allow_module_level=True)


def test_concepts_align_inside_the_chat_template(ca):
    """Klein's real tokenizer and template (a stand-in with the same template and Qwen3 tokenizer on hosts
    without it): a multi-token concept's own tokens are found, never the template's."""
    clip = flux2_clip()
    family = ca.nodes.families.flux2.Flux2Family()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    ids = [t[0] for t in tokens["qwen3_4b"][0]]
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    template = flux2_tokenizer_class()().tokenize_with_weights("")["qwen3_4b"][0]
    prefix = next(i for i, (a, e) in enumerate(zip(ids, [t[0] for t in template], strict=True)) if a != e)
    assert own == [prefix, prefix + 1]  # "traffic", " light"
    assert ids[own[-1] + 1] == template[prefix][0]  # then the template's tail, "<|im_end|>"
    _, positions = ca.nodes.stream.encoding.encode_concepts(clip, ["traffic light"], "first", family)
    assert positions == [prefix]


def test_concept_positions_follow_the_left_padding_to_512(ca):
    """Flux.2 dev's Mistral encoding is not padded by its tokenizer; ComfyUI pads the context on the left
    to 512, so a token at index i of a T-token encoding sits at position i + 512 - T."""
    family = ca.nodes.families.flux2.Flux2Family()
    assert family.concept_position(40, 42) == 510  # the paper's code: the concept token at 510
    assert family.concept_position(3, 512) == 3  # klein: right-padded to 512 by its tokenizer
