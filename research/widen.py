"""Widen trained demo-model weights by whole heads, or deepen them by whole double blocks, keeping
what they compute (nearly) unchanged.

    python -m research.widen --weights demo_model/weights/demo_model.safetensors --heads 5 --out wide.safetensors
    python -m research.widen --weights demo_model/weights/demo_model.safetensors --depth 8 --out deep.safetensors

A wider design otherwise trains from scratch (millions of scenes on a GPU). Here each new head, its
share of the residual stream and its MLP units join the trained weights so that, at first, nothing
reads them: the new heads' query/key/value rows and the new MLP units are small random features,
and every weight that would carry them into the residual stream or the output is zero. Training
then grows them (python -m research.train --init-from wide.safetensors --design <its design>); the
file records the design it was widened from, so training can tell the added weights apart.

One thing changes at once: LayerNorm averages over the wider stream, whose new channels start at 0,
so each old channel comes out sqrt(new width / old width) times larger. Every LayerNorm here is
followed by a modulation's (1 + scale), so the scales are divided by that factor to undo it. That is
exact for a stream of mean 0; tests/research/test_demo_widen.py measures what is left on real scenes.

Deepening appends double blocks after the last one, each a copy of it whose residual gates are zero:
the new blocks attend as the last one does but add nothing to either stream, so the output is exactly
unchanged until training opens the gates (their gradients are not zero). ConceptAttention's "auto"
layers are the last four double blocks, so a deeper model moves them later, as they are on Flux.1.
"""

import argparse
import json
import math
from dataclasses import asdict, replace
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from demo_model.config import DemoConfig

from .export import weights_metadata
from .flux_twin import FluxTwin, float16_megabytes

NEW_FEATURE_STD = 0.02  # the new heads' and MLP units' input weights: small, so training shapes them
WIDENED_FROM = "widened_from"  # metadata of a widened file: the design it was widened from


def _chunks(pieces: list[int]) -> list[tuple[int, int]]:
    """[(start, length)] of pieces laid end to end."""
    starts = [sum(pieces[:i]) for i in range(len(pieces))]
    return list(zip(starts, pieces, strict=True))


def _embed(old: torch.Tensor, layout_old: list[list[int]], layout_new: list[list[int]], fill: str,
           generator: torch.Generator) -> torch.Tensor:
    """Place each chunk of `old` (per axis, chunks laid end to end) at the start of the matching, longer
    chunk of the new tensor; the rest is zero (fill "zero") or small random values (fill "random")."""
    shape = [sum(axis) for axis in layout_new]
    new = (torch.randn(shape, generator=generator) * NEW_FEATURE_STD if fill == "random" else torch.zeros(shape))
    # new columns read the new residual channels (or new hidden units): zero, so that nothing reads them yet
    if old.dim() == 2:
        for (start, length), (_, old_length) in zip(_chunks(layout_new[1]), _chunks(layout_old[1]), strict=True):
            new[:, start + old_length:start + length] = 0
    new[_kept(layout_old, layout_new)] = old.float()
    return new


def _kept(layout_old: list[list[int]], layout_new: list[list[int]]) -> tuple[torch.Tensor, ...]:
    """The index of the new tensor's entries that hold the old tensor's, in the old one's order: each
    old chunk (per axis) sits at the start of its longer new chunk."""
    index = []
    for axis_old, axis_new in zip(layout_old, layout_new, strict=True):
        positions = []
        for (new_start, _), (_, old_length) in zip(_chunks(axis_new), _chunks(axis_old), strict=True):
            positions.extend(range(new_start, new_start + old_length))
        index.append(torch.tensor(positions))
    return torch.meshgrid(*index, indexing="ij")


