"""Streaming mean of per-layer, per-step concept scores.

Memory stays O(batch x concepts x image tokens) however many layers and steps contribute:
each score is folded into a running sum the moment it is computed.
"""

import torch
from torch import Tensor

SPACES = ("output", "cross_attention")


def softmax_over(concepts: int, requested: bool) -> bool:
    """Whether the scores take a softmax over concepts. A softmax over one concept is the constant 1 and
    would erase its map, so one concept keeps its raw scores (ConceptMaps.one_concept_raw says so, and
    masks cut them at ca_core.masks.ONE_CONCEPT_CUT); two or more follow the request (the paper: on)."""
    return requested and concepts > 1


class ConceptScoreAggregator:
    """Mean over the chosen layers and steps, with an optional softmax over concepts first. With the softmax, the
    raw scores' mean is kept too: it tells where each concept is present at all (masks.present), which the
    softmax, a competition among the named concepts only, cannot."""

    def __init__(self, softmax: bool = True):
        self.softmax = softmax
        self.sums: dict[str, Tensor] = {}
        self.raw_sums: dict[str, Tensor] = {}
        self.counts: dict[str, int] = {}

    def add(self, space: str, scores: Tensor) -> None:
        """Fold one layer's scores [B, K, N] for one step into the mean."""
        if space not in SPACES:
            raise ValueError(f"unknown score space {space!r}; expected one of {SPACES}")
        scores = scores.float()
        if self.softmax:
            fold_scores(self.raw_sums, space, scores)
            scores = torch.softmax(scores, dim=1)
        fold_scores(self.sums, space, scores)
        self.counts[space] = self.counts.get(space, 0) + 1

    def mean(self, space: str, raw: bool = False) -> Tensor:
        """The mean maps [B, K, N]; raw: the raw scores' mean (the maps themselves where there is no softmax)."""
        if space not in self.sums:
            raise RuntimeError(
                f"no {space} scores were collected: the chosen layers or steps never ran"
            )
        sums = self.raw_sums if raw and self.softmax else self.sums
        return sums[space] / self.counts[space]

    @property
    def contributions(self) -> int:
        return max(self.counts.values(), default=0)


def fold_scores(sums: dict[str, Tensor], space: str, scores: Tensor) -> None:
    """Add one layer's scores to the running sum of their space."""
    total = sums.get(space)
    if total is None:
        sums[space] = scores.clone()
    elif total.shape != scores.shape:
        raise ValueError(f"scores changed shape mid-run: {tuple(total.shape)} then {tuple(scores.shape)}")
    else:
        total += scores
