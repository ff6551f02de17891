"""ConceptAttention benchmark: overhead of the concept stream against plain ComfyUI, in one process.

    CA_COMFYUI_DIR=<ComfyUI> <python> bench/run.py [--quick] [--device cpu|cuda] [--out bench/results.json]

(scripts/host_env.sh 0.8.0 prints "COMFYUI_DIR<TAB>PYTHON" on its last line.) Boots ComfyUI
in-process, loads this extension through ComfyUI's loader, builds a Flux.1-width model with random
weights (depth reduced on the CPU, keeping Flux.1's 1:2 double:single ratio) and measures, as
ratios against the matching plain run:

  a. Concept Attention Sampler (ConceptAttentionPatch on model.clone() + nodes.common_ksampler)
     against KSampler (nodes.common_ksampler on the model): wall time and peak memory;
  b. Segment Image's partial pass (stop after the last chosen double block, CFGGuider +
     KSAMPLER(one_partial_pass)) against one full forward through the same mechanism;
  c. scaling of the overhead with concepts, image tokens and the chosen layers;
  d. the aggregator's stored maps (B*K*N*4 bytes * 2 spaces, whatever layers x steps).

Concept embeddings are synthetic (random [1, K, 4096]), so no text encoder is needed. Baseline
and patched runs alternate (forward then reversed order each round) after one warm-up each, and
medians are compared, so slow drifts of a noisy machine cancel out.
"""

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

import bench_flops
import bench_host
import bench_meter

SEED = 42
TEXT_TOKENS = 32
TARGETS = {"sampler_4": 1.02, "sampler_64": 1.05, "segment": 0.40, "memory": 1.02}


@dataclass
class Settings:
    device: str
    dtype: str
    depth: int
    single: int
    sizes: list[int]
    concepts: list[int]
    steps: int
    rounds: int
    segment_concepts: int
    layer_sets: list[str]
    quick: bool


def default_settings(device: str, quick: bool) -> Settings:
    """Sizes that fit the machine: a 2-core CPU runs a shallow model, a GPU the full Flux.1."""
    if device == "cuda":
        if quick:
            return Settings(device, "bfloat16", 2, 4, [512], [1, 4], 2, 2, 4, ["0", "-1", "all"], True)
        return Settings(device, "bfloat16", 19, 38, [512, 1024], [1, 4, 16, 64], 2, 5, 4,
                        ["0", "-1", "auto", "all"], False)
    if quick:
        return Settings(device, "float32", 1, 2, [128], [1, 4], 1, 2, 4, ["0"], True)
    return Settings(device, "float32", 2, 4, [256, 512], [1, 4, 16, 64], 1, 3, 4, ["0", "-1", "all"], False)


