"""Export a training run's EMA weights, text encoder and codec as the shipped demo model.

    python -m research.export --run research/run [--half] [--raw]

--half stores the weights as float16 (half the size; the loaders cast them back to float32).
--raw exports the run's latest weights (its checkpoint) instead of their EMA: the EMA (decay 0.999,
about 1,000 steps) lags a short continuation of trained weights by its first steps.
"""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from demo_model import WEIGHTS
from demo_model.config import DemoConfig
from demo_model.text import run_text_config

from .shapes import VOCABULARY


def weights_metadata(weights: Path) -> dict[str, str]:
    """The metadata an exported weights file carries (its design, vocabulary and text design)."""
    with safe_open(str(weights), framework="pt") as handle:
        return handle.metadata() or {}


def export(run: Path, out: Path = WEIGHTS, half: bool = False, raw: bool = False) -> Path:
    config = DemoConfig(**json.loads((run / "config.json").read_text()))
    if raw:
        weights = torch.load(run / "checkpoint.pt", weights_only=False, map_location="cpu")["weights"]
    else:
        weights = load_file(run / "ema.safetensors")
    if half:
        weights = {k: v.half() if v.is_floating_point() else v for k, v in weights.items()}
    codec = load_file(run / "codec.safetensors")
    tensors = {**{k: v.contiguous() for k, v in weights.items()}, **{f"codec.{k}": v.contiguous() for k, v in codec.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out, metadata={"config": json.dumps(asdict(config)), "vocabulary": json.dumps(VOCABULARY),
                                    "text": run_text_config(run).to_json()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path(__file__).parent / "run")
    parser.add_argument("--out", type=Path, default=WEIGHTS)
    parser.add_argument("--half", action="store_true", help="store the weights as float16")
    parser.add_argument("--raw", action="store_true", help="the latest weights instead of their EMA")
    args = parser.parse_args()
    print(export(args.run, args.out, args.half, args.raw))


if __name__ == "__main__":
    main()
