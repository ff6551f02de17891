"""The text stream's weights as its own call cast them, used for the concepts at that very moment.

Quantized and low-precision models (fp8, GGUF, a LoRA applied on the fly, offloaded layers) cast or
dequantize every weight each time its layer runs. The concepts run the text stream's layers a second
time, which would cast them again: on a GGUF or fp8 Flux that is a fifth of the model's weights per step.
Instead, while the block runs, each reused layer's own call is watched; right after it, the concepts'
step that needs that layer (their modulation, q/k/v, projection, MLP layer) runs with the layer's forward
replaced by F.linear on the weight and bias the text's call used. The weight is dropped as soon as that
step is done, so no cast weight outlives its layer's call by more than the concepts' few tokens.

A layer is shared only where its forward was exactly F.linear(its input, weight, bias), returned as is:
a layer that scales its input or output (scaled fp8 before ComfyUI 0.33) or multiplies with another
kernel (fp8 matmul) is not, and the concepts' step then runs later with the layer as usual.
"""

import contextlib
from collections.abc import Callable

import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _FirstLinear(TorchFunctionMode):
    """Inside one layer's forward: the first F.linear applied to the layer's own input, and its result."""

    def __init__(self, module, layer_input):
        super().__init__()
        self.module, self.layer_input = module, layer_input
        self.seen = None  # (weight, bias, result); () when the first F.linear was not on the layer's input

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func is F.linear and self.seen is None:
            x = args[0] if args else kwargs.get("input")
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            self.seen = (weight, bias, result) if x is self.layer_input else ()
        return result


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
        self.done: set = set()
        self._open: list = []

    def after(self, layer, step: Callable[[], None]) -> None:
        self.steps[layer] = step

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
            mode = _FirstLinear(module, args[0])
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
                    with replaying(module, *mode.seen[:2]):
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
def replaying(module, weight, bias):
    """Within: the layer's forward is F.linear on the given weight and bias (an instance attribute, so the
    class's forward is untouched; one the instance had is put back)."""
    own = module.__dict__.get("forward")
    module.forward = lambda x, *args, **kwargs: F.linear(x, weight, bias)
    try:
        yield
    finally:
        if own is None:
            del module.forward
        else:
            module.forward = own
