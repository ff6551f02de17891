"""F.linear against the concepts' few-row product (ca_core/few_rows.py) at a 3072-wide model's layer shapes.

    <python> bench/few_rows.py [--rows 1 4 8 16 32 64] [--dtype float32|bfloat16|float16] [--rounds 20]

No ComfyUI needed. For each text-stream layer shape (q/k/v or projection, MLP in and out, modulation) and
row count, the median time of F.linear and of the product few_row_linears() takes instead, measured
alternately in one process, and their ratio. The read of the weight alone (a sum over it) is the floor.
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from ca_core.few_rows import FewRowLinears  # noqa: E402

SHAPES = {"qkv / proj (3072 -> 3072)": (3072, 3072), "MLP in (3072 -> 12288)": (12288, 3072),
          "MLP out (12288 -> 3072)": (3072, 12288), "modulation (3072 -> 18432)": (18432, 3072)}


def median_ms(function, rounds: int) -> float:
    function()
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        function()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, nargs="+", default=[1, 4, 8, 16, 32, 64])
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16", "float16"])
    parser.add_argument("--rounds", type=int, default=20)
    options = parser.parse_args()
    dtype = getattr(torch, options.dtype)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {options.dtype}, CPU")
    print(f"{'layer':<28} {'rows':>4} {'F.linear ms':>11} {'few-row ms':>10} {'ratio':>6} {'read ms':>8}")
    with torch.inference_mode():
        for name, (outputs, inputs) in SHAPES.items():
            weight, bias = torch.randn(outputs, inputs, dtype=dtype), torch.randn(outputs, dtype=dtype)
            read = median_ms(weight.sum, options.rounds)
            for rows in options.rows:
                x = torch.randn(rows, inputs, dtype=dtype)
                def plain_linear(x=x, weight=weight, bias=bias):
                    return F.linear(x, weight, bias)

                def few_row_linear(x=x, weight=weight, bias=bias):
                    with FewRowLinears():
                        return F.linear(x, weight, bias)

                plain, few = median_ms(plain_linear, options.rounds), median_ms(few_row_linear, options.rounds)
                print(f"{name:<28} {rows:>4} {plain:>11.2f} {few:>10.2f} {plain / few:>6.2f} {read:>8.2f}")


if __name__ == "__main__":
    main()
