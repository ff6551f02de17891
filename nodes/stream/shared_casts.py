"""The text stream's weights as its own call cast them, used for the concepts at that very moment.

Quantized and low-precision models (fp8, GGUF, a LoRA applied on the fly, offloaded layers) cast or
dequantize every weight each time its layer runs. The concepts run the text stream's layers a second
time, which would cast them again: on a GGUF or fp8 Flux that is a fifth of the model's weights per step.
Instead, while the block runs, the layers of each of the concepts' steps (their modulation, q/k/v, projection,
MLP) are watched; right after the last of them has run, the step runs with that layer's forward replaced by
F.linear on the weight and bias the text's call used. The weight is dropped as soon as that step is done, so no
cast weight outlives its layer's call by more than the concepts' few tokens.

Where the concepts' input to a step is ready when its first layer's call begins (q/k/v, the projection, the MLP
once the attention's residual is in), that call's product takes the concepts' rows along, appended to the text's,
and the weight is read once for both; so does each later layer of the step that the text gives the same input (a
gated MLP's gate and up projections). The step then finds those layers' outputs for its rows. The text rows must
come out bit for bit as from the product alone, which is checked once per shape (a backend may pick another
kernel for another row count); where they do not, the two products run apart on the one cast weight. A layer
whose input for the concepts is not the step's own (the middle layer of a three-layer MLP) runs as usual within the
step. The concepts' q/k/v wait for the image's attention, the peak of a block: they are made this way only where the
call casts the weight; on a layer's own full-precision weight there is nothing to share, and they are made after
that attention, holding nothing through it.

A layer is shared only where its forward was exactly F.linear(its input, weight, bias), returned as is:
a layer that scales its input or output (scaled fp8 before ComfyUI 0.33) or multiplies with another
kernel (fp8 matmul) is not, and the concepts' step then runs later with the layer as usual.
"""

import contextlib
import weakref
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

from ...ca_core.few_rows import few_row_linear

# Whether a layer's product with the concepts' rows appended gives the text rows exactly as the product alone, by
# (input shape, rows' shape, weight shape, dtypes, device, bias): checked once per shape, as a backend may choose
# another kernel for another row count. Where it does not, the layer runs alone and the concepts after it.
_SAME_AS_ALONE: dict[tuple, bool] = {}
# Layers whose input within the concepts' step turned out not to be the step's own (a norm or a gate before them in
# the family's callable): their calls take no rows along again.
_OTHER_INPUT: weakref.WeakSet = weakref.WeakSet()


