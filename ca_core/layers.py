"""Which double blocks and sampling steps contribute to the maps."""

import enum
import re

from .concepts import shown

# The reference pipeline scores Flux.1's double blocks 15-18 of 19: the last four. Families set their own.
DEFAULT_LAST_BLOCKS = 4


class AutoLayers(enum.Enum):
    """What `layers = auto` takes where a family's default is not a count of last blocks."""

    ALL_BLOCKS = "all blocks"


# `auto` averages every joint block (the family's whole stack, whatever its depth)
ALL_BLOCKS = AutoLayers.ALL_BLOCKS


class SelectionError(ValueError):
    """A layer or step choice that does not fit the model or the run."""


def parse_layers(text: str, depth: int, last_blocks: int | AutoLayers = DEFAULT_LAST_BLOCKS) -> tuple[int, ...]:
    """Double-block indices from "auto", "all", "15-18", "15,16,17,18" or "-1" (from the end).

    auto: the last `last_blocks` double blocks (the family's default), which is 15-18 on Flux.1's 19;
    ALL_BLOCKS: every block.
    """
    last_blocks = depth if last_blocks is ALL_BLOCKS else last_blocks
    spec = text.strip().lower()
    if spec in ("", "auto"):
        return tuple(range(max(0, depth - last_blocks), depth))
    if spec == "all":
        return tuple(range(depth))
    chosen: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", part)
        if span:
            first, last = int(span[1]), int(span[2])
            if first > last:
                raise SelectionError(f"layer range {shown(part)} runs backwards: write it as {last}-{first}")
            indices = range(first, last + 1)
        elif re.fullmatch(r"-?\d+", part):
            index = int(part)
            indices = [index + depth if index < 0 else index]
        else:
            raise SelectionError(f"layers {shown(text)}: cannot read {shown(part)}; "
                                 f"use {layer_examples(depth, last_blocks)}")
        for index in indices:
            if not 0 <= index < depth:
                raise SelectionError(
                    f"layer {shown(part, quoted=False)} is out of range: this model has {depth} double blocks "
                    f"(0-{depth - 1}); use {layer_examples(depth, last_blocks)}"
                )
            chosen.add(index)
    return tuple(sorted(chosen))


def layer_examples(depth: int, last_blocks: int | AutoLayers = DEFAULT_LAST_BLOCKS) -> str:
    """What a user can type for a model `depth` double blocks deep, drawn from that model: e.g. on a
    6-block model "auto, all, 2-5, 2,3,4,5 or -1"."""
    last_blocks = depth if last_blocks is ALL_BLOCKS else last_blocks
    first = max(0, depth - last_blocks)
    if depth - first < 2:
        return "auto, all or -1"
    chosen = range(first, depth)
    return f"auto, all, {first}-{depth - 1}, {','.join(map(str, chosen))} or -1"


def step_index(sigma: float, sample_sigmas: list[float]) -> int:
    """The sampling step a model call belongs to: the last schedule sigma at or above it.

    Multi-evaluation samplers (Heun, DPM2) call the model between two schedule sigmas; those
    calls count toward the step they started from.
    """
    index = 0
    tolerance = 1e-4 * max(abs(sigma), 1e-8)
    for i, s in enumerate(sample_sigmas[:-1] if len(sample_sigmas) > 1 else sample_sigmas):
        if s + tolerance >= sigma:
            index = i
    return index
