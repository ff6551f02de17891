"""Time spent inside the concept stream's own functions, measured in the same run as the total.

The loaded extension's stream functions are wrapped in this process only (its files are not
touched); none of them calls another wrapped one, so their times add up without double counting.
A run's overhead estimate is stream / (total - stream): both parts come from the same run, so
slow drifts of a shared machine cancel out, which wall-time ratios of separate runs cannot do.
"""

import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import bench_host

# (owner, attribute): everything the patch computes for the concepts, and nothing of the model's own.
STREAM_FUNCTIONS = (
    ("stream", "concept_qkv"),  # concept q/k/v (right after the text's qkv layer, on its cast weight)
    ("stream", "attend_concepts"),  # attention over [concepts; image], both scores
    ("step", "after_attention"),  # proj residual of the concept tokens
    ("step", "through_mlp"),  # the MLP on the concept tokens, layer by layer
    ("stream", "mlp_residual"),  # the MLP residual
    ("family", "image_attention"),  # slicing the image part out of the joint attention
    ("family", "concept_modulations"),  # txt_mod on the concept vector, once per block
    ("patch_class", "_open_stream"),  # concept vector and txt_in of the concepts, once per call
    ("patch_class", "concept_maps"),  # the final maps
    ("patch_class", "install"),  # patching model.clone()
    ("aggregator", "add"),  # softmax over concepts + running sum
)


# Parts of the functions above, timed on their own as well: the concepts through the family's text refiner or
# adapter (inside _open_stream; once per sampling run for most families, a cost of the run rather than of a step).
PART_FUNCTIONS = (("family", "embed_concepts"),)


def instrument(host: bench_host.Host, wrap: Callable[[str, Callable], Callable],
               wrap_part: Callable[[str, Callable], Callable] | None = None) -> None:
    """Replace each stream function of the loaded extension by wrap(name, function), and each part by
    wrap_part(name, function) where given; a family function is replaced where it is defined, once, whichever
    families inherit it."""
    families = sys.modules[f"{host.pack.__name__}.nodes.families"].FAMILIES
    owners = {
        "stream": [host.step_module],
        "family": [type(family) for family in families],
        "patch_class": [host.install_module.ConceptAttentionPatch],
        "step": [host.step_module.ConceptStep],
        "aggregator": [sys.modules[f"{host.pack.__name__}.ca_core.aggregate"].ConceptScoreAggregator],
    }
    chosen = [(owner, attribute, wrap) for owner, attribute in STREAM_FUNCTIONS]
    chosen += [(owner, attribute, wrap_part) for owner, attribute in PART_FUNCTIONS if wrap_part is not None]
    for owner_name, attribute, wrapping in chosen:
        defining = []
        for owner in owners[owner_name]:
            where = next(k for k in getattr(owner, "__mro__", (owner,)) if attribute in vars(k))
            if where not in defining:
                defining.append(where)
        for owner in defining:
            original = vars(owner)[attribute]
            if isinstance(original, staticmethod):
                setattr(owner, attribute, staticmethod(wrapping(attribute, original.__func__)))
            else:
                setattr(owner, attribute, wrapping(attribute, original))


class StreamClock:
    """Wall-clock seconds per stream function since the last reset (CPU runs: ops are synchronous)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.parts: dict[str, float] = defaultdict(float)  # PART_FUNCTIONS, inside the seconds above

    def wrap(self, name: str, function: Callable, into: dict | None = None) -> Callable:
        into = self.seconds if into is None else into

        @functools.wraps(function)
        def timed(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                into[name] += time.perf_counter() - start
        return timed

    def wrap_part(self, name: str, function: Callable) -> Callable:
        return self.wrap(name, function, self.parts)

    def reset(self) -> None:
        self.seconds.clear()
        self.parts.clear()

    @property
    def total(self) -> float:
        return sum(self.seconds.values())