class _FirstLinear(TorchFunctionMode):
    """Inside one layer's forward: the first F.linear applied to the layer's own input, and its result. Given
    the concepts' rows for the layer, that product takes them along (one read of the weight for both) where it
    gives the text rows bit for bit as alone; their output is kept in extra_output."""

    def __init__(self, module, layer_input, find_rows: Callable[[], Tensor | None] | None = None,
                 cast_only: bool = False):
        super().__init__()
        self.module, self.layer_input = module, layer_input
        self.seen = None  # (weight, bias, result); () when the first F.linear was not on the layer's input
        # the concepts' rows are found when the product is reached, so none are made where they do not ride along
        self.find_rows, self.extra_rows, self.extra_output = find_rows, None, None
        # cast_only: the concepts' rows ride along only on a cast weight (own_weight: the product was on the layer's
        # own parameter, no cast to share)
        self.cast_only, self.own_weight = cast_only, False

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is not F.linear or self.seen is not None:
            return func(*args, **kwargs)
        x = args[0] if args else kwargs.get("input")
        weight = args[1] if len(args) > 1 else kwargs.get("weight")
        bias = args[2] if len(args) > 2 else kwargs.get("bias")
        if x is not self.layer_input:
            self.seen = ()
            return func(*args, **kwargs)
        if self.cast_only and weight is getattr(self.module, "weight", None):
            self.own_weight = True
            self.seen = (weight, bias, func(*args, **kwargs))
            return self.seen[2]
        self.extra_rows = self.find_rows() if self.find_rows is not None else None
        result = self._with_extra_rows(x, weight, bias) if self.extra_rows is not None else None
        if result is None:
            result = func(*args, **kwargs)
        self.seen = (weight, bias, result)
        return result

    def _with_extra_rows(self, x: Tensor, weight, bias) -> Tensor | None:
        extra = self.extra_rows
        if not (isinstance(x, Tensor) and isinstance(weight, Tensor) and weight.dim() == 2 and x.dim() >= 2
                and extra.shape[-1] == x.shape[-1] and extra.device == x.device):
            return None
        key = (tuple(x.shape), tuple(extra.shape), tuple(weight.shape), weight.dtype, x.dtype, x.device,
               bias is None)
        if _SAME_AS_ALONE.get(key) is False:
            return self._apart(x, weight, bias)
        rows = x.reshape(-1, x.shape[-1])
        both = F.linear(torch.cat([rows, extra.reshape(-1, extra.shape[-1]).to(rows.dtype)]), weight, bias)
        text = both[:rows.shape[0]].view(*x.shape[:-1], both.shape[-1])
        if key not in _SAME_AS_ALONE:
            alone = F.linear(x, weight, bias)
            _SAME_AS_ALONE[key] = torch.equal(text, alone)
            if not _SAME_AS_ALONE[key]:
                self._concepts_apart(x, weight, bias)
                return alone
        concept_rows = both[rows.shape[0]:].view(*extra.shape[:-1], both.shape[-1])
        # where the text's rows outnumber the concepts', a copy of the concepts' few rows: a view would keep the whole
        # product alive as long as the concepts keep their output (their q/k/v wait for the attention, and past it
        # where the stream enters at the attention); a short text's product costs less than that copy
        self.extra_output = concept_rows.clone() if rows.shape[0] > concept_rows.numel() // both.shape[-1] \
            else concept_rows
        return text

    def _apart(self, x: Tensor, weight, bias) -> Tensor:
        """The text's product alone, and the concepts' on the same cast weight (two reads, one cast)."""
        self._concepts_apart(x, weight, bias)
        return F.linear(x, weight, bias)

    def _concepts_apart(self, x: Tensor, weight, bias) -> None:
        self.extra_output = few_row_linear(self.extra_rows.to(x.dtype), weight, bias)


def linear_layers(function, declared: tuple = ()) -> tuple:
    """The linear layers a step of the concepts runs through `function`: those inside the modules the family
    declares (where the function is a plain callable), else those inside the module it is."""
    modules = tuple(declared) or ((function,) if isinstance(function, torch.nn.Module) else ())
    return tuple(layer for module in modules for layer in module.modules()
                 if isinstance(getattr(layer, "weight", None), Tensor) and layer.weight.dim() == 2)


class _Group:
    """The layers one step of the concepts runs (q, k and v; a projection; an MLP's layers), and what their own
    calls gave the concepts so far. The concepts' input to the step (rows) is taken along by the first of the layers
    to run, and by each later one that gets the same input from the text (a gated MLP's gate and up projections);
    the step runs once the last of them has run, on its cast weight, the others giving the outputs they took along."""

    def __init__(self, layers: tuple, step: Callable[[], None], rows: Callable[[], Tensor | None] | None,
                 cast_only: bool):
        self.layers, self.step, self.rows, self.cast_only = layers, step, rows, cast_only
        self.text_input = None  # the text's input to the first of the layers to run
        self.concept_rows: Tensor | None = None
        self.outputs: dict = {}  # layer -> (the concepts' rows, their output), from the layer's own call
        self.called: set = set()
        self.done = False

    def finish(self) -> None:
        """Done: nothing of the layers' calls (their input, the concepts' rows and outputs) outlives the step."""
        self.done = True
        self.text_input = self.concept_rows = None
        self.outputs.clear()

    def rows_for(self, layer, layer_input) -> Tensor | None:
        """The concepts' rows for a layer's call that gets `layer_input` from the text (None: none to take)."""
        if self.rows is None or layer in _OTHER_INPUT:
            return None
        if not self.called and self.text_input is None:
            self.text_input = layer_input
            self.concept_rows = self.rows()
            return self.concept_rows
        return self.concept_rows if layer_input is self.text_input else None


