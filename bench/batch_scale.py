"""Segment Image on batches of 1, 8 and 64 images: seconds per image and peak memory as the batch grows.

    CA_COMFYUI_DIR=<ComfyUI> <python> bench/batch_scale.py [--quick] [--device cpu|cuda] [--out bench/results-batch.json]

Boots ComfyUI in-process with this extension (bench_host.py) and runs the Segment Image node itself
(ConceptAttentionSegmentImage.execute, under torch.inference_mode as ComfyUI's executor runs a node) on:
  - demo: the bundled demo model, text encoder and latent codec (Load Concept Attention Demo Model);
  - flux1: a Flux.1-width model (hidden 3072, 24 heads, mlp 4; random weights) with one double block and no
    single blocks (Segment Image's pass stops after the last double block it scores), the test suite's tiny T5
    text encoder (the real T5 tokenizer: a 256-token caption, as Flux.1's; the model's context and vec inputs
    are sized to it) and the demo's latent codec as its VAE (Flux's latent layout, 16 channels at 1/8; a real
    VAE's encoding time would come on top).
Each batch runs with batch_size 0 (as many images per model call as fit in free memory, from ComfyUI's memory
estimate), and the largest batch again at a fixed batch_size, whose peak memory is that of one chunk. One
untimed run per row records the peak memory (bench_meter.memory_peak), one more is timed (bench_meter.measure);
a warm-up run of one image comes first for each model.
"""

import argparse
import dataclasses
import json
import sys
import time
from pathlib import Path

import bench_host
import bench_meter
import run
import torch

sys.path.insert(0, str(bench_host.REPO / "tests" / "host"))  # the tests' tiny models and helpers, once booted

CONCEPTS = "circle, square, background"  # words the demo model knows
SEED = 3


@dataclasses.dataclass(frozen=True)
class Plan:
    side: int  # image side in pixels
    batches: tuple[int, ...]  # with batch_size 0
    chunked: int  # the fixed batch_size the largest batch runs with again
    noise_samples: int


PLANS = {"full": Plan(256, (1, 8, 64), 8, 1), "quick": Plan(128, (1, 4), 2, 1)}


def demo_parts(host: bench_host.Host):
    loader = sys.modules[f"{host.pack.__name__}.nodes.demo_loader"]
    return loader.load_demo_model()


def flux_parts(device: str, demo_vae):
    """The Flux.1-width model with the tiny T5 text encoder and the demo's codec (see the module docstring)."""
    from helpers.models import CONTEXT_DIM, POOLED_DIM, tiny_clip

    flux1 = bench_host.FAMILIES["flux1"]
    family = dataclasses.replace(flux1, config={**flux1.config, "context_in_dim": CONTEXT_DIM,
                                                "vec_in_dim": POOLED_DIM})
    model = bench_host.build_model(family, depth=1, single=0, device=device, dtype=torch.float32, seed=SEED)
    return model, tiny_clip(), demo_vae


def segment(host: bench_host.Host, parts, images: torch.Tensor, batch_size: int, noise_samples: int, calls: list):
    from helpers.sampling import counting_batches

    model, clip, vae = parts
    node = host.segment_module.ConceptAttentionSegmentImage
    return node.execute(model=counting_batches(model, calls), clip=clip, vae=vae, image=images, concepts=CONCEPTS,
                        layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5,
                        noise_samples=noise_samples, seed=0, caption="", batch_size=batch_size).args[0]


def measure_row(host, parts, plan: Plan, device: str, images: int, batch_size: int) -> dict:
    pixels = torch.rand(images, plan.side, plan.side, 3, generator=torch.Generator().manual_seed(SEED))
    calls = []
    peak, maps = bench_meter.memory_peak(lambda: segment(host, parts, pixels, batch_size, plan.noise_samples, calls),
                                         device)
    timed = bench_meter.measure(lambda: segment(host, parts, pixels, batch_size, plan.noise_samples, []), device)
    assert maps.maps.shape[0] == images
    return {"images": images, "batch_size": batch_size, "images_per_call": max(calls),
            "model_calls": len(calls), "seconds": timed.seconds, "seconds_per_image": timed.seconds / images,
            "cpu_seconds": timed.cpu_seconds, "peak_mib": peak.peak_bytes / 2**20,
            "rss_peak_mib": timed.rss_peak_bytes / 2**20}


def measure_model(host, name: str, parts, plan: Plan, device: str) -> list[dict]:
    run.progress(f"{name}: warm-up")
    segment(host, parts, torch.rand(1, plan.side, plan.side, 3), 0, 1, [])
    rows = []
    for images, batch_size in [*((b, 0) for b in plan.batches), (plan.batches[-1], plan.chunked)]:
        run.progress(f"{name}: {images} images, batch_size {batch_size}")
        rows.append({"model": name, **measure_row(host, parts, plan, device, images, batch_size)})
    return rows


def print_report(result: dict) -> None:
    machine = result["machine"]
    print(f"\nSegment Image, {result['plan']['side']}^2 images, {result['plan']['noise_samples']} noise sample(s), "
          f"{machine['device']} ({machine.get('gpu', machine['cpu'])})")
    print(f"{'model':>6} {'images':>6} {'batch_size':>10} {'per call':>8} {'calls':>5} {'s':>8} {'s/image':>8} "
          f"{'peak MiB':>9} {'RSS MiB':>8}")
    for r in result["rows"]:
        print(f"{r['model']:>6} {r['images']:>6} {r['batch_size'] or 'auto':>10} {r['images_per_call']:>8} "
              f"{r['model_calls']:>5} {r['seconds']:>8.2f} {r['seconds_per_image']:>8.3f} {r['peak_mib']:>9.1f} "
              f"{r['rss_peak_mib']:>8.1f}")


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 128^2, batches 1 and 4 (about a minute)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results-batch.json; --quick: "
                                                  "bench/results-batch-quick.json)")
    options = parser.parse_args(argv)
    if options.out is None:
        options.out = Path(__file__).parent / ("results-batch-quick.json" if options.quick else "results-batch.json")
    plan = PLANS["quick" if options.quick else "full"]
    host = bench_host.boot(options.device)
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm in the timed region, as a headless server
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        demo = demo_parts(host)
        rows = measure_model(host, "demo", demo, plan, options.device)
        rows += measure_model(host, "flux1", flux_parts(options.device, demo[2]), plan, options.device)
    result = {"plan": dataclasses.asdict(plan), "concepts": CONCEPTS,
              "machine": {"device": options.device, **run.machine_info(options.device, host)},
              "memory_method": bench_meter.CPU_METHOD if options.device == "cpu" else bench_meter.CUDA_METHOD,
              "rows": rows, "wall_s": time.perf_counter() - started}
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1))
    print_report(result)
    print(f"wrote {options.out}")
    return result


if __name__ == "__main__":
    main()
