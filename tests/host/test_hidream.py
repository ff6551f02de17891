"""HiDream's own: the concepts' Llama states, found in their encoding and taken block by block."""

import inspect

import pytest
import torch
from helpers import models
from helpers.variants import HAS_HIDREAM, hidream_clip

pytestmark = pytest.mark.skipif(not HAS_HIDREAM, reason="this host predates HiDream")


def test_a_concepts_llama_states_sit_beside_its_t5_token(ca):
    """The concept's encoding: T5's states, and beside its first own T5 token every Llama layer's state of its first
    own Llama token (after <|begin_of_text|>); beside its second, the second's."""
    clip, family = hidream_clip(), ca.nodes.families.hidream.HiDreamFamily()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    encoded = clip.encode_from_tokens(tokens, return_dict=True)
    states = family.concept_states(clip, tokens)
    context, llama = encoded["cond"], encoded["conditioning_llama3"]
    assert torch.equal(states[..., :context.shape[-1]], context)
    assert [t[0] for t in tokens["llama"][0][:3]] == [models.LLAMA3_BEGIN, *[t[0] for t in tokens["llama"][0][1:3]]]
    beside = states[0, :, context.shape[-1]:].unflatten(-1, (llama.shape[1], -1))
    for t5_row, llama_row in ((0, 1), (1, 2)):
        assert torch.equal(beside[t5_row], llama[0, :, llama_row])
    assert not beside[2:].any()


def test_block_i_takes_the_concepts_llama_layer_i(ca):
    """Block i's concept tokens: the stream's own, then Llama layer llama_layers[i] through projection i."""
    family, dm = ca.nodes.families.hidream.HiDreamFamily(), models.tiny_hidream(depth=3).model.diffusion_model
    layers, width = max(dm.llama_layers) + 1, models.HIDREAM_LLAMA_WIDTH
    context = torch.randn(1, 2, models.CONTEXT_DIM + layers * width, generator=torch.Generator().manual_seed(0))
    conditioning = {}
    with torch.no_grad():
        stream = family.embed_concepts(dm, context, conditioning)
        llama = context[..., models.CONTEXT_DIM:].unflatten(-1, (layers, width))
        assert torch.allclose(stream[:, 2:], dm.caption_projection[-2](llama[:, :, dm.llama_layers[-1]]))
        for block in range(len(dm.double_stream_blocks)):
            tokens = family.block_concepts(dm, block, stream, conditioning)
            assert torch.equal(tokens[:, :4], stream)
            own = dm.caption_projection[block](llama[:, :, block])
            assert dm.llama_layers[block] == block and torch.allclose(tokens[:, 4:], own)


def test_without_llama_states_the_concepts_take_zero_ones(ca):
    """A context of T5's width alone (no Llama model loaded): zero Llama states, as the encoder gives the prompt."""
    family, dm = ca.nodes.families.hidream.HiDreamFamily(), models.tiny_hidream(depth=2).model.diffusion_model
    conditioning = {}
    with torch.no_grad():
        stream = family.embed_concepts(dm, torch.randn(1, 3, models.CONTEXT_DIM), conditioning)
        assert stream.shape == (1, 6, dm.inner_dim) and not stream[:, 3:].any()
        assert not family.block_concepts(dm, 0, stream, conditioning)[:, 6:].any()


def test_hidream_e1_scores_the_generated_image_in_every_row(ca):
    """HiDream-E1's reference sits beside the latent: each attended row holds the generated image's columns, then
    the reference's; an odd width shares one patch between them, as the forward pads the two as one."""
    family, model = ca.nodes.families.hidream.HiDreamFamily(), models.tiny_hidream(depth=2)
    dm = model.model.diffusion_model
    for width, attended in ((12, 12), (11, 11)):
        x = torch.zeros(1, 16, 8, width)
        arguments = inspect.signature(dm._forward).bind(x, torch.ones(1), image_cond=torch.zeros(1, 16, 8, width))
        call = ca.nodes.families.base.ModelCall(dm, arguments)
        grid = family.token_grid(dm, x)
        assert grid == (4, 6) and family.concept_conditioning(call, slice(0, 1))["image_tokens"] == 4 * attended
        scored = family.scored_image_tokens(call, grid)
        assert scored.tolist() == [row * attended + column for row in range(4) for column in range(6)]
    plain = ca.nodes.families.base.ModelCall(dm, inspect.signature(dm._forward).bind(x, torch.ones(1)))
    assert family.scored_image_tokens(plain, grid) == 24
