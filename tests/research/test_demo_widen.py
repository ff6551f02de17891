"""Widening trained demo-model weights by whole heads (research.widen)."""

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from demo_model.config import DemoConfig
from demo_model.text import WordTokenizer
from research.flux_twin import FluxTwin, layer_norm
from research.probe import load
from research.shapes import VOCABULARY, held_out_seeds, make_batch
from research.train import Trainer
from research.widen import added_weights, deepen, widen, widen_file, widened_from

SHIPPED = Path(__file__).parents[2] / "demo_model" / "weights" / "demo_model.safetensors"


def _velocities(weights: Path, times: tuple[float, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    model, text, codec = load(weights)
    images, captions, _ = make_batch(list(held_out_seeds(8)))
    ids = torch.tensor([WordTokenizer(VOCABULARY).ids(caption) for caption in captions])
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        context, pooled = text(ids)
        x0 = codec.encode(torch.as_tensor(images))
        noise = torch.randn(x0.shape, generator=generator)
        t = torch.tensor(times).repeat_interleave(len(captions) // len(times))
        xt = (1 - t[:, None, None, None]) * x0 + t[:, None, None, None] * noise
        return model(xt, t, context, pooled), noise - x0


def test_widened_weights_compute_nearly_what_the_trained_ones_do(tmp_path):
    wide = widen_file(SHIPPED, 5, tmp_path / "wide.safetensors")
    assert (wide.hidden_size, wide.num_heads) == (160, 5) and wide.axes_dim == DemoConfig().axes_dim
    times = (0.1, 0.3, 0.5, 0.9)
    before, target = _velocities(SHIPPED, times)
    after, _ = _velocities(tmp_path / "wide.safetensors", times)
    loss = (before - target).pow(2).mean()
    # LayerNorm's mean over the wider stream is the only change: well under the model's own error
    assert (after - before).pow(2).mean() < 0.15 * loss
    assert (after - target).pow(2).mean() < 1.1 * loss


def _tiny_trained_weights() -> tuple[dict[str, torch.Tensor], DemoConfig]:
    torch.manual_seed(0)
    config = DemoConfig(hidden_size=32, num_heads=2, depth=2, depth_single_blocks=1)
    model = FluxTwin(config)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.1)
    return {f"model.{k}": v for k, v in model.state_dict().items()}, config


def _model(weights: dict[str, torch.Tensor], config: DemoConfig) -> FluxTwin:
    model = FluxTwin(config)
    model.load_state_dict({k[6:]: v for k, v in weights.items()}, strict=True)
    return model.eval()


def test_nothing_reads_the_new_heads_until_training_grows_them():
    weights, config = _tiny_trained_weights()
    wide_weights, wide = widen(weights, config, 3)
    x, t = torch.randn(2, 16, 8, 8), torch.tensor([0.3, 0.7])
    context, pooled = torch.randn(2, 5, 64), torch.randn(2, 64)
    with torch.no_grad():
        widened = _model(wide_weights, wide)(x, t, context, pooled)
        h, wide_h = config.hidden_size, wide.hidden_size
        m, wide_m = 4 * h, 4 * wide_h
        new_heads = [(k * wide_h + h, (k + 1) * wide_h) for k in range(3)]
        new_units = [(m, wide_m)]
        new_rows = {"attn.qkv": new_heads, "mlp.0": new_units,
                    "linear1": new_heads + [(3 * wide_h + m, 3 * wide_h + wide_m)]}
        changed = 0
        for key, value in wide_weights.items():
            for module, spans in new_rows.items():
                if key.endswith(f"{module}.weight") or key.endswith(f"{module}.bias"):
                    for start, end in spans:  # the new heads' queries, keys, values and the new MLP units
                        value[start:end] += 5 * torch.randn_like(value[start:end])
                        changed += 1
        assert changed == 2 * (2 * 2 * 3 + 2 * 2 * 1) + 2 * 4  # weight and bias: 2 double blocks x 2 streams, 1 single
        torch.testing.assert_close(_model(wide_weights, wide)(x, t, context, pooled), widened)


def test_the_modulation_undoes_layer_norms_growth_on_a_centred_stream():
    weights, config = _tiny_trained_weights()
    wide_weights, wide = widen(weights, config, 3)
    h = config.hidden_size
    x = torch.randn(4, h)
    x = x - x.mean(-1, keepdim=True)  # the case the compensation is exact for
    vec = torch.randn(4, h)
    old, new = _model(weights, config), _model(wide_weights, wide)
    for block in ("double_blocks.1.img_mod", "double_blocks.0.txt_mod", "single_blocks.0.modulation"):
        old_mod, new_mod = old.get_submodule(block), new.get_submodule(block)
        shift, scale = old_mod(vec)[:2]
        wide_shift, wide_scale = new_mod(torch.cat([vec, torch.zeros(4, wide.hidden_size - h)], -1))[:2]
        wide_x = torch.cat([x, torch.zeros(4, wide.hidden_size - h)], -1)
        expected = layer_norm(x) * (1 + shift.new_ones(1) * scale[:, 0]) + shift[:, 0]
        widened = (layer_norm(wide_x) * (1 + wide_scale[:, 0]) + wide_shift[:, 0])[:, :h]
        torch.testing.assert_close(widened, expected, atol=1e-4, rtol=1e-4)


def test_a_widened_start_trains_as_its_own_design_and_fewer_heads_are_refused(tmp_path):
    wide = widen_file(SHIPPED, 5, tmp_path / "wide.safetensors")
    trainer = Trainer(tmp_path / "run", seed=0, batch=2, lr=1e-4, init_from=tmp_path / "wide.safetensors", design=wide)
    trainer.train_step(*next(trainer.batches()))
    assert trainer.model.double_blocks[0].img_attn.qkv.weight.shape == (3 * 160, 160)
    with pytest.raises(ValueError, match="already have 4 heads"):
        widen(load_file(SHIPPED), DemoConfig(), 4)
    with pytest.raises(ValueError, match="another design"):
        Trainer(tmp_path / "other", seed=0, batch=2, lr=1e-4, init_from=tmp_path / "wide.safetensors")


def test_the_added_weights_are_exactly_the_entries_widening_did_not_carry_over():
    weights, config = _tiny_trained_weights()
    wide_weights, wide = widen(weights, config, 3)
    masks = added_weights(config, wide)
    assert set(masks) == {k[6:] for k in wide_weights}
    for key, old in weights.items():
        name, new = key[6:], wide_weights[key]
        mask = masks[name]
        assert int((~mask).sum()) == old.numel(), name
        if "mod" not in name:  # the modulations' LayerNorm scales are rescaled; everything else is carried as is
            torch.testing.assert_close(new[~mask], old.flatten(), msg=name)
    h, wide_h = config.hidden_size, wide.hidden_size
    qkv = masks["double_blocks.0.img_attn.qkv.weight"]
    assert qkv[h:wide_h].all() and not qkv[:h, :h].any() and qkv[:h, h:].all()  # new head's queries; old rows' new inputs
    assert not masks["double_blocks.0.img_attn.norm.query_norm.scale"].any()  # per head channel: shared, not added


def test_a_run_from_widened_weights_moves_the_added_entries_its_scale_times_as_far(tmp_path):
    wide = widen_file(SHIPPED, 5, tmp_path / "wide.safetensors")
    start = tmp_path / "wide.safetensors"
    plain = Trainer(tmp_path / "plain", seed=0, batch=2, lr=1e-4, init_from=start, design=wide)
    fast = Trainer(tmp_path / "fast", seed=0, batch=2, lr=1e-4, init_from=start, design=wide, added_weights_lr_scale=4.0)
    before = {k: v.clone() for k, v in plain.model.state_dict().items()}
    for trainer in (plain, fast):
        torch.manual_seed(0)  # the flow times and noise come from torch's global generator
        trainer.train_step(*next(trainer.batches()))
    masks = added_weights(DemoConfig(), wide)
    moved_added = 0
    for name, start_value in before.items():
        plain_move = plain.model.state_dict()[name] - start_value
        fast_move = fast.model.state_dict()[name] - start_value
        mask = masks[name]
        torch.testing.assert_close(fast_move[~mask], plain_move[~mask], msg=name)
        torch.testing.assert_close(fast_move[mask], 4 * plain_move[mask], msg=name)
        moved_added += int((plain_move[mask] != 0).sum())
    assert moved_added > 1000  # the added entries do train
    fast.save()
    assert Trainer(tmp_path / "fast", seed=0, batch=2, lr=1e-4).added_weights["lr_scale"] == 4.0  # kept on resume
    with pytest.raises(ValueError, match="keeps it"):
        Trainer(tmp_path / "fast", seed=0, batch=2, lr=1e-4, added_weights_lr_scale=2.0)
    with pytest.raises(ValueError, match="no weights added by widening.*research.widen"):
        Trainer(tmp_path / "narrow", seed=0, batch=2, lr=1e-4, init_from=SHIPPED, added_weights_lr_scale=4.0)


def test_deepened_weights_compute_exactly_what_the_trained_ones_do_and_their_gates_train(tmp_path):
    weights, config = _tiny_trained_weights()
    deep_weights, deep = deepen(weights, config, 4)
    assert deep.depth == 4 and deep.hidden_size == config.hidden_size
    x, t = torch.randn(2, 16, 8, 8), torch.tensor([0.3, 0.7])
    context, pooled = torch.randn(2, 5, 64), torch.randn(2, 64)
    with torch.no_grad():
        torch.testing.assert_close(_model(deep_weights, deep)(x, t, context, pooled),
                                   _model(weights, config)(x, t, context, pooled), rtol=0, atol=0)
    # the new blocks attend as the last one does: everything but their gates is a copy of it
    for key, value in weights.items():
        if key.startswith("model.double_blocks.1.") and "_mod." not in key:
            for index in (2, 3):
                torch.testing.assert_close(deep_weights[key.replace(".1.", f".{index}.", 1)], value)
    model = _model(deep_weights, deep).train()
    model(x, t, context, pooled).pow(2).mean().backward()
    h = config.hidden_size
    for index in (2, 3):
        gates = model.double_blocks[index].img_mod.lin.bias.grad
        assert gates[2 * h:3 * h].abs().sum() > 0 and gates[5 * h:6 * h].abs().sum() > 0
    masks = added_weights(config, deep)
    new_blocks = ("double_blocks.2.", "double_blocks.3.")
    assert all(mask.all() for name, mask in masks.items() if name.startswith(new_blocks))
    assert not any(mask.any() for name, mask in masks.items() if not name.startswith(new_blocks))
    with pytest.raises(ValueError, match="already have 2 double blocks"):
        deepen(weights, config, 2)


def test_a_deepened_file_records_its_start_and_trains_its_new_blocks_faster(tmp_path):
    deep = widen_file(SHIPPED, None, tmp_path / "deep.safetensors", depth=7)
    assert deep == DemoConfig(depth=7) and widened_from(tmp_path / "deep.safetensors") == DemoConfig()
    fast = Trainer(tmp_path / "fast", seed=0, batch=2, lr=1e-4, init_from=tmp_path / "deep.safetensors", design=deep,
                   added_weights_lr_scale=4.0)
    before = {k: v.clone() for k, v in fast.model.state_dict().items()}
    batches = fast.batches()
    fast.train_step(*next(batches))
    moved = {name: (fast.model.state_dict()[name] - value).abs().max().item() for name, value in before.items()}
    # Adam's first step moves an entry by about its learning rate: the new block's gates at 4 x 1e-4
    assert moved["double_blocks.6.img_mod.lin.bias"] == pytest.approx(4e-4, rel=0.01)
    assert moved["double_blocks.5.img_mod.lin.bias"] == pytest.approx(1e-4, rel=0.01)
    assert moved["double_blocks.6.img_attn.qkv.weight"] == 0  # nothing reads the block while its gates are shut
    fast.train_step(*next(batches))
    qkv = "double_blocks.6.img_attn.qkv.weight"
    assert (fast.model.state_dict()[qkv] != before[qkv]).any()
    with pytest.raises(ValueError, match=r"more double blocks \(--depth\)"):
        widen_file(SHIPPED, None, tmp_path / "nothing.safetensors")
