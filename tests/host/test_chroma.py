"""Chroma's own: concepts align with its real tokenizer (PixArt's T5: no padding, an end token). (Its contract,
Chroma Radiance's included: test_family_contract.py.)"""

from helpers.variants import chroma_clip


def test_chromas_tokenizer_pads_nothing_and_ends_with_its_end_token(ca):
    """A multi-token concept's own word pieces are found, and the end token that follows them is never taken
    for the concept."""
    clip = chroma_clip()
    family = ca.nodes.families.chroma.ChromaFamily()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    pieces = [t for t in tokens["t5xxl"][0]]
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    assert states.shape[1] == len(pieces)  # no padding to 256 as with Flux's tokenizer
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    assert len(own) >= 2 and own == list(range(len(own)))
    assert pieces[len(own)][0] == 1  # the end token follows the concept's own pieces
