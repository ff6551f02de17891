"""Concept embeddings through ComfyUI's CLIP: one text-encoder pass per concept."""

import torch

from ..ca_core.embeddings import pool_concept_tokens

# The key of the text encoder whose hidden states are the prompt context, by preference.
CONTEXT_KEYS = ("t5xxl",)


def encode_concepts(clip, names: list[str], pooling: str) -> torch.Tensor:
    """[1, K, C]: each concept encoded alone, pooled over its own word pieces."""
    if clip is None:
        raise ValueError("clip is not connected: wire the CLIP that encoded your prompt")
    pooled = []
    for name in names:
        tokens = clip.tokenize(name, return_word_ids=True)
        context = clip.encode_from_tokens(tokens)
        word_ids = _context_word_ids(tokens, context.shape[1], name)
        real = torch.tensor([w > 0 for w in word_ids], device=context.device)
        pooled.append(pool_concept_tokens(context[0], real, pooling))
    return torch.stack(pooled).unsqueeze(0)


def _context_word_ids(tokens: dict, length: int, name: str) -> list[int]:
    """Word ids (0 for start/end/padding) of the tokenizer whose sequence is the context."""
    candidates = {key: [t[2] for batch in value for t in batch] for key, value in tokens.items()}
    keys = [k for k in CONTEXT_KEYS if k in candidates] + [k for k in candidates if k not in CONTEXT_KEYS]
    for key in keys:
        if len(candidates[key]) == length:
            return candidates[key]
    raise ValueError(
        f"cannot align the tokens of concept {name!r} with its {length} encoded positions "
        f"(tokenizers: {sorted(candidates)}); this text encoder is not supported for concepts"
    )
