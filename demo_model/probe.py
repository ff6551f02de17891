"""Which caption words the demo model uses: its denoising loss with the true caption against the
same caption with the shape words, or the colour words, swapped for absent ones, or no caption.

    python -m demo_model.probe --weights demo_model/weights/demo_model.safetensors [--scenes 64]

A model that binds shape words to shapes loses clearly more when its shapes are swapped; concept
maps of shapes cannot work before it does. Held-out scenes, fixed noise, so two checkpoints compare.
"""

import argparse
import json
import random
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import load_file

from .codec import PatchPCACodec
from .flux_twin import FluxTwin, TwinConfig
from .shapes import COLOURS, SHAPES, VOCABULARY, held_out_seeds, make_batch
from .text import TextEncoder, WordTokenizer

NOISE_LEVELS = (0.3, 0.5, 0.7, 0.9)


def swap_words(caption: str, pool: tuple[str, ...], rng: random.Random) -> str:
    """Each word of `pool` in the caption replaced by one the caption does not contain."""
    present = set(caption.split()) & set(pool)
    absent = [word for word in pool if word not in present]
    return " ".join(rng.choice(absent) if word in pool else word for word in caption.split())


def load(weights: Path) -> tuple[FluxTwin, TextEncoder, PatchPCACodec]:
    tensors = load_file(weights)
    config = TwinConfig(**json.loads(_metadata(weights)["config"]))
    model, text = FluxTwin(config), TextEncoder(len(VOCABULARY), dim=config.context_in_dim)
    model.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    text.load_state_dict({k[5:]: v for k, v in tensors.items() if k.startswith("text.")})
    codec = PatchPCACodec.from_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("codec.")})
    return model.eval(), text.eval(), codec


def _metadata(weights: Path) -> dict:
    from safetensors import safe_open

    with safe_open(weights, "pt") as handle:
        return handle.metadata()


@torch.no_grad()
def probe(weights: Path, scenes: int = 64) -> dict[float, dict[str, float]]:
    """{noise level: {caption variant: mean squared error of the predicted velocity}}."""
    model, text, codec = load(weights)
    tokenizer = WordTokenizer(VOCABULARY)
    images, captions, _ = make_batch(held_out_seeds(scenes))
    x0 = codec.encode(images)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(0))
    rng = random.Random(0)
    variants = {
        "true caption": captions,
        "shapes swapped": [swap_words(c, SHAPES, rng) for c in captions],
        "colours swapped": [swap_words(c, tuple(COLOURS), rng) for c in captions],
        "no caption": [""] * len(captions),
    }
    losses = {}
    for t in NOISE_LEVELS:
        xt = (1 - t) * x0 + t * noise
        times = torch.full((x0.shape[0],), t)
        losses[t] = {}
        for name, texts in variants.items():
            context, pooled = text(torch.tensor([tokenizer.ids(c) for c in texts]))
            losses[t][name] = F.mse_loss(model(xt, times, context, pooled), noise - x0).item()
    return losses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--weights", type=Path, default=Path(__file__).parent / "weights" / "demo_model.safetensors")
    parser.add_argument("--scenes", type=int, default=64)
    args = parser.parse_args()
    losses = probe(args.weights, args.scenes)
    print(f"{'noise':>6} {'true':>7}  loss increase: {'shapes swapped':>15} {'colours swapped':>16} {'no caption':>11}")
    for t, row in losses.items():
        base = row["true caption"]
        rises = [f"{row[name] / base - 1:+.1%}" for name in ("shapes swapped", "colours swapped", "no caption")]
        print(f"{t:>6.1f} {base:>7.4f}  {'':>14}{rises[0]:>15} {rises[1]:>16} {rises[2]:>11}")


if __name__ == "__main__":
    main()
