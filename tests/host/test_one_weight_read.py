"""One weight read for the concepts' qkv, projection and MLP layers: the text stream's own call of the layer takes the
concepts' rows along (nodes/stream/shared_casts.py), its text rows bit for bit as alone."""

import contextlib

import pytest
import torch
import torch.nn.functional as F
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import casting_each_call, concept_sampler, ksampler, sampler_inputs
from torch.overrides import TorchFunctionMode


class CountingLinears(TorchFunctionMode):
    def __init__(self):
        super().__init__()
        self.calls = []

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is F.linear:
            self.calls.append(args[0].shape)
        return func(*args, **(kwargs or {}))


def test_the_layers_call_takes_the_concepts_rows_along(ca):
    """The layer's output is its own product bit for bit; the concepts' step gets their rows' product from that
    call (no product of its own), equal to the layer on their rows."""
    shared_casts = ca.nodes.stream.shared_casts
    layer = torch.nn.Linear(32, 48)
    text, concepts = torch.randn(2, 7, 32), torch.randn(1, 3, 32)
    seen = {}

    def step():
        seen["concepts"] = layer(concepts)

    for round in range(2):  # the second call of a shape runs no check product
        casts = shared_casts.SharedCasts()
        casts.after(layer, step, rows=lambda: concepts)
        with CountingLinears() as counting, casts.watching():
            out = layer(text)
        assert torch.equal(out, F.linear(text, layer.weight, layer.bias))
        torch.testing.assert_close(seen["concepts"], F.linear(concepts, layer.weight, layer.bias), rtol=1e-6,
                                   atol=1e-6)
        # one product of 14 + 3 rows; on the first round, one check of the text rows alone
        assert counting.calls == [torch.Size([17, 32])] + ([torch.Size([2, 7, 32])] if round == 0 else []), round
        # the concepts' rows are their own: they do not keep the whole product alive while the concepts hold them
        kept = seen["concepts"]
        assert kept.untyped_storage().nbytes() == kept.numel() * kept.element_size()


def test_rows_that_would_change_the_text_run_apart_on_the_same_cast(ca, monkeypatch):
    """Where the product with the rows appended differs from the product alone (another kernel for another row
    count), the layer's output is the product alone, and the concepts' rows are multiplied apart by the weight that
    call cast (the layer runs once); that shape is not tried appended again."""
    shared_casts = ca.nodes.stream.shared_casts
    layer = torch.nn.Linear(16, 24)
    text, concepts = torch.randn(1, 5, 16), torch.randn(1, 2, 16)
    equal = torch.equal
    monkeypatch.setattr(shared_casts.torch, "equal", lambda a, b: False)  # as if the two came out otherwise
    own_calls = []
    for round in range(2):
        seen = {}
        casts = shared_casts.SharedCasts()
        casts.after(layer, lambda seen=seen: seen.setdefault("concepts", layer(concepts)), rows=lambda: concepts)
        layer.forward = lambda x, own=type(layer).forward.__get__(layer): own_calls.append(x.shape) or own(x)
        try:
            with CountingLinears() as counting, casts.watching():
                out = layer(text)
        finally:
            del layer.forward
        assert equal(out, F.linear(text, layer.weight, layer.bias))
        torch.testing.assert_close(seen["concepts"], F.linear(concepts, layer.weight, layer.bias))
        # the first round: the appended product and the check; then the layer alone
        expected = [torch.Size([7, 16]), torch.Size([1, 5, 16])] if round == 0 else [torch.Size([1, 5, 16])]
        assert counting.calls == expected, round
    assert own_calls == [text.shape, text.shape]  # the concepts never ran the layer's own forward


@pytest.mark.parametrize("weights", ["cast", "own"])
def test_a_flux_run_reads_qkv_the_projection_and_the_first_mlp_layer_once(ca, monkeypatch, weights):
    """On a tiny Flux, every block's projection and first MLP layer but the last block's (where the concepts are
    scored, not updated) take the concepts' rows along at every step; so does every block's text qkv where the layers
    cast their weights (fp8, GGUF, offloaded), while on full-precision weights (no cast to share) the concepts' q/k/v
    are made at the attention rather than held through the image's. The latent is plain sampling's."""
    model, clip = tiny_flux(3), tiny_clip()
    dm = model.get_model_object("diffusion_model")
    watched = {block.txt_attn.qkv: "qkv" for block in dm.double_blocks}
    watched.update({block.txt_attn.proj: "proj" for block in dm.double_blocks})
    watched.update({block.txt_mlp[0]: "mlp" for block in dm.double_blocks})
    inputs = sampler_inputs(clip, 1, 1.0)
    taken = []
    original = ca.nodes.stream.shared_casts._FirstLinear._with_extra_rows

    def spying(self, x, weight, bias):
        result = original(self, x, weight, bias)
        taken.append((watched.get(self.module), result is not None))
        return result

    with casting_each_call(model) if weights == "cast" else contextlib.nullcontext():
        reference = ksampler(model, inputs)
        monkeypatch.setattr(ca.nodes.stream.shared_casts._FirstLinear, "_with_extra_rows", spying)
        latent, _ = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    blocks, steps = len(dm.double_blocks), inputs["steps"]
    updated = [("proj", True), ("mlp", True)] * (blocks - 1) * steps
    qkv = [("qkv", True)] * blocks * steps if weights == "cast" else []
    assert sorted(taken) == sorted(qkv + updated)
