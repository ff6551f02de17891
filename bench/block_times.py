"""Where a Segment Image pass and a full forward spend their time, block by block.

    CA_COMFYUI_DIR=<ComfyUI> <python> bench/block_times.py [--device cpu|cuda] [--sizes 256 512]

Times (in this process only, by wrapping ComfyUI's DoubleStreamBlock / SingleStreamBlock forward
and the concept stream's functions) the double blocks, the single blocks and the stream inside
one full forward and one Segment Image pass, plus how much of a double block runs before the end
of its joint attention, which is all the last chosen block needs. The segment / full ratio is
D*double + stream over D*double + S*single: it reaches the FLOP ratio only when a double block
costs what a single block costs, which holds when the matmuls are compute-bound (many tokens)
and not when weight traffic matters (a double block holds 2.4x a single block's weights).
"""

import collections
import time

import bench_attribution
import bench_host
import run
import torch


class _Stop(Exception):
    pass


def _stop_after_attention(func, *args, **kwargs):
    func(*args, **kwargs)
    raise _Stop()


def main(argv: list[str] | None = None) -> None:
    parser = run.evidence_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    options = parser.parse_args(argv)
    settings = run.evidence_settings(options)
    host = bench_host.boot(options.device)
    import comfy.ldm.flux.layers as flux_layers
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    seconds: dict[str, float] = collections.defaultdict(float)

    def sync() -> None:
        if options.device == "cuda":
            torch.cuda.synchronize()

    def timed(name: str, function):
        def wrapper(*args, **kwargs):
            sync()
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                sync()
                seconds[name] += time.perf_counter() - start
        return wrapper

    flux_layers.DoubleStreamBlock.forward = timed("double blocks", flux_layers.DoubleStreamBlock.forward)
    flux_layers.SingleStreamBlock.forward = timed("single blocks", flux_layers.SingleStreamBlock.forward)
    bench_attribution.instrument(host, lambda name, function: timed("concept stream", function))
    with torch.inference_mode():
        bench = run.Bench(host, settings, None)
        layers = bench.layers("auto")
        block = bench.diffusion_model.double_blocks[0]
        for side in options.sizes:
            passes = {"full forward": lambda side=side: bench.full_pass(side),
                      "segment pass": lambda side=side: bench.segment(side, settings.segment_concepts, layers)}
            for call in passes.values():
                call()  # warm-up
            print(f"\n{side}^2, depth {settings.depth}+{settings.single}, K={settings.segment_concepts}, "
                  f"layers {list(layers)} ({options.device})")
            totals = {}
            for name, call in passes.items():
                seconds.clear()
                sync()
                start = time.perf_counter()
                call()
                sync()
                totals[name] = time.perf_counter() - start
                # the stream's attention part runs inside the double blocks, so it is also in their time
                parts = ", ".join(f"{part} {value:.3f} s" for part, value in seconds.items())
                print(f"  {name}: {totals[name]:.3f} s ({parts})")
            print(f"  segment / full: {totals['segment pass'] / totals['full forward']:.3f}")

            # One double block alone, whole and up to the end of its attention.
            n, t, c = (side // 16) ** 2, run.TEXT_TOKENS, bench.diffusion_model.hidden_size
            dtype, device = next(block.parameters()).dtype, next(block.parameters()).device
            img, txt = torch.randn(1, n, c, dtype=dtype, device=device), torch.randn(1, t, c, dtype=dtype, device=device)
            vec = torch.randn(1, c, dtype=dtype, device=device)
            pe = bench.diffusion_model.pe_embedder(torch.zeros(1, n + t, 3, device=device))
            stop = {"optimized_attention_override": _stop_after_attention}
            for label, transformer_options in (("whole", {}), ("up to the end of its attention", stop)):
                seconds.clear()
                for _ in range(2):
                    try:
                        block(img=img.clone(), txt=txt.clone(), vec=vec, pe=pe, transformer_options=transformer_options)
                    except _Stop:
                        pass
                print(f"  one double block, {label}: {seconds['double blocks'] / 2:.3f} s")


if __name__ == "__main__":
    main()
