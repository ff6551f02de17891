import pytest
import torch

from ca_core.aggregate import ConceptScoreAggregator, TokenWindow


def _scores(n, shape=(2, 3, 5), seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(*shape, generator=g) * 3 for _ in range(n)]


def _manual_softmax_over_concepts(s):
    e = torch.exp(s - s.amax(dim=1, keepdim=True))
    return e / e.sum(dim=1, keepdim=True)


def test_softmax_over_concepts_then_mean():
    scores = _scores(4)
    agg = ConceptScoreAggregator(softmax=True)
    for s in scores:
        agg.add("output", s)
    expected = sum(_manual_softmax_over_concepts(s) for s in scores) / len(scores)
    mean = agg.mean("output")
    assert mean.shape == (2, 3, 5)
    torch.testing.assert_close(mean, expected, rtol=1e-6, atol=1e-6)
    # Each token's concept distribution sums to one; the token axis does not.
    torch.testing.assert_close(mean.sum(dim=1), torch.ones(2, 5))
    assert not torch.allclose(mean.sum(dim=2), torch.ones(2, 3))


def test_without_softmax_it_is_a_plain_mean():
    scores = _scores(3)
    agg = ConceptScoreAggregator(softmax=False)
    for s in scores:
        agg.add("cross_attention", s)
    torch.testing.assert_close(agg.mean("cross_attention"), torch.stack(scores).mean(dim=0))


def test_spaces_are_kept_apart():
    a, b = _scores(2)
    agg = ConceptScoreAggregator(softmax=False)
    agg.add("output", a)
    agg.add("output", a)
    agg.add("cross_attention", b)
    torch.testing.assert_close(agg.mean("output"), a)
    torch.testing.assert_close(agg.mean("cross_attention"), b)
    assert agg.counts == {"output": 2, "cross_attention": 1}
    assert agg.contributions == 2


def test_contributions_before_any_add():
    assert ConceptScoreAggregator().contributions == 0


def test_half_precision_scores_are_summed_in_float32():
    agg = ConceptScoreAggregator(softmax=False)
    agg.add("output", torch.ones(1, 2, 3, dtype=torch.bfloat16))
    assert agg.mean("output").dtype == torch.float32


def test_memory_does_not_grow_with_the_number_of_adds():
    agg = ConceptScoreAggregator(softmax=True)
    scores = _scores(50, shape=(2, 4, 6))
    agg.add("output", scores[0])
    ptr = agg.sums["output"].data_ptr()
    for s in scores[1:]:
        agg.add("output", s)
        agg.add("cross_attention", s)
    assert set(agg.sums) == {"output", "cross_attention"}
    assert all(isinstance(t, torch.Tensor) and t.shape == (2, 4, 6) for t in agg.sums.values())
    assert agg.sums["output"].data_ptr() == ptr  # folded in place, never re-allocated
    assert agg.counts["output"] == 50


def test_caller_scores_are_not_modified():
    a, b = _scores(2)
    a_before = a.clone()
    agg = ConceptScoreAggregator(softmax=False)
    agg.add("output", a)
    agg.add("output", b)
    assert torch.equal(a, a_before)


def test_shape_change_is_an_error():
    agg = ConceptScoreAggregator()
    agg.add("output", torch.zeros(1, 3, 16))
    with pytest.raises(ValueError, match=r"changed shape.*\(1, 3, 16\).*\(1, 3, 20\)"):
        agg.add("output", torch.zeros(1, 3, 20))


def test_unknown_space_is_an_error():
    with pytest.raises(ValueError, match="unknown score space 'attention'"):
        ConceptScoreAggregator().add("attention", torch.zeros(1, 2, 3))


def test_mean_before_any_add_raises():
    agg = ConceptScoreAggregator()
    with pytest.raises(RuntimeError, match="no output scores"):
        agg.mean("output")
    agg.add("output", torch.zeros(1, 2, 3))
    with pytest.raises(RuntimeError, match="no cross_attention scores"):
        agg.mean("cross_attention")


def test_with_softmax_the_raw_scores_mean_is_kept_too():
    scores = _scores(3)
    agg = ConceptScoreAggregator(softmax=True)
    for s in scores:
        agg.add("output", s)
    torch.testing.assert_close(agg.mean("output", raw=True), sum(scores) / 3)
    assert not torch.allclose(agg.mean("output", raw=True), agg.mean("output"))
    plain = ConceptScoreAggregator(softmax=False)
    plain.add("output", scores[0])
    assert torch.equal(plain.mean("output", raw=True), plain.mean("output"))  # its maps are the raw scores


def test_windows_land_on_their_tokens_with_their_weights():
    """Two windows of 3 tokens over 5 (tokens 0-2 and 2-4; the second call also saw an anchor token first, not
    kept): each token's mean is the weighted mean of the windows over it, both spaces and the raw scores alike."""
    first, second = _scores(2, shape=(2, 3, 3))[0], _scores(2, shape=(2, 3, 4), seed=1)[1]
    agg = ConceptScoreAggregator(softmax=True)
    agg.add("output", first, TokenWindow(torch.arange(3), torch.arange(3), torch.tensor([1.0, 2.0, 1.0]), 5))
    agg.add("output", second, TokenWindow(torch.arange(1, 4), torch.arange(2, 5), torch.tensor([1.0, 2.0, 1.0]), 5))
    soft_first, soft_second = _manual_softmax_over_concepts(first), _manual_softmax_over_concepts(second[..., 1:])
    expected = torch.cat([soft_first[..., :2], (soft_first[..., 2:] + soft_second[..., :1]) / 2,
                          soft_second[..., 1:]], dim=-1)
    torch.testing.assert_close(agg.mean("output"), expected, rtol=1e-6, atol=1e-6)
    raw = torch.cat([first[..., :2], (first[..., 2:] + second[..., 1:2]) / 2, second[..., 2:]], dim=-1)
    torch.testing.assert_close(agg.mean("output", raw=True), raw, rtol=1e-6, atol=1e-6)
    assert agg.contributions == 2


def test_a_token_no_window_covered_stays_zero():
    agg = ConceptScoreAggregator(softmax=False)
    agg.add("output", torch.ones(1, 2, 2), TokenWindow(torch.arange(2), torch.tensor([0, 1]), torch.ones(2), 3))
    assert torch.equal(agg.mean("output"), torch.tensor([[[1.0, 1.0, 0.0], [1.0, 1.0, 0.0]]]))