def _layouts(name: str, config: DemoConfig) -> tuple[list[list[int]], str, tuple[int, ...]]:
    """Per axis (out, in), the chunks a weight is laid out in, given as multiples of the width (h) or
    of the MLP width (m); how its new rows are filled; and which row chunks of a modulation are
    LayerNorm's scales."""
    h, m = config.hidden_size, int(config.hidden_size * config.mlp_ratio)
    leaf = name.rsplit(".", 1)[-1]
    module = name.rsplit(".", 1)[0]
    rows: list[int]
    cols: list[int] = [h]
    fill = "zero"
    scales: tuple[int, ...] = ()
    if module.endswith("_mod.lin"):
        rows, scales = [h] * 6, (1, 4)  # shift, scale, gate, shift, scale, gate
    elif module.endswith("modulation.lin"):
        rows, scales = [h] * 3, (1,)  # shift, scale, gate
    elif module.endswith("adaLN_modulation.1"):
        rows, scales = [h] * 2, (1,)  # shift, scale
    elif module.endswith("attn.qkv"):
        rows, fill = [h] * 3, "random"
    elif module.endswith("attn.proj") or module.endswith("out_layer"):
        rows = [h]
    elif module.endswith("mlp.0"):
        rows, fill = [m], "random"
    elif module.endswith("mlp.2"):
        rows, cols = [h], [m]
    elif module.endswith("linear1"):
        rows, fill = [h] * 3 + [m], "random"
    elif module.endswith("linear2"):
        rows, cols = [h], [h, m]
    elif module.endswith("in_layer"):
        rows, cols, fill = [h], [-1], "random"  # reads the fixed-size input: -1 keeps that axis
    elif module in ("img_in", "txt_in"):
        rows, cols = [h], [-1]
    elif module == "final_layer.linear":
        rows, cols = [-1], [h]
    elif module.endswith(("query_norm", "key_norm")):
        return [[-1]], "zero", ()  # per head channel, shared by the heads: unchanged
    else:
        raise ValueError(f"widen: no layout for {name}; teach _layouts this parameter")
    return ([rows] if leaf == "bias" else [rows, cols]), fill, scales


def _shapes(config: DemoConfig) -> dict[str, torch.Size]:
    """A design's transformer weight shapes, by state-dict name (built on the meta device: no memory)."""
    with torch.device("meta"):
        return {k: v.shape for k, v in FluxTwin(config).state_dict().items()}


def _sized(layout: list[list[int]], tensor_shape: torch.Size) -> list[list[int]]:
    return [[tensor_shape[axis]] if pieces == [-1] else pieces for axis, pieces in enumerate(layout)]


def widen(weights: dict[str, torch.Tensor], config: DemoConfig, heads: int, seed: int = 0) -> tuple[dict, DemoConfig]:
    """The transformer's weights ("model." keys) widened to `heads` heads of the same width."""
    head = config.hidden_size // config.num_heads
    if heads <= config.num_heads:
        raise ValueError(f"widen: the weights already have {config.num_heads} heads; ask for more (--heads)")
    wide = replace(config, hidden_size=head * heads, num_heads=heads)
    wide.check()
    # LayerNorm over the wider stream, new channels at 0: old channels come out this much larger
    growth = math.sqrt(wide.hidden_size / config.hidden_size)
    generator = torch.Generator().manual_seed(seed)
    shapes = _shapes(wide)
    out = {}
    for key, value in weights.items():
        if not key.startswith("model."):
            out[key] = value
            continue
        name = key[len("model."):]
        layout, fill, scales = _layouts(name, config)
        old = _sized(layout, value.shape)
        new = _sized(_layouts(name, wide)[0], shapes[name])
        if [sum(axis) for axis in old] != list(value.shape):
            raise AssertionError(f"{name}: layout {old} does not match {tuple(value.shape)}")
        tensor = _embed(value, old, new, fill, generator)
        for chunk in scales:  # undo LayerNorm's growth through the modulation's (1 + scale)
            start, _ = _chunks(new[0])[chunk]
            rows = slice(start, start + config.hidden_size)
            tensor[rows] = (1 + tensor[rows]) / growth - 1 if name.endswith("bias") else tensor[rows] / growth
        out[key] = tensor.to(value.dtype)
    return out, wide