@dataclass
class Runs:
    """One variant's measurements across rounds."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_bytes: list[int] = field(default_factory=list)
    total_peak_bytes: list[int] = field(default_factory=list)

    def add(self, m: bench_meter.Measurement) -> None:
        self.seconds.append(m.seconds)
        self.cpu_seconds.append(m.cpu_seconds)
        self.peak_bytes.append(m.peak_bytes)
        self.total_peak_bytes.append(m.total_peak_bytes)

    @property
    def time(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_time(self) -> float:
        return statistics.median(self.cpu_seconds)

    @property
    def peak(self) -> float:
        return statistics.median(self.peak_bytes)

    @property
    def total_peak(self) -> float:
        return statistics.median(self.total_peak_bytes)


def alternate(variants: dict[str, Callable[[], object]], rounds: int, device: str) -> dict[str, Runs]:
    """Each variant once per round, the order reversed every other round; the first round is a
    warm-up for the baseline (first) and the last variant only, so every variant sees warm caches."""
    names = list(variants)
    variants[names[0]]()
    if len(names) > 1:
        variants[names[-1]]()
    runs = {name: Runs() for name in names}
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            runs[name].add(bench_meter.measure(variants[name], device))
    return runs


class Bench:
    """The model, inputs and the four kinds of run, built once."""

    def __init__(self, host: bench_host.Host, settings: Settings):
        import comfy.samplers
        import nodes

        self.host, self.s = host, settings
        self.nodes, self.samplers = nodes, comfy.samplers
        self.device = settings.device
        self.model = bench_host.build_flux(settings.depth, settings.single, settings.device,
                                           getattr(torch, settings.dtype), seed=0)
        self.diffusion_model = self.model.get_model_object("diffusion_model")
        self.patch_class = host.patch_module.ConceptAttentionPatch
        self.adapter = host.flux_module.FluxAdapter
        self.parse_layers = sys.modules[f"{host.pack.__name__}.ca_core.layers"].parse_layers
        generator = torch.Generator().manual_seed(SEED)
        context = torch.randn(1, TEXT_TOKENS, 4096, generator=generator)
        pooled = torch.randn(1, 768, generator=generator)
        self.positive = [[context, {"pooled_output": pooled, "guidance": 3.5}]]
        self.negative = [[torch.zeros_like(context), {"pooled_output": torch.zeros_like(pooled), "guidance": 3.5}]]
        self.segment_cond = [[context, self.adapter.segmentation_conditioning(self.diffusion_model)]]
        self.concepts = torch.randn(1, max([*settings.concepts, settings.segment_concepts]), 4096, generator=generator)
        self.last_patch = None

    def layers(self, spec: str) -> tuple[int, ...]:
        return self.parse_layers(spec, self.s.depth)

    def latent(self, side: int) -> dict:
        return {"samples": torch.zeros(1, 16, side // 8, side // 8)}

    def patch(self, k: int, layers: tuple[int, ...], stop: bool = False):
        return self.patch_class(self.adapter, self.concepts[:, :k], layers, (0, 10000), stop_after_last_layer=stop)

    def maps(self, patch, k: int, side: int):
        return patch.concept_maps([f"c{i}" for i in range(k)], (side, side), "output",
                                  self.adapter.token_pixels(self.diffusion_model))

    def ksampler(self, side: int, steps: int | None = None) -> torch.Tensor:
        """KSampler: nodes.common_ksampler on the unpatched model."""
        (out,) = self.nodes.common_ksampler(self.model, SEED, steps or self.s.steps, 1.0, "euler", "simple",
                                            self.positive, self.negative, self.latent(side))
        return out["samples"]

    def concept_sampler(self, side: int, k: int, layers: tuple[int, ...], steps: int | None = None) -> torch.Tensor:
        """What the Concept Attention Sampler node does, minus encoding the concepts with CLIP."""
        patch = self.patch(k, layers)
        patched = patch.install(self.model.clone())
        (out,) = self.nodes.common_ksampler(patched, SEED, steps or self.s.steps, 1.0, "euler", "simple",
                                            self.positive, self.negative, self.latent(side))
        self.maps(patch, k, side)
        self.last_patch = patch
        return out["samples"]

    def _guided_pass(self, model, sampler_function, side: int) -> None:
        import comfy.sample

        latent = torch.randn(1, 16, side // 8, side // 8, generator=torch.Generator().manual_seed(SEED))
        guider = self.samplers.CFGGuider(model)
        guider.set_conds(self.segment_cond, self.segment_cond)
        guider.set_cfg(1.0)
        noise = comfy.sample.prepare_noise(latent, SEED)
        guider.sample(noise, latent, self.samplers.KSAMPLER(sampler_function), torch.tensor([0.5, 0.0]),
                      disable_pbar=True, seed=SEED)

    def full_pass(self, side: int) -> None:
        """One full model forward through Segment Image's own mechanism, on the unpatched model."""
        self._guided_pass(self.model, one_full_pass, side)

    def segment(self, side: int, k: int, layers: tuple[int, ...]) -> None:
        """What Segment Image does per noise sample (minus VAE and CLIP): a pass that stops early."""
        patch = self.patch(k, layers, stop=True)
        self._guided_pass(patch.install(self.model.clone()), self.host.segment_module.one_partial_pass, side)
        self.maps(patch, k, side)
        self.last_patch = patch


