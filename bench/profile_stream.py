"""Where the Concept Attention Sampler's extra time goes: a torch.profiler attribution.

    CA_COMFYUI_DIR=<ComfyUI> <python> bench/profile_stream.py [--device cpu|cuda] [--size 512] [--concepts 4 64]

Runs the patched sampler once per concept count under torch.profiler, with each of the concept
stream's functions wrapped (bench_attribution: in this process only, the extension's files are
not touched) in a record_function range, and reports each range's time (elapsed time on the CPU,
kernel time on CUDA) against the whole run. Both parts come from the same run, so this stays meaningful
on a noisy machine where wall-time ratios do not. (Python-stack attribution, with_stack=True, is
not used: in torch 2.14 its Python tracer corrupts the CPU op times.)
"""

import functools
import json
import sys
from pathlib import Path

import bench_attribution
import bench_host
import run
import torch
from torch.autograd import DeviceType
from torch.profiler import ProfilerActivity, profile, record_function

RUN_RANGE = "bench::concept_sampler"


def _ranged(name: str, function):
    @functools.wraps(function)
    def wrapper(*args, **kwargs):
        with record_function(f"stream::{name}"):
            return function(*args, **kwargs)
    return wrapper


def attribute(prof, device: str) -> dict[str, float]:
    """Microseconds per range: its elapsed time on the CPU, the kernel time launched under it on CUDA.

    Only the CPU-side range events count; on CUDA the profiler adds a same-named GPU annotation.
    """
    times: dict[str, float] = {}
    for event in prof.events():
        if event.device_type != DeviceType.CPU:
            continue
        if event.name == RUN_RANGE or event.name.startswith("stream::"):
            us = event.device_time_total if device == "cuda" else event.cpu_time_total
            times[event.name] = times.get(event.name, 0.0) + us
    return times


def main(argv: list[str] | None = None) -> dict:
    parser = run.evidence_parser(__doc__)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--concepts", type=int, nargs="+", default=[4, 64])
    parser.add_argument("--frames", type=int, help="video families: the clip's video frames (default 17)")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "profile.json")
    options = parser.parse_args(argv)
    settings = run.evidence_settings(options)
    host = bench_host.boot(options.device)
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False
    bench_attribution.instrument(host, _ranged)
    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if options.device == "cuda" else [])
    results = {}
    with torch.inference_mode():
        bench = run.Bench(host, settings, None)
        layers = bench.layers("auto")
        frames = (options.frames or 17) if bench.geometry.frame_stride else None
        bench.concept_sampler(options.size, options.concepts[0], layers, frames=frames)  # warm-up
        for k in options.concepts:
            with profile(activities=activities) as prof:
                with record_function(RUN_RANGE):
                    bench.concept_sampler(options.size, k, layers, frames=frames)
                if options.device == "cuda":
                    torch.cuda.synchronize()
            results[k] = attribute(prof, options.device)
    clock = "kernel time" if options.device == "cuda" else "elapsed time of each range"
    clip = f" x {frames} frames" if frames else ""
    print(f"\nConcept stream attribution: {options.size}^2{clip}, depth {settings.depth}+{settings.single}, "
          f"layers {list(layers)}, {settings.steps} step(s), {options.device} ({clock})")
    for k, times in results.items():
        total = times.pop(RUN_RANGE)
        stream = sum(times.values())
        print(f"\nK={k}: whole run {total / 1e3:.1f} ms, concept stream {stream / 1e3:.1f} ms "
              f"-> overhead {stream / (total - stream):+.2%} over the rest")
        for name, us in sorted(times.items(), key=lambda item: -item[1]):
            print(f"  {name:<30} {us / 1e3:>10.2f} ms  {us / total:>7.2%} of the run")
        results[k] = {"total_us": total, "stream_us": times, "overhead": stream / (total - stream)}
    options.out.write_text(json.dumps({"size": options.size, "frames": frames, "depth": settings.depth,
                                       "single": settings.single, "device": options.device, "results": results},
                                      indent=1))
    print(f"wrote {options.out}")
    return results


if __name__ == "__main__":
    sys.exit(0 if main() else 1)
