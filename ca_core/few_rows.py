"""The concepts' linear layers, written for their few rows.

The concept stream multiplies a handful of rows (K concepts per batch row) by the text stream's full
weight matrices, so each such product is bound by reading the weight. On CPU in float32, torch's linear
kernel for so few rows runs at about half the speed of the same product taken as weight @ input^T,
which streams the weight once (bench/README.md, "few-row linears"). Within few_row_linears(), F.linear
on a float32 CPU input of at most MAX_ROWS rows is computed that way; everything else (GPUs, bf16 and
fp16, which are already bound by the read, quantized weight types) goes to F.linear unchanged.

Only the concepts' own steps run inside it, never the model's layers: the image and text streams keep
torch's kernels and so their exact bits.
"""

import functools

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

MAX_ROWS = 32  # past a few dozen rows torch's kernel catches up (measured up to 64 rows: still 1.2x)


def _plain(tensor) -> bool:
    return tensor is None or type(tensor) in (torch.Tensor, torch.nn.Parameter)


class FewRowLinears(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func is F.linear:
            names = ("input", "weight", "bias")
            return few_row_linear(*(args[i] if i < len(args) else kwargs.get(name) for i, name in enumerate(names)))
        return func(*args, **kwargs)


def few_row_linear(x, weight, bias=None):
    """F.linear, as the weight @ input^T product where that is the faster one (see the module's docstring)."""
    if _few_row_product(x, weight, bias):
        rows = x.reshape(-1, x.shape[-1]).contiguous()  # its transpose column-major: the fast layout
        out = torch.mm(weight, rows.T) if bias is None else torch.addmm(bias.unsqueeze(1), weight, rows.T)
        return out.T.reshape(*x.shape[:-1], weight.shape[0])
    return F.linear(x, weight, bias)


def _few_row_product(x, weight, bias) -> bool:
    return (isinstance(x, torch.Tensor) and isinstance(weight, torch.Tensor) and _plain(x) and _plain(weight)
            and _plain(bias) and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and (bias is None or bias.dtype == torch.float32) and weight.dim() == 2 and x.dim() >= 1
            and x.numel() // max(x.shape[-1], 1) <= MAX_ROWS)


def few_row_linears(function):
    """Run `function` with the concepts' few-row linears (see the module's docstring)."""
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with FewRowLinears():
            return function(*args, **kwargs)
    return wrapper
