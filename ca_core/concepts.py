"""Concept lists as users type them: "dog, grass, sky" or one per line."""

import re

MAX_CONCEPTS = 64
BACKGROUND = "background"  # the concept that names the rest of the image (masks.concept_presence)
# how much of a user's text an error message quotes: a name to about this many characters, a list to this many
# names, so that a message stays readable whatever was typed
SHOWN_CHARACTERS = 40
SHOWN_NAMES = 8


class ConceptListError(ValueError):
    """A concept list the method cannot use; the message says how to fix it."""


def shown(text: str, limit: int = SHOWN_CHARACTERS, quoted: bool = True) -> str:
    """A user's text as a message quotes it: shortened to `limit` characters with "…", as a repr."""
    text = str(text)
    text = text if len(text) <= limit else text[:limit - 1] + "…"
    return repr(text) if quoted else text


def shown_list(names, limit: int = SHOWN_NAMES, characters: int = 4 * SHOWN_CHARACTERS) -> str:
    """Names as a message lists them: each shown(), the first `limit` of them (fewer where long names would
    pass about `characters`), then "and N more"."""
    names, parts = list(names), []
    for name in names[:limit]:
        if parts and sum(len(part) + 2 for part in parts) + len(shown(name)) > characters:
            break
        parts.append(shown(name))
    more = f" and {len(names) - len(parts)} more" if len(names) > len(parts) else ""
    return "[" + ", ".join(parts) + more + "]"


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
        raise ConceptListError(f"concepts lists {shown_list(duplicates)} more than once: keep each concept once")
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
        raise ConceptListError(f"unknown concept(s) {shown_list(unknown)}: the maps hold {shown_list(known)}")
    return [index[name.casefold()] for name in wanted]
