"""Concept embeddings through ComfyUI's CLIP: one text-encoder pass per concept."""

from typing import Protocol, runtime_checkable

import torch

from ..ca_core.embeddings import pool_concept_tokens


@runtime_checkable
class ClosedVocabulary(Protocol):
    """A tokenizer that knows a fixed list of words (the demo model's) and reads any other as one
    unknown token, so every unknown concept would give the same map."""

    known_words: tuple[str, ...]

    def unknown_words(self, text: str) -> list[str]: ...


def refuse_unknown_concepts(tokenizer, names: list[str]) -> None:
    if not isinstance(tokenizer, ClosedVocabulary):
        return
    unknown = {name: tokenizer.unknown_words(name) for name in names}
    unknown = {name: words for name, words in unknown.items() if words}
    if unknown:
        named = ", ".join(f"{name!r}" + (f" ({', '.join(words)})" if words != [name] else "")
                          for name, words in unknown.items())
        subject = f"the concept {named} is not a word" if len(unknown) == 1 else f"the concepts {named} are not words"
        raise ValueError(f"{subject} this model's text encoder knows: it reads every unknown word as the same token, "
                         f"so their maps would be alike. Use words it knows: {', '.join(tokenizer.known_words)}")


def encode_concepts(clip, names: list[str], pooling: str, family) -> tuple[torch.Tensor, list[int]]:
    """[1, K, C]: each concept encoded alone, pooled over its own tokens (the family finds them); and the
    text position the model gives each concept's first own token (families whose text tokens carry RoPE
    positions give the concept that position)."""
    if clip is None:
        raise ValueError("clip is not connected: wire the CLIP that encoded your prompt")
    refuse_unknown_concepts(clip.tokenizer, names)
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
