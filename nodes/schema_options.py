"""Schema options that only some ComfyUI hosts know, each detected once from the host's V3 API."""

import dataclasses
import inspect

from comfy_api.latest import io

# Newer hosts (ComfyUI 0.33) take Input(advanced=...) and Schema(search_aliases=...); 0.3.64 and 0.8 take neither.
ADVANCED_ARGUMENT = "advanced" in inspect.signature(io.Input.__init__).parameters
SEARCH_ALIASES = "search_aliases" in {field.name for field in dataclasses.fields(io.Schema)}
# Where the frontend cannot fold an input, its tooltip says it is advanced.
ADVANCED_PREFIX = "Advanced. "


def advanced(node_input: io.Input) -> io.Input:
    """Mark an input advanced: folded away by the frontend where the host can say so, else named in its tooltip."""
    if ADVANCED_ARGUMENT:
        node_input.advanced = True
    else:
        node_input.tooltip = f"{ADVANCED_PREFIX}{node_input.tooltip}"
    return node_input


def search_aliases(*aliases: str) -> dict:
    """Schema keyword arguments that let the node search find a node by other words, where the host can."""
    return {"search_aliases": list(aliases)} if SEARCH_ALIASES else {}
