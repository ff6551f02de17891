"""Concept embeddings through ComfyUI's CLIP: one text-encoder pass per concept."""

import torch

from ..ca_core.embeddings import pool_concept_tokens


def encode_concepts(clip, names: list[str], pooling: str, family) -> tuple[torch.Tensor, list[int]]:
    """[1, K, C]: each concept encoded alone, pooled over its own tokens (the family finds them); and the
    text position the model gives each concept's first own token (families whose text tokens carry RoPE
    positions give the concept that position)."""
    if clip is None:
        raise ValueError("clip is not connected: wire the CLIP that encoded your prompt")
    pooled, positions = [], []
    for name in names:
        tokens = clip.tokenize(name, return_word_ids=True)
        context = clip.encode_from_tokens(tokens)
        own = family.concept_token_indices(clip, name, tokens, context.shape[1])
        if not own:
            raise ValueError(f"the concept {name!r} encoded to no token of its own (only start, end or padding "
                             "tokens): check its spelling, or use words the text encoder knows")
        positions.append(family.concept_position(own[0], context.shape[1]))
        real = torch.zeros(context.shape[1], dtype=torch.bool, device=context.device)
        real[own] = True
        pooled.append(pool_concept_tokens(context[0], real, pooling))
    return torch.stack(pooled).unsqueeze(0), positions