def one_full_pass(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """The baseline 'sampler' for Segment Image: one full model call, as one_partial_pass minus the stop."""
    model(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
    return x


def aggregator_bytes(patch) -> dict:
    agg = patch.aggregator
    return {
        "bytes": sum(t.numel() * t.element_size() for t in agg.sums.values()),
        "shape": list(next(iter(agg.sums.values())).shape),
        "contributions": agg.contributions,
    }


def tokens(side: int) -> int:
    return (side // 16) ** 2


def rounds_for(settings: Settings, side: int) -> int:
    """Sizes under 512^2 are cheap, so they get two more rounds against the noise."""
    return settings.rounds if side >= 512 or settings.quick else settings.rounds + 2


def ratios(patched: Runs, base: Runs) -> dict:
    """Median ratios (wall and CPU time, peak memory) and the per-round wall ratios."""
    return {
        "time_ratio": patched.time / base.time,
        "cpu_time_ratio": patched.cpu_time / base.cpu_time,
        "time_ratio_rounds": [p / b for p, b in zip(patched.seconds, base.seconds)],
        "peak_ratio": patched.peak / base.peak if base.peak else float("nan"),
        "total_peak_ratio": patched.total_peak / base.total_peak if base.total_peak else float("nan"),
    }


def sampler_section(bench: Bench, layers: tuple[int, ...]) -> list[dict]:
    rows = []
    for side in bench.s.sizes:
        # The patched latent must equal KSampler's; checked once per size, outside the timing.
        identical = torch.equal(bench.ksampler(side), bench.concept_sampler(side, max(bench.s.concepts), layers))
        variants = {"ksampler": lambda side=side: bench.ksampler(side)}
        stores = {}
        for k in bench.s.concepts:
            def run(side=side, k=k):
                bench.concept_sampler(side, k, layers)
                stores[k] = aggregator_bytes(bench.last_patch)
            variants[f"k{k}"] = run
        runs = alternate(variants, rounds_for(bench.s, side), bench.device)
        base = runs["ksampler"]
        for k in bench.s.concepts:
            patched = runs[f"k{k}"]
            rows.append({
                "size": side, "image_tokens": tokens(side), "concepts": k, "layers": list(layers),
                "baseline_s": base.time, "patched_s": patched.time, **ratios(patched, base),
                "baseline_peak_mib": base.peak / 2**20, "patched_peak_mib": patched.peak / 2**20,
                "latent_identical": identical, "aggregator": stores[k],
                "analytic_ratio": bench_flops.sampler_ratio(geometry(bench.s), side, TEXT_TOKENS, k, max(layers)),
            })
    return rows


def segment_section(bench: Bench, layers: tuple[int, ...]) -> list[dict]:
    rows = []
    k = bench.s.segment_concepts
    for side in bench.s.sizes:
        runs = alternate({"full": lambda side=side: bench.full_pass(side),
                          "segment": lambda side=side: bench.segment(side, k, layers)},
                         rounds_for(bench.s, side), bench.device)
        full, seg = runs["full"], runs["segment"]
        rows.append({
            "size": side, "image_tokens": tokens(side), "concepts": k, "layers": list(layers),
            "full_s": full.time, "segment_s": seg.time, **ratios(seg, full),
            "full_peak_mib": full.peak / 2**20, "segment_peak_mib": seg.peak / 2**20,
            "analytic_ratio": bench_flops.segment_ratio(geometry(bench.s), side, TEXT_TOKENS, k, max(layers)),
        })
    return rows


def layer_section(bench: Bench) -> list[dict]:
    """Overhead against the layer choice: the stream runs through every double block up to the
    last chosen one, so the cost should follow max(layers), not how many layers are averaged."""
    side = min(bench.s.sizes)
    k = max(bench.s.concepts) if bench.s.quick else 16
    chosen: dict[tuple[int, ...], str] = {}
    for spec in bench.s.layer_sets:
        chosen.setdefault(bench.layers(spec), spec)
    variants = {"ksampler": lambda: bench.ksampler(side)}
    stores = {}
    for layers in chosen:
        def run(layers=layers):
            bench.concept_sampler(side, k, layers)
            stores[layers] = aggregator_bytes(bench.last_patch)
        variants[str(layers)] = run
    runs = alternate(variants, rounds_for(bench.s, side), bench.device)
    base = runs["ksampler"]
    return [{
        "size": side, "concepts": k, "layers_spec": spec, "layers": list(layers), **ratios(runs[str(layers)], base),
        "aggregator": stores[layers],
        "analytic_ratio": bench_flops.sampler_ratio(geometry(bench.s), side, TEXT_TOKENS, k, max(layers)),
    } for layers, spec in chosen.items()]


def steps_section(bench: Bench) -> list[dict]:
    """Stored maps over steps: the aggregator keeps one running sum per space, however many
    layers x steps contribute (the smallest size; its time is not measured)."""
    side, k, rows = min(bench.s.sizes), 4, []
    layers = bench.layers("all")
    for steps in (1, 3):
        bench.concept_sampler(side, k, layers, steps=steps)
        store = aggregator_bytes(bench.last_patch)
        rows.append({"size": side, "concepts": k, "layers": list(layers), "steps": steps, **store,
                     "expected_bytes": 1 * k * tokens(side) * 4 * 2})
    return rows


def geometry(s: Settings) -> bench_flops.Geometry:
    return bench_flops.Geometry(depth=s.depth, single=s.single)


def analytic_section(sizes: list[int]) -> list[dict]:
    """FLOP ratios of the full Flux.1 geometry (19 double + 38 single), stream to block 18."""
    flux1 = bench_flops.Geometry()
    rows = []
    for side in sorted({512, 1024, *sizes}):
        for text in (TEXT_TOKENS, 512):
            rows.append({
                "size": side, "text_tokens": text,
                "sampler_k4": bench_flops.sampler_ratio(flux1, side, text, 4, 18),
                "sampler_k64": bench_flops.sampler_ratio(flux1, side, text, 64, 18),
                "segment_k4": bench_flops.segment_ratio(flux1, side, text, 4, 18),
            })
    return rows


def machine_info(device: str, host: bench_host.Host) -> dict:
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")),
               platform.processor())
    info = {"nproc": os.cpu_count(), "cpu": cpu, "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "python": platform.python_version(), "comfyui": host.comfyui_version}
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
    import comfy.ldm.modules.attention as attention

    info["attention"] = attention.optimized_attention.__name__
    return info


def target_checks(result: dict) -> list[dict]:
    checks = []
    sampler = {(r["size"], r["concepts"]): r for r in result["sampler"]}
    side = 512 if any(size == 512 for size, _ in sampler) else max(size for size, _ in sampler)
    for k, key in ((4, "sampler_4"), (64, "sampler_64")):
        if (side, k) in sampler:
            value = sampler[(side, k)]["time_ratio"]
            checks.append({"target": f"sampler time {side}^2 K={k}", "limit": TARGETS[key], "value": value,
                           "met": value <= TARGETS[key]})
    for row in result["segment"]:
        checks.append({"target": f"segment time {row['size']}^2 (depth {result['settings']['depth']}"
                                 f"+{result['settings']['single']})",
                       "limit": TARGETS["segment"], "value": row["time_ratio"], "met": row["time_ratio"] <= TARGETS["segment"]})
    worst = max(result["sampler"], key=lambda r: r["peak_ratio"])
    checks.append({"target": f"sampler peak memory (worst: {worst['size']}^2 K={worst['concepts']})",
                   "limit": TARGETS["memory"], "value": worst["peak_ratio"], "met": worst["peak_ratio"] <= TARGETS["memory"]})
    worst_total = max(result["sampler"], key=lambda r: r["total_peak_ratio"])
    checks.append({"target": "sampler peak memory incl. weights (worst)", "limit": TARGETS["memory"],
                   "value": worst_total["total_peak_ratio"], "met": worst_total["total_peak_ratio"] <= TARGETS["memory"]})
    return checks


def _spread(row: dict) -> str:
    return f"{min(row['time_ratio_rounds']):.3f}-{max(row['time_ratio_rounds']):.3f}"


def print_report(result: dict) -> None:
    s, m = result["settings"], result["machine"]
    print(f"\nConceptAttention benchmark  ({'quick' if s['quick'] else 'full'}, {s['device']}, {s['dtype']})")
    print(f"machine: {m['nproc']} cpus, {m['cpu']}{', ' + m['gpu'] if 'gpu' in m else ''}; torch {m['torch']} "
          f"({m['torch_threads']} threads), ComfyUI {m['comfyui']}, attention {m['attention']}")
    print(f"model: Flux.1 width (hidden 3072, 24 heads, mlp 4, context 4096, vec 768, guidance), depth "
          f"{s['depth']} double + {s['single']} single, random weights; {TEXT_TOKENS} text tokens; steps {s['steps']}, "
          f"cfg 1, euler/simple; {s['rounds']} alternating rounds (+2 under 512^2) after a warm-up; medians")
    print(f"memory: {result['memory_method']}")
    print("columns: time x = median wall / median wall; cpu x = the same on process CPU time; rounds = min-max of "
          "the per-round wall ratios; peak = memory above the weights; FLOP x = analytic ratio of this geometry")

    print("\na. Concept Attention Sampler / KSampler")
    print(f"{'size':>5} {'tokens':>6} {'K':>3} {'KSampler s':>10} {'CA s':>8} {'time x':>7} {'cpu x':>7} {'rounds':>12} "
          f"{'KS peak MiB':>11} {'CA peak MiB':>11} {'peak x':>7} {'+weights x':>10} {'FLOP x':>7} {'same latent':>11}")
    for r in result["sampler"]:
        print(f"{r['size']:>5} {r['image_tokens']:>6} {r['concepts']:>3} {r['baseline_s']:>10.3f} {r['patched_s']:>8.3f} "
              f"{r['time_ratio']:>7.3f} {r['cpu_time_ratio']:>7.3f} {_spread(r):>12} {r['baseline_peak_mib']:>11.1f} "
              f"{r['patched_peak_mib']:>11.1f} {r['peak_ratio']:>7.3f} {r['total_peak_ratio']:>10.4f} "
              f"{r['analytic_ratio']:>7.3f} {str(r['latent_identical']):>11}")

    print(f"\nb. Segment Image partial pass / one full forward (layers {result['segment'][0]['layers']}: the last chosen "
          f"is the last double block, so all {s['depth']} double blocks run and no single block)")
    print(f"{'size':>5} {'tokens':>6} {'K':>3} {'full s':>8} {'segment s':>9} {'time x':>7} {'cpu x':>7} {'rounds':>12} "
          f"{'full MiB':>9} {'seg MiB':>8} {'peak x':>7} {'FLOP x':>7}")
    for r in result["segment"]:
        print(f"{r['size']:>5} {r['image_tokens']:>6} {r['concepts']:>3} {r['full_s']:>8.3f} {r['segment_s']:>9.3f} "
              f"{r['time_ratio']:>7.3f} {r['cpu_time_ratio']:>7.3f} {_spread(r):>12} {r['full_peak_mib']:>9.1f} "
              f"{r['segment_peak_mib']:>8.1f} {r['peak_ratio']:>7.3f} {r['analytic_ratio']:>7.3f}")

    print("\nc. Scaling of the sampler overhead (time x - 1, wall / cpu)")
    by_size: dict[int, list[dict]] = {}
    for r in result["sampler"]:
        by_size.setdefault(r["size"], []).append(r)
    for side, rows in by_size.items():
        cells = "  ".join(f"K={r['concepts']}: {r['time_ratio'] - 1:+.3f}/{r['cpu_time_ratio'] - 1:+.3f}" for r in rows)
        print(f"  vs concepts at {side}^2 ({tokens(side)} image tokens): {cells}")
    for k in s["concepts"]:
        cells = "  ".join(f"{r['image_tokens']} tokens: {r['time_ratio'] - 1:+.3f}/{r['cpu_time_ratio'] - 1:+.3f}"
                          for r in result["sampler"] if r["concepts"] == k)
        print(f"  vs image tokens, K={k}: {cells}")
    for r in result["layers"]:
        print(f"  vs layers at {r['size']}^2 K={r['concepts']}: {r['layers_spec']!r:>6} = {str(r['layers']):<8} "
              f"{r['time_ratio'] - 1:+.3f}/{r['cpu_time_ratio'] - 1:+.3f} (FLOP {r['analytic_ratio'] - 1:+.3f}), "
              f"peak x {r['peak_ratio']:.3f}, {r['aggregator']['contributions']} maps averaged, "
              f"{r['aggregator']['bytes']} B stored")

    print("\nd. Stored maps (aggregator sums): B*K*N*4 bytes * 2 spaces, whatever layers x steps")
    for r in result["steps"]:
        print(f"  {r['size']}^2 K={r['concepts']} layers {r['layers']} steps {r['steps']}: {r['contributions']} "
              f"maps per space averaged, {r['bytes']} B stored (B*K*N*4*2 = {r['expected_bytes']} B), sums {r['shape']}")
    for r in result["sampler"]:
        a = r["aggregator"]
        print(f"  {r['size']}^2 K={r['concepts']}: {a['bytes']} B ({a['bytes'] / 2**10:.1f} KiB) = 1*{r['concepts']}*"
              f"{r['image_tokens']}*4*2, {a['contributions']} maps per space averaged")

    print("\nAnalytic FLOP ratios, full Flux.1 (19 double + 38 single), concept stream to block 18:")
    for r in result["analytic_flux1"]:
        print(f"  {r['size']}^2, {r['text_tokens']} text tokens: sampler K=4 {r['sampler_k4']:.4f}, "
              f"K=64 {r['sampler_k64']:.4f}; segment K=4 {r['segment_k4']:.3f}")

    print("\nTargets:")
    for c in result["targets"]:
        print(f"  {'ok  ' if c['met'] else 'MISS'} {c['target']}: {c['value']:.3f} (limit {c['limit']})")
    print(f"\ntotal wall time {result['wall_s']:.0f} s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="tiny smoke run (< 60 s on a 2-core CPU)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", type=Path, default=Path(__file__).parent / "results.json")
    parser.add_argument("--depth", type=int, help="double blocks (default: by device and --quick)")
    parser.add_argument("--single", type=int, help="single blocks")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sides in pixels")
    parser.add_argument("--concepts", type=int, nargs="+", help="concept counts")
    parser.add_argument("--steps", type=int, help="sampling steps")
    parser.add_argument("--rounds", type=int, help="alternating measured rounds")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    options = parse_args(argv)
    if options.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench: --device cuda but torch sees no CUDA device")
    settings = default_settings(options.device, options.quick)
    for name in ("depth", "single", "sizes", "concepts", "steps", "rounds"):
        if getattr(options, name) is not None:
            setattr(settings, name, getattr(options, name))

    if options.threads:
        torch.set_num_threads(options.threads)
    host = bench_host.boot(options.device)
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm in the timed region, as a headless server
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        result = run_all(options, settings, host)
    result["wall_s"] = time.perf_counter() - started
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(result, indent=1))
    print_report(result)
    print(f"wrote {options.out}")
    return result


def run_all(options: argparse.Namespace, settings: Settings, host: bench_host.Host) -> dict:
    bench = Bench(host, settings)
    auto = bench.layers("auto")  # the last four double blocks (all of them when there are fewer)
    result = {
        "settings": asdict(settings),
        "machine": machine_info(options.device, host),
        "memory_method": (bench_meter.cpu_memory_method() if options.device == "cpu" else
                          "CUDA: torch.cuda.max_memory_allocated after reset_peak_memory_stats, minus allocated before"),
        "sampler": sampler_section(bench, auto),
        "segment": segment_section(bench, auto),
        "layers": layer_section(bench),
        "steps": steps_section(bench),
        "analytic_flux1": analytic_section(settings.sizes),
    }
    result["targets"] = target_checks(result)
    return result


if __name__ == "__main__":
    main()
