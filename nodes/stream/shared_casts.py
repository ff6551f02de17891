"""The text stream's weights as its own call cast them, used for the concepts at that very moment.

Quantized and low-precision models (fp8, GGUF, a LoRA applied on the fly, offloaded layers) cast or
dequantize every weight each time its layer runs. The concepts run the text stream's layers a second
time, which would cast them again: on a GGUF or fp8 Flux that is a fifth of the model's weights per step.
Instead, while the block runs, each reused layer's own call is watched; right after it, the concepts'
step that needs that layer (their modulation, q/k/v, projection, MLP layer) runs with the layer's forward
replaced by F.linear on the weight and bias the text's call used. The weight is dropped as soon as that
step is done, so no cast weight outlives its layer's call by more than the concepts' few tokens.

The qkv layer and the MLP's first layer go one step further: their input for the concepts is ready when the
text's own call begins, so that call's product takes the concepts' rows along, appended to the text's, and the
weight is read once for both. The text rows must come out bit for bit as from the product alone, which is checked
once per shape (a backend may pick another kernel for another row count); where they do not, the two run apart.

A layer is shared only where its forward was exactly F.linear(its input, weight, bias), returned as is:
a layer that scales its input or output (scaled fp8 before ComfyUI 0.33) or multiplies with another
kernel (fp8 matmul) is not, and the concepts' step then runs later with the layer as usual.
"""

import contextlib
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torch.overrides import TorchFunctionMode

# Whether a layer's product with the concepts' rows appended gives the text rows exactly as the product alone, by
# (input shape, rows' shape, weight shape, dtypes, device, bias): checked once per shape, as a backend may choose
# another kernel for another row count. Where it does not, the layer runs alone and the concepts after it.
_SAME_AS_ALONE: dict[tuple, bool] = {}


class _FirstLinear(TorchFunctionMode):
    """Inside one layer's forward: the first F.linear applied to the layer's own input, and its result. Given
    the concepts' rows for the layer, that product takes them along (one read of the weight for both) where it
    gives the text rows bit for bit as alone; their output is kept in extra_output."""

    def __init__(self, module, layer_input, extra_rows: Tensor | None = None):
        super().__init__()
        self.module, self.layer_input = module, layer_input
        self.seen = None  # (weight, bias, result); () when the first F.linear was not on the layer's input
        self.extra_rows, self.extra_output = extra_rows, None

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
            return None
        rows = x.reshape(-1, x.shape[-1])
        both = F.linear(torch.cat([rows, extra.reshape(-1, extra.shape[-1]).to(rows.dtype)]), weight, bias)
        text = both[:rows.shape[0]].view(*x.shape[:-1], both.shape[-1])
        if key not in _SAME_AS_ALONE:
            alone = F.linear(x, weight, bias)
            _SAME_AS_ALONE[key] = torch.equal(text, alone)
            if not _SAME_AS_ALONE[key]:
                return alone  # the concepts' rows run after the layer, as without this
        self.extra_output = both[rows.shape[0]:].view(*extra.shape[:-1], both.shape[-1])
        return text


class _Group:
    """Layers one step of the concepts needs together (Qwen-Image's separate q, k and v), and the casts their own
    calls made so far."""

    def __init__(self, layers, step: Callable[[], None]):
        self.layers, self.step = tuple(layers), step
        self.casts: dict = {}  # layer -> (weight, bias) of its call


class SharedCasts:
    """Steps of the concepts that run right after a given layer's own call, on its cast weight."""

    def __init__(self):
        self.steps: dict = {}  # layer -> the concepts' step that uses it
        self.groups: dict = {}  # layer -> the _Group it belongs to
        self.rows: dict = {}  # layer -> the concepts' input to it, for the text's call to take along (or None)
        self.done: set = set()
        self._open: list = []

    def after(self, layer, step: Callable[[], None], rows: Callable[[], Tensor | None] | None = None) -> None:
        """step runs right after the layer's own call, on its cast weight; rows: the concepts' input to the layer
        where it is ready when the layer's call begins (None where not), which that call then takes along."""
        self.steps[layer] = step
        if rows is not None:
            self.rows[layer] = rows

    def after_all(self, layers, step: Callable[[], None]) -> None:
        """step runs once the last of `layers` has run, on each one's cast weight; where one of them is not plain
        F.linear, it does not run here (its caller runs it later, as for a layer that is not shared)."""
        group = _Group(layers, step)
        for layer in group.layers:
            self.groups[layer] = group

    def _run_group(self, group: _Group) -> None:
        with contextlib.ExitStack() as stack:
            for layer, (weight, bias) in group.casts.items():
                stack.enter_context(replaying(layer, weight, bias))
            group.step()
        group.casts.clear()  # the cast weights go as soon as the step is done

    @contextlib.contextmanager
    def watching(self):
        """While the block runs under it: each watched layer's call is followed by its step."""

        def enter(module, args):
            if module in self.done or not args:
                return
            mode = _FirstLinear(module, args[0], self.rows[module]() if module in self.rows else None)
            mode.__enter__()
            self._open.append(mode)

        def leave(module, args, output):
            if not self._open or self._open[-1].module is not module:
                return
            mode = self._open.pop()
            mode.__exit__(None, None, None)
            if mode.seen and mode.seen[2] is output:  # the layer was F.linear on its input, nothing more
                self.done.add(module)
                group = self.groups.get(module)
                if group is None:
                    with replaying(module, *mode.seen[:2], mode.extra_rows, mode.extra_output):
                        self.steps[module]()
                    return
                group.casts[module] = mode.seen[:2]
                if len(group.casts) == len(group.layers):
                    self._run_group(group)

        watched = [*self.steps, *self.groups]
        handles = [h for m in watched for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            while self._open:  # a layer that raised never reached its forward hook
                self._open.pop().__exit__(None, None, None)


@contextlib.contextmanager
def replaying(module, weight, bias, rows: Tensor | None = None, output: Tensor | None = None):
    """Within: the layer's forward is F.linear on the given weight and bias (an instance attribute, so the
    class's forward is untouched; one the instance had is put back), or `output` for the concepts' `rows`, which
    the layer's own call computed already."""
    own = module.__dict__.get("forward")

    def forward(x, *args, **kwargs):
        if output is not None and (x is rows or (x.shape == rows.shape and torch.equal(x, rows))):
            return output
        return F.linear(x, weight, bias)

    module.forward = forward
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own