DOUBLE_BLOCK_GATES = (2, 5)  # of a double block's six modulation chunks: the attention's and the MLP's gates


def deepen(weights: dict[str, torch.Tensor], config: DemoConfig, depth: int) -> tuple[dict, DemoConfig]:
    """The transformer's weights ("model." keys) with double blocks appended up to `depth`: copies of
    the last one, their residual gates zero, so they change nothing until training opens them."""
    if depth <= config.depth:
        raise ValueError(f"deepen: the weights already have {config.depth} double blocks; ask for more (--depth)")
    deep = replace(config, depth=depth)
    deep.check()
    last = f"model.double_blocks.{config.depth - 1}."
    out = dict(weights)
    for index in range(config.depth, depth):
        for key, value in weights.items():
            if not key.startswith(last):
                continue
            name = key[len(last):]
            copy = value.clone()
            if name.startswith(("img_mod.lin.", "txt_mod.lin.")):
                for chunk in DOUBLE_BLOCK_GATES:
                    copy[chunk * config.hidden_size:(chunk + 1) * config.hidden_size] = 0
            out[f"model.double_blocks.{index}.{name}"] = copy
    return out, deep


def added_weights(config: DemoConfig, wide: DemoConfig) -> dict[str, torch.Tensor]:
    """Per transformer weight of `wide` (FluxTwin state-dict names), True where widening or deepening
    `config` added the entry: the new heads' and MLP units' own rows, every entry that reads them, and
    all of a new double block. Training can give these a learning rate of their own
    (research.train --added-weights-lr-scale)."""
    old_shapes = _shapes(config)
    masks = {}
    for name, shape in _shapes(wide).items():
        if name not in old_shapes:  # a double block deepening appended
            masks[name] = torch.ones(shape, dtype=torch.bool)
            continue
        old_layout = _sized(_layouts(name, config)[0], old_shapes[name])
        mask = torch.ones(shape, dtype=torch.bool)
        mask[_kept(old_layout, _sized(_layouts(name, wide)[0], shape))] = False
        masks[name] = mask
    return masks


def widened_from(weights: Path) -> DemoConfig | None:
    """The design a weights file was widened from (research.widen), or None if it was not widened."""
    recorded = weights_metadata(weights).get(WIDENED_FROM)
    return DemoConfig(**json.loads(recorded)) if recorded else None


def widen_file(weights: Path, heads: int | None, out: Path, seed: int = 0, depth: int | None = None) -> DemoConfig:
    """Widen to `heads` heads and/or deepen to `depth` double blocks (None: keep that); the file records
    the design it came from."""
    if heads is None and depth is None:
        raise ValueError("widen: ask for more heads (--heads), more double blocks (--depth) or both")
    metadata = weights_metadata(weights)
    config = DemoConfig(**json.loads(metadata["config"]))
    tensors, wide = load_file(str(weights)), config
    if heads is not None:
        tensors, wide = widen(tensors, wide, heads, seed)
    if depth is not None:
        tensors, wide = deepen(tensors, wide, depth)
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in tensors.items()}, out,
              metadata={**metadata, "config": json.dumps(asdict(wide)), WIDENED_FROM: json.dumps(asdict(config))})
    return wide


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, required=True)
    parser.add_argument("--heads", type=int, default=None, help="the heads the widened weights have")
    parser.add_argument("--depth", type=int, default=None, help="the double blocks the deepened weights have")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=0, help="seed of the new heads' small random features")
    args = parser.parse_args()
    if args.heads is None and args.depth is None:
        parser.error("give --heads, --depth or both")
    wide = widen_file(args.weights, args.heads, args.out, args.seed, args.depth)
    print(f"{args.out}: {wide.design_text()} ({float16_megabytes(wide):.1f} MB as float16); "
          f"train it with --init-from {args.out} --design {wide.design_text()}")


if __name__ == "__main__":
    main()
