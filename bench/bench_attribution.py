"""Time spent inside the concept stream's own functions, measured in the same run as the total.

The loaded extension's stream functions are wrapped in this process only (its files are not
touched); a wrapped function called inside another is counted once, in the outer one.
A run's overhead estimate is stream / (total - stream - calibration): both parts come from the same run,
so slow drifts of a shared machine cancel out, which wall-time ratios of separate runs cannot do.

The concepts' rows that ride along in a text layer's own product (nodes/stream/shared_casts.py) run inside the
model's layer call, not in a stream function: each such product is timed, then the text's product alone is
timed right after it (the calibration, taken out of the run's total), and the difference is the stream's: the
concepts' rows, the copy that appends them, and the check of a new shape.
"""

import functools
import sys
import time
from collections import defaultdict
from collections.abc import Callable

import bench_host
import torch.nn.functional as F

# (owner, attribute): everything the patch computes for the concepts, and nothing of the model's own.
STREAM_FUNCTIONS = (
    ("stream", "concept_qkv"),  # concept q/k/v (right after the text's qkv layer, on its cast weight)
    ("stream", "attend_concepts"),  # attention over [concepts; image], both scores
    ("stream", "attend_ahead"),  # that attention, made before the image's where their q/k/v rode along
    ("step", "qkv_rows"),  # the concepts' rows that ride along in a text layer's product
    ("step", "proj_rows"),
    ("step", "mlp_rows"),
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


# The text product that takes the concepts' rows along (its time beyond the product alone is the stream's).
RIDE_ALONG = ("_FirstLinear", "_with_extra_rows")


def instrument(host: bench_host.Host, wrap: Callable[[str, Callable], Callable],
               wrap_part: Callable[[str, Callable], Callable] | None = None,
               ride_along: Callable[[Callable], Callable] | None = None) -> None:
    """Replace each stream function of the loaded extension by wrap(name, function), each part by
    wrap_part(name, function) where given, and the product that takes the concepts' rows along by
    ride_along(function) where given; a family function is replaced where it is defined, once, whichever
    families inherit it."""
    families = sys.modules[f"{host.pack.__name__}.nodes.families"].FAMILIES
    owners = {
        "stream": [host.step_module],
        "family": [type(family) for family in families],
        "patch_class": [host.install_module.ConceptAttentionPatch],
        "step": [host.step_module.ConceptStep],
        "aggregator": [sys.modules[f"{host.pack.__name__}.ca_core.aggregate"].ConceptScoreAggregator],
    }
    inside = [0]  # stream functions running: one called inside another is counted in the outer, for every wrap

    def outermost(name: str, function: Callable) -> Callable:
        wrapped = wrap(name, function)

        @functools.wraps(function)
        def counted_once(*args, **kwargs):
            if inside[0]:
                return function(*args, **kwargs)
            inside[0] += 1
            try:
                return wrapped(*args, **kwargs)
            finally:
                inside[0] -= 1
        return counted_once

    chosen = [(owner, attribute, outermost) for owner, attribute in STREAM_FUNCTIONS]
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
    if ride_along is not None:
        product = getattr(sys.modules[f"{host.pack.__name__}.nodes.stream.shared_casts"], RIDE_ALONG[0])
        setattr(product, RIDE_ALONG[1], ride_along(vars(product)[RIDE_ALONG[1]]))


class StreamClock:
    """Wall-clock seconds per stream function since the last reset (CPU runs: ops are synchronous)."""

    def __init__(self):
        self.seconds: dict[str, float] = defaultdict(float)
        self.parts: dict[str, float] = defaultdict(float)  # PART_FUNCTIONS, inside the seconds above
        self.calibration = 0.0  # the text products timed alone to attribute the ride-along rows (not the model's)
        # the calibration runs only in timed rounds: in a memory run its product would add to the peak
        self.timing = False

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

    def ride_along(self, function: Callable) -> Callable:
        """The text product with the concepts' rows appended: its time beyond the text's product alone, timed
        right after it, is the stream's."""

        @functools.wraps(function)
        def timed(mode, x, weight, bias):
            if not self.timing:
                return function(mode, x, weight, bias)
            start = time.perf_counter()
            result = function(mode, x, weight, bias)
            appended = time.perf_counter() - start
            start = time.perf_counter()
            F.linear(x, weight, bias)
            alone = time.perf_counter() - start
            self.calibration += alone
            self.seconds["ride_along"] += max(appended - alone, 0.0)
            return result
        return timed

    def reset(self) -> None:
        self.seconds.clear()
        self.parts.clear()
        self.calibration = 0.0

    @property
    def total(self) -> float:
        return sum(self.seconds.values())