class SharedCasts:
    """Steps of the concepts that run right after the last of their layers' own calls, on its cast weight."""

    def __init__(self):
        self.groups: dict = {}  # layer -> the _Group it belongs to
        self._open: list = []
        self._handles: list = []
        # the concepts' rows are being found (first_layer_input): their layers' calls then are not the text's
        self._finding_rows = False

    def after(self, layers, step: Callable[[], None], rows: Callable[[], Tensor | None] | None = None,
              cast_only: bool = False) -> None:
        """step runs once each of `layers` (a layer, or the layers the step runs) has had its own call, on the
        last one's cast weight; rows: the concepts' input to the step where it is ready when the first layer's call
        begins (None where not), which the layers' calls then take along: the input of the first of the layers to
        run (first_layer_input). Where a layer is not plain F.linear, the step does not run here (its caller runs
        it later, as for a layer that is not shared).
        cast_only: a step whose output waits to be used (the concepts' q/k/v wait through the image's attention)
        runs here only where the layers' call cast the weight; on a layer's own full-precision weight there is no
        cast to share, and its caller makes the output where it is used, holding nothing meanwhile."""
        layers = (layers,) if isinstance(layers, torch.nn.Module) else tuple(layers)
        if not layers:
            return
        group = _Group(layers, step, rows, cast_only)
        for layer in layers:
            self.groups[layer] = group

    def _enter(self, module, args):
        group = self.groups.get(module)
        if group is None or group.done or module in group.called or not args or self._finding_rows:
            return

        def find_rows() -> Tensor | None:
            self._finding_rows = True
            try:
                return group.rows_for(module, args[0])
            finally:
                self._finding_rows = False

        mode = _FirstLinear(module, args[0], find_rows, group.cast_only)
        mode.__enter__()
        self._open.append(mode)

    def _leave(self, module, args, output):
        if not self._open or self._open[-1].module is not module:
            return
        mode = self._open.pop()
        mode.__exit__(None, None, None)
        group = self.groups[module]
        # the layer was not F.linear on its input alone, or a cast_only step's layer used its own weight
        if not (mode.seen and mode.seen[2] is output) or mode.own_weight:
            group.finish()  # the step runs later, as for a layer that is not shared
            return
        group.called.add(module)
        if mode.extra_output is not None:
            group.outputs[module] = (mode.extra_rows, mode.extra_output)
        if len(group.called) == len(group.layers):
            group.done = True
            with contextlib.ExitStack() as stack:
                for layer, (rows, taken) in group.outputs.items():
                    if layer is not module:
                        stack.enter_context(replaying(layer, None, None, rows, taken))
                stack.enter_context(replaying(module, *mode.seen[:2], *group.outputs.get(module, (None, None))))
                group.step()
            group.finish()

    def start(self) -> None:
        """Watch the layers' calls from now on (until stop)."""
        self._handles = [handle for layer in self.groups for handle in (
            layer.register_forward_pre_hook(self._enter), layer.register_forward_hook(self._leave))]

    def stop(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles = []
        while self._open:  # a layer that raised never reached its forward hook
            self._open.pop().__exit__(None, None, None)

    @contextlib.contextmanager
    def watching(self):
        """While the block runs under it: each step runs right after the last of its layers' calls."""
        self.start()
        try:
            yield
        finally:
            self.stop()


class _Reached(Exception):
    def __init__(self, layer_input):
        super().__init__()
        self.layer_input = layer_input


def first_layer_input(function, x: Tensor, layers: tuple) -> Tensor | None:
    """The input the first of `layers` that function(x) calls gets; nothing runs past it (no layer casts its
    weight). None where function(x) calls none of them."""
    def reached(layer_input, *args, **kwargs):
        raise _Reached(layer_input)

    with contextlib.ExitStack() as stack:
        for layer in layers:
            stack.enter_context(forward_as(layer, reached))
        try:
            function(x)
        except _Reached as found:
            return found.layer_input
    return None


@contextlib.contextmanager
def forward_as(module, forward):
    """Within: the module's forward is `forward` (an instance attribute, so the class's forward is untouched; one
    the instance had is put back)."""
    own = module.__dict__.get("forward")
    module.forward = forward
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own


def replaying(module, weight, bias, rows: Tensor | None = None, output: Tensor | None = None):
    """Within: the layer gives `output` for the concepts' `rows`, which the layer's own call computed already, and
    for any other input F.linear on the given weight and bias (the layer's own forward where none is given: a cast
    weight that is gone)."""
    own = module.forward

    def forward(x, *args, **kwargs):
        if output is not None:
            if x is rows or (x.shape == rows.shape and torch.equal(x, rows)):
                return output
            _OTHER_INPUT.add(module)
        if weight is None:
            return own(x, *args, **kwargs)
        return F.linear(x, weight, bias)

    return forward_as(module, forward)
