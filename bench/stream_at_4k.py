"""Peak memory of the concepts' attention and scores in one Flux.1 block at 4096² (65,536 image tokens).

The block's own q/k/v and outputs for the image (bf16, [N, 3072] each) are made before the measured call, as
the block leaves them; the call is what the stream adds: the concepts' attention over [concepts; image] and
their scores against the image's outputs (ca_core.stream.attend_concepts). Its peak is printed beside K x N
(concepts x image tokens) at three image sizes, so that O(K·N) growth (and no [N, C] float32 copy) shows.
No ComfyUI needed:

    python bench/stream_at_4k.py [--concepts 4 64] [--sides 1024 2048 4096] [--whole]

--whole: every image token at once (no chunks), to compare.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_meter import memory_peak  # noqa: E402

import ca_core.stream  # noqa: E402
from ca_core.stream import ImageAttention, attend_concepts  # noqa: E402

HEADS, HEAD_DIM = 24, 128  # Flux.1's double blocks
TOKEN_PIXELS = 16


def peak_bytes(side: int, concepts: int) -> int:
    tokens = (side // TOKEN_PIXELS) ** 2
    generator = torch.Generator().manual_seed(0)

    def drawn(*shape):
        return torch.randn(*shape, generator=generator, dtype=torch.float32).to(torch.bfloat16)

    image = ImageAttention(keys=drawn(1, HEADS, tokens, HEAD_DIM), values=drawn(1, HEADS, tokens, HEAD_DIM),
                           outputs=drawn(1, tokens, HEADS * HEAD_DIM))
    qkv = tuple(drawn(1, HEADS, concepts, HEAD_DIM) for _ in range(3))
    peak, _ = memory_peak(lambda: attend_concepts(None, None, None, image, tokens, qkv=qkv), "cpu")
    return peak.peak_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concepts", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--sides", type=int, nargs="+", default=[1024, 2048, 4096])
    parser.add_argument("--whole", action="store_true", help="take every image token at once")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("results-stream-4k.json"))
    args = parser.parse_args()
    if args.whole:
        ca_core.stream.SCORED_TOKENS_AT_ONCE = 1 << 30
    rows = []
    print(f"{'side':>6} {'tokens N':>9} {'K':>4} {'peak MiB':>9} {'peak / (K·N·4 B)':>17} {'image outputs bf16 MiB':>23}")
    for side in args.sides:
        for concepts in args.concepts:
            tokens = (side // TOKEN_PIXELS) ** 2
            peak = peak_bytes(side, concepts)
            rows.append({"side": side, "tokens": tokens, "concepts": concepts, "peak_bytes": peak})
            print(f"{side:>6} {tokens:>9} {concepts:>4} {peak / 2**20:>9.1f} {peak / (concepts * tokens * 4):>17.1f} "
                  f"{tokens * HEADS * HEAD_DIM * 2 / 2**20:>23.1f}")
    if not args.whole:
        args.out.write_text(json.dumps({"heads": HEADS, "head_dim": HEAD_DIM, "rows": rows}, indent=2) + "\n")


if __name__ == "__main__":
    main()
