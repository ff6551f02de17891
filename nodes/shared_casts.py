"""The text stream's weights as its own call cast them, reused for the concepts in the same block.

Quantized and low-precision models (fp8, GGUF, a LoRA applied on the fly, offloaded layers) cast or
dequantize every weight each time its layer runs. The concepts run the text stream's layers a second
time, which would cast them again: on a GGUF or fp8 Flux that is a fifth of the model's weights per step.
Instead, while the block runs, each reused layer's own call is watched and the weight and bias it handed
to F.linear are kept; the concepts' call of that layer then runs F.linear on them directly. A layer is
replayed only where its forward was exactly F.linear(its input, weight, bias), returned as is: a layer
that scales its input or output (scaled fp8 before ComfyUI 0.33), or multiplies by another kernel (fp8
matmul), casts again as before. Nothing is kept past the block.
"""

import contextlib

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode


class _FirstLinear(TorchFunctionMode):
    """Inside one layer's forward: the first F.linear applied to the layer's own input, and its result."""

    def __init__(self, module, layer_input):
        super().__init__()
        self.module, self.layer_input = module, layer_input
        self.seen = None  # (weight, bias, result)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        if func is F.linear and self.seen is None:
            x = args[0] if args else kwargs.get("input")
            weight = args[1] if len(args) > 1 else kwargs.get("weight")
            bias = args[2] if len(args) > 2 else kwargs.get("bias")
            self.seen = (weight, bias, result) if x is self.layer_input else ()
        return result


class SharedCasts:
    """Watches layers while a block runs (watching()), then replays their kept weights (replaying())."""

    def __init__(self, modules):
        self.modules = [m for m in modules if m is not None]
        self.kept: dict = {}
        self._open: list = []

    @contextlib.contextmanager
    def watching(self):
        def enter(module, args):
            if module in self.kept or not args:
                return
            mode = _FirstLinear(module, args[0])
            mode.__enter__()
            self._open.append(mode)

        def leave(module, args, output):
            if self._open and self._open[-1].module is module:
                mode = self._open.pop()
                mode.__exit__(None, None, None)
                if mode.seen and mode.seen[2] is output:  # the layer was F.linear on its input, nothing more
                    self.kept[module] = mode.seen[:2]

        handles = [h for m in self.modules for h in (m.register_forward_pre_hook(enter), m.register_forward_hook(leave))]
        try:
            yield
        finally:
            for handle in handles:
                handle.remove()
            while self._open:  # a layer that raised never reached its forward hook
                self._open.pop().__exit__(None, None, None)

    @contextlib.contextmanager
    def replaying(self):
        """Within: each kept layer's forward is F.linear on the kept weight and bias."""
        replaced = []
        for module, (weight, bias) in self.kept.items():
            replaced.append((module, module.__dict__.get("forward")))
            module.forward = _replay(weight, bias)  # an instance attribute: the class's forward is untouched
        try:
            yield
        finally:
            for module, own in replaced:
                if own is None:
                    del module.forward
                else:
                    module.forward = own

    def release(self) -> None:
        self.kept.clear()


def _replay(weight: torch.Tensor, bias: torch.Tensor | None):
    def forward(x, *args, **kwargs):
        return F.linear(x, weight, bias)

    return forward
