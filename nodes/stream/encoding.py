"""Concept embeddings through ComfyUI's CLIP: one text-encoder pass per concept."""

from typing import Protocol, runtime_checkable

import torch

from ...ca_core.concepts import SHOWN_NAMES, shown
from ...ca_core.embeddings import pool_concept_tokens


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
        named = ", ".join(shown(name) + (f" ({', '.join(shown(word, quoted=False) for word in words[:SHOWN_NAMES])})"
                                         if words != [name] else "")
                          for name, words in list(unknown.items())[:SHOWN_NAMES])
        if len(unknown) > SHOWN_NAMES:
            named += f" and {len(unknown) - SHOWN_NAMES} more"
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
        unreadable = unknown_tokens(clip, tokens)
        if unreadable:
            raise ValueError(f"the concept {shown(name)} has {unreadable} piece(s) the text encoder cannot read (it sees "
                             "them as its unknown token, so the map would mean nothing): use plain words, not "
                             "emoji or symbols")
        context = family.concept_states(clip, tokens)
        own = family.concept_token_indices(clip, name, tokens, context.shape[1])
        if not own:
            raise ValueError(f"the concept {shown(name)} encoded to no token of its own (only start, end or padding "
                             "tokens): check its spelling, or use words the text encoder knows (emoji and "
                             "symbols alone encode to nothing)")
        positions.append(family.concept_position(own[0], context.shape[1]))
        real = torch.zeros(context.shape[1], dtype=torch.bool, device=context.device)
        real[own] = True
        pooled.append(pool_concept_tokens(context[0], real, pooling, name=name))
    return torch.stack(pooled).unsqueeze(0), positions


def unknown_tokens(clip, tokens: dict) -> int:
    """How many of a tokenized concept's own pieces (word id > 0) are its tokenizer's unknown token (what
    SentencePiece tokenizers such as T5's make of emoji); 0 where a tokenizer has no unknown token."""
    count = 0
    for key, batches in tokens.items():
        tokenizer = getattr(clip.tokenizer, key, None) or getattr(clip.tokenizer, f"clip_{key}", None)
        unknown = _unknown_id(getattr(tokenizer, "tokenizer", None))
        if unknown is not None:
            count += sum(1 for batch in batches for token in batch if token[2] > 0 and token[0] == unknown)
    return count


def _unknown_id(tokenizer) -> int | None:
    unknown = getattr(tokenizer, "unk_token_id", None)  # Hugging Face tokenizers
    if unknown is None and hasattr(getattr(tokenizer, "tokenizer", None), "unk_id"):  # ComfyUI's SPieceTokenizer
        unknown = tokenizer.tokenizer.unk_id()
    return unknown if isinstance(unknown, int) else None
