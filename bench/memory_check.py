"""Why a double-block replacement raises the activation peak above KSampler's, and that the concept patch does not.

    CA_COMFYUI_DIR=<ComfyUI> <python> bench/memory_check.py [--device cpu|cuda] [--sizes 256 512] [--concepts 4 64]

ComfyUI's Flux.forward_orig keeps the dict returned by the last patches_replace double-block
entry in its local `out` until the forward returns. DoubleStreamBlock updates img in place, so
that dict's "img" is the very tensor the double-block loop ends with; after
`img = torch.cat((txt, img), 1)` it would be freed, but `out` keeps it alive through every single
block: one extra [B, N, 3072] tensor at the single blocks' peak. Any double-block replacement
does this, with or without the concept stream. This script measures (peak live tensor bytes,
bench_meter.memory_peak) KSampler, the concept patch, a pass-through replacement of one double
block (no stream at all). The concept patch avoids the extra tensor: the block after its last one empties
that dict (nodes/stream/step.py ReleaseReturnedPatch), so its peak should sit at KSampler's.
"""


import bench_host
import bench_meter
import run
import torch


def pass_through(args: dict, extra: dict) -> dict:
    return extra["original_block"](args)


def main(argv: list[str] | None = None) -> None:
    parser = run.evidence_parser(__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512])
    parser.add_argument("--concepts", type=int, nargs="+", default=[4, 64])
    options = parser.parse_args(argv)
    settings = run.evidence_settings(options)
    host = bench_host.boot(options.device)
    import comfy.utils
    import nodes

    comfy.utils.PROGRESS_BAR_ENABLED = False
    print(f"memory: {bench_meter.CPU_METHOD if options.device == 'cpu' else bench_meter.CUDA_METHOD}")
    with torch.inference_mode():
        bench = run.Bench(host, settings, None)
        layers = bench.layers("auto")

        def ksampler(model, side: int):
            return nodes.common_ksampler(model, run.SEED, settings.steps, 1.0, "euler", "simple",
                                         bench.positive, bench.negative, bench.latent(side))

        def replaced(entry):
            model = bench.model.clone()
            model.set_model_patch_replace(entry, "dit", "double_block", settings.depth - 1)
            return model

        for side in options.sizes:
            ksampler(bench.model, side)  # warm-up
            variants = {
                "KSampler": lambda side=side: ksampler(bench.model, side),
                "pass-through replacement of the last double block": lambda side=side: ksampler(replaced(pass_through),
                                                                                                 side),
            }
            for k in options.concepts:
                variants[f"Concept Attention Sampler K={k}"] = lambda side=side, k=k: bench.concept_sampler(side, k,
                                                                                                            layers)

            peaks = {name: bench_meter.memory_peak(call, options.device)[0] for name, call in variants.items()}
            base = peaks["KSampler"].peak_bytes
            tensor_mib = tokens_bytes(side, settings.dtype) / 2**20
            print(f"\n{side}^2, depth {settings.depth}+{settings.single}, layers {list(layers)}; one [1, N, 3072] "
                  f"{settings.dtype} image tensor = {tensor_mib:.2f} MiB")
            for name, peak in peaks.items():
                print(f"  {name:<52} {peak.peak_bytes / 2**20:>9.2f} MiB  x {peak.peak_bytes / base:.3f}  "
                      f"(+{(peak.peak_bytes - base) / 2**20:.2f} MiB)")


def tokens_bytes(side: int, dtype: str) -> int:
    return (side // 16) ** 2 * 3072 * torch.tensor([], dtype=getattr(torch, dtype)).element_size()


if __name__ == "__main__":
    main()
