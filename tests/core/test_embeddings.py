import pytest
import torch

from ca_core.embeddings import pool_concept_tokens


def _states():
    # [T=6, C=3]: start token, two word pieces, end token, two pads, each with distinct values.
    states = torch.arange(18, dtype=torch.float32).reshape(6, 3) * 10
    real = torch.tensor([False, True, True, False, False, False])
    return states, real


def test_first_is_the_first_real_token():
    states, real = _states()
    assert torch.equal(pool_concept_tokens(states, real, "first"), states[1])
    assert torch.equal(pool_concept_tokens(states, real), states[1])  # the default, as in the paper


def test_mean_is_over_the_real_tokens_only():
    states, real = _states()
    pooled = pool_concept_tokens(states, real, "mean")
    torch.testing.assert_close(pooled, (states[1] + states[2]) / 2)
    assert not torch.allclose(pooled, states.mean(dim=0))


def test_integer_masks_are_accepted():
    states, real = _states()
    assert torch.equal(pool_concept_tokens(states, real.long(), "first"), states[1])
    torch.testing.assert_close(pool_concept_tokens(states, real.int(), "mean"), (states[1] + states[2]) / 2)


def test_single_real_token_first_equals_mean():
    states = torch.randn(5, 4)
    real = torch.tensor([False, False, False, True, False])
    torch.testing.assert_close(pool_concept_tokens(states, real, "mean"), states[3])
    assert torch.equal(pool_concept_tokens(states, real, "first"), states[3])


def test_no_real_token_is_an_error_naming_the_concept():
    with pytest.raises(ValueError, match="the concept '🐶' encoded to no token of its own"):
        pool_concept_tokens(torch.randn(4, 2), torch.zeros(4, dtype=torch.bool), name="🐶")


def test_unknown_pooling_is_an_error():
    states, real = _states()
    with pytest.raises(ValueError, match="unknown token pooling 'max'"):
        pool_concept_tokens(states, real, "max")
