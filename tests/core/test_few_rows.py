"""The concepts' few-row linears: the same products as F.linear, taken only where they are meant to be."""

import pytest
import torch
import torch.nn.functional as F

from ca_core import few_rows
from ca_core.few_rows import FewRowLinears, few_row_linears


def _layer(inputs: int, outputs: int, bias: bool = True, dtype=torch.float32) -> torch.nn.Linear:
    torch.manual_seed(0)
    return torch.nn.Linear(inputs, outputs, bias=bias).to(dtype)


@pytest.mark.parametrize("shape", [(4, 64), (2, 3, 64), (1, 32, 64), (64,)])
@pytest.mark.parametrize("bias", [True, False])
def test_few_rows_equal_f_linear_in_value_and_shape(shape, bias):
    layer = _layer(64, 48, bias)
    x = torch.randn(shape)
    with FewRowLinears():
        out = layer(x)
    expected = F.linear(x, layer.weight, layer.bias)
    assert out.shape == expected.shape
    torch.testing.assert_close(out, expected, rtol=1e-6, atol=1e-5)


def test_few_rows_take_the_transposed_product(monkeypatch):
    # the rewrite must actually happen for a few fp32 CPU rows, or it speeds nothing up
    taken = []
    monkeypatch.setattr(few_rows.torch, "addmm", lambda *a: taken.append(a) or torch.Tensor.addmm(*a))
    layer = _layer(64, 48)
    with FewRowLinears():
        layer(torch.randn(3, 64))
    assert len(taken) == 1 and taken[0][1] is layer.weight


def test_non_contiguous_inputs_are_multiplied_correctly():
    layer = _layer(64, 48)
    x = torch.randn(64, 4).T  # rows that are columns of another tensor
    with FewRowLinears():
        out = layer(x)
    torch.testing.assert_close(out, F.linear(x, layer.weight, layer.bias), rtol=1e-6, atol=1e-5)


@pytest.mark.parametrize("case", ["many_rows", "bfloat16", "float16"])
def test_everything_else_is_f_linear_bit_for_bit(case):
    dtype = {"bfloat16": torch.bfloat16, "float16": torch.float16}.get(case, torch.float32)
    rows = few_rows.MAX_ROWS + 1 if case == "many_rows" else 4
    layer = _layer(64, 48, dtype=dtype)
    x = torch.randn(rows, 64).to(dtype)
    with FewRowLinears():
        out = layer(x)
    assert torch.equal(out, F.linear(x, layer.weight, layer.bias))


def test_a_tensor_subclass_weight_is_left_to_its_own_linear():
    class Quantized(torch.Tensor):
        pass

    layer = _layer(64, 48)
    weight = layer.weight.detach().as_subclass(Quantized)
    seen = []

    class Watch(torch.overrides.TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            seen.append(func)
            return func(*args, **(kwargs or {}))

    with Watch(), FewRowLinears():
        F.linear(torch.randn(2, 64), weight)
    assert F.linear in seen and torch.mm not in seen and torch.addmm not in seen


def test_decorator_scopes_the_mode_to_the_call():
    layer = _layer(64, 48)

    @few_row_linears
    def concept_step(x):
        return layer(x)

    x = torch.randn(4, 64)
    torch.testing.assert_close(concept_step(x), F.linear(x, layer.weight, layer.bias), rtol=1e-6, atol=1e-5)
    # outside the call, F.linear is torch's own: the model's layers keep their exact bits
    assert not torch.overrides._get_current_function_mode_stack()
