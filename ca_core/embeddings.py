"""Concept embeddings: one text-encoder pass per concept, pooled to one token."""

import torch
from torch import Tensor

from .concepts import shown

TOKEN_POOLINGS = ("first", "mean")


def pool_concept_tokens(token_states: Tensor, real_tokens: Tensor, pooling: str = "first", name: str = "") -> Tensor:
    """One [C] embedding from a concept's encoded tokens [T, C].

    real_tokens: [T] bool, True for the concept's own word pieces (no start, end or padding).
    first: the first real token (the paper); mean: the mean over all of them, so a multi-token
    concept such as "traffic light" is not reduced to "traffic". name: the concept, for the error.
    """
    if pooling not in TOKEN_POOLINGS:
        raise ValueError(f"unknown token pooling {shown(pooling)}; expected one of {TOKEN_POOLINGS}")
    positions = torch.nonzero(real_tokens.to(torch.bool), as_tuple=False).flatten()
    if positions.numel() == 0:
        raise ValueError(f"the concept {shown(name)} encoded to no token of its own: check its spelling, or use words "
                         "the text encoder knows (emoji and symbols alone encode to nothing)")
    if pooling == "first":
        return token_states[positions[0]]
    return token_states[positions].mean(dim=0)
