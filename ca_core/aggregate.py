"""Streaming mean of per-layer, per-step concept scores.

Memory stays O(batch x concepts x image tokens) however many layers and steps contribute:
each score is folded into a running sum the moment it is computed.
"""

from dataclasses import dataclass

import torch
from torch import Tensor

SPACES = ("output", "cross_attention")


@dataclass(frozen=True)
class TokenWindow:
    """Where the scores of a model call that saw part of the image tokens (a context window's frames of a long
    clip) land among the whole run's `total` tokens: the call's scored tokens `kept` go to the run's tokens
    `placed`, each weighted by `weights` (how the sampler fuses that window's latents there)."""

    kept: Tensor  # [M] indices into the call's scored tokens
    placed: Tensor  # [M] the same tokens' indices among the run's
    weights: Tensor  # [M] float32
    total: int

    def to(self, device) -> "TokenWindow":
        return TokenWindow(self.kept.to(device), self.placed.to(device), self.weights.to(device), self.total)


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
        # what each token's sum is divided by: the count of scores, or per token [N] once a window placed some
        self.weights: dict[str, float | Tensor] = {}

    def add(self, space: str, scores: Tensor, window: TokenWindow | None = None) -> None:
        """Fold one layer's scores [B, K, N] for one step into the mean; window: where they land, for a call that
        saw part of the tokens."""
        if space not in SPACES:
            raise ValueError(f"unknown score space {space!r}; expected one of {SPACES}")
        scores = scores.float()
        kept = self.sums.get(space)
        if kept is not None and kept.device != scores.device:  # another device's call (MultiGPU): sum where they are
            scores, window = scores.to(kept.device), window.to(kept.device) if window is not None else None
        if self.softmax:
            fold_scores(self.raw_sums, space, scores, window)
            scores = torch.softmax(scores, dim=1)
        fold_scores(self.sums, space, scores, window)
        self.counts[space] = self.counts.get(space, 0) + 1
        weight = 1.0
        if window is not None:
            weight = scores.new_zeros(window.total).index_add_(0, window.placed, window.weights.to(scores))
        self.weights[space] = self.weights.get(space, 0.0) + weight

    def mean(self, space: str, raw: bool = False) -> Tensor:
        """The mean maps [B, K, N]; raw: the raw scores' mean (the maps themselves where there is no softmax)."""
        if space not in self.sums:
            raise RuntimeError(
                f"no {space} scores were collected: the chosen layers or steps never ran"
            )
        sums, weights = (self.raw_sums if raw and self.softmax else self.sums)[space], self.weights[space]
        if isinstance(weights, Tensor):  # windows weighted each token on its own; a token none covered stays 0
            return torch.where(weights > 0, sums / weights.clamp_min(torch.finfo(weights.dtype).tiny), 0.0)
        return sums / weights

    @property
    def contributions(self) -> int:
        return max(self.counts.values(), default=0)


def fold_scores(sums: dict[str, Tensor], space: str, scores: Tensor, window: TokenWindow | None = None) -> None:
    """Add one layer's scores to the running sum of their space (weighted, at their place, for a window)."""
    total = sums.get(space)
    if window is not None:
        if total is None:
            total = sums[space] = scores.new_zeros(*scores.shape[:-1], window.total)
        elif total.shape != (*scores.shape[:-1], window.total):
            raise ValueError(f"scores changed shape mid-run: {tuple(total.shape)} then a window of "
                             f"{tuple(scores.shape)} over {window.total} tokens")
        total.index_add_(-1, window.placed, scores[..., window.kept] * window.weights.to(scores))
    elif total is None:
        sums[space] = scores.clone()
    elif total.shape != scores.shape:
        raise ValueError(f"scores changed shape mid-run: {tuple(total.shape)} then {tuple(scores.shape)}")
    else:
        total += scores
