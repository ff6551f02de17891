"""Concept lists as users type them: "dog, grass, sky" or one per line."""

import re

MAX_CONCEPTS = 64


class ConceptListError(ValueError):
    """A concept list the method cannot use; the message says how to fix it."""


def parse_concepts(text: str, max_concepts: int = MAX_CONCEPTS) -> list[str]:
    """Split comma/newline separated concept names, trimmed, in the order typed."""
    if not isinstance(text, str):
        raise ConceptListError(f"concepts must be text, got {type(text).__name__}")
    names = [part.strip() for part in re.split(r"[,\n]", text)]
    if not any(names):
        raise ConceptListError('concepts is empty: type at least one, e.g. "dog, grass, sky"')
    empty_at = [i + 1 for i, name in enumerate(names) if not name]
    # A trailing separator ("dog, sky,") is a typing habit, not a missing name.
    while names and not names[-1]:
        names.pop()
        empty_at.pop()
    if empty_at:
        raise ConceptListError(
            f"concepts has an empty name at position(s) {empty_at}: remove the extra comma or blank line"
        )
    seen: dict[str, int] = {}
    for name in names:
        key = name.casefold()
        seen[key] = seen.get(key, 0) + 1
    duplicates = [name for name in dict.fromkeys(names) if seen[name.casefold()] > 1]
    if duplicates:
        raise ConceptListError(f"concepts lists {duplicates} more than once: keep each concept once")
    if len(names) > max_concepts:
        raise ConceptListError(
            f"concepts has {len(names)} names; at most {max_concepts} are supported: merge or drop some"
        )
    return names


def resolve_concept_names(requested: str, known: list[str]) -> list[int]:
    """Indices of the requested names (comma separated) among the known concepts."""
    wanted = parse_concepts(requested)
    index = {name.casefold(): i for i, name in enumerate(known)}
    unknown = [name for name in wanted if name.casefold() not in index]
    if unknown:
        raise ConceptListError(f"unknown concept(s) {unknown}: the maps hold {known}")
    return [index[name.casefold()] for name in wanted]
