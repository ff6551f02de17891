"""Export a training run's EMA weights, text encoder and codec as the shipped demo model.

    python -m demo_model.export --run demo_model/run [--half]

--half stores the weights as float16 (half the size; the loaders cast them back to float32).
"""

import argparse
import json
from dataclasses import asdict
from pathlib import Path

from safetensors.torch import load_file, save_file

from .flux_twin import TwinConfig
from .shapes import VOCABULARY
from .text import run_text_config

DEFAULT_OUT = Path(__file__).parent / "weights" / "demo_model.safetensors"


def export(run: Path, out: Path = DEFAULT_OUT, half: bool = False) -> Path:
    config = TwinConfig(**json.loads((run / "config.json").read_text()))
    ema = load_file(run / "ema.safetensors")
    if half:
        ema = {k: v.half() if v.is_floating_point() else v for k, v in ema.items()}
    codec = load_file(run / "codec.safetensors")
    tensors = {**{k: v.contiguous() for k, v in ema.items()}, **{f"codec.{k}": v.contiguous() for k, v in codec.items()}}
    out.parent.mkdir(parents=True, exist_ok=True)
    save_file(tensors, out, metadata={"config": json.dumps(asdict(config)), "vocabulary": json.dumps(VOCABULARY),
                                    "text": run_text_config(run).to_json()})
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--run", type=Path, default=Path(__file__).parent / "run")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--half", action="store_true", help="store the weights as float16")
    args = parser.parse_args()
    print(export(args.run, args.out, args.half))


if __name__ == "__main__":
    main()
