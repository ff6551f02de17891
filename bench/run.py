"""ConceptAttention benchmark: overhead of the concept stream against plain ComfyUI, in one process.

    CA_COMFYUI_DIR=<ComfyUI> <python> bench/run.py [--quick] [--device cpu|cuda] [--out bench/results.json]

Other options (--depth, --single, --sizes, --concepts, --steps, --rounds, --threads, --layer-sets; --frames for
the video families, each size then measured at each clip length) override the defaults of default_settings();
bench/gpu.sh runs it on a GPU with the full Flux.1 depth.

(scripts/host_env.sh 0.8.0 prints "COMFYUI_DIR<TAB>PYTHON" on its last line.) Boots ComfyUI
in-process, loads this extension through ComfyUI's loader, builds a Flux.1-width model with random
weights (depth reduced on the CPU, keeping Flux.1's 1:2 double:single ratio, so the double blocks
the stream runs through are the same third of the model) and measures, as ratios against the
matching plain run:

  a. Concept Attention Sampler (ConceptAttentionPatch on model.clone() + nodes.common_ksampler)
     against KSampler (nodes.common_ksampler on the model): wall time and peak memory;
  b. Segment Image's partial pass (stop after the last chosen double block, CFGGuider +
     KSAMPLER(one_partial_pass)) against one full forward through the same mechanism;
  c. scaling of the overhead with concepts, image tokens and the chosen layers;
  d. the aggregator's stored maps (B*K*N*4 bytes * 2 spaces, whatever layers x steps).

Concept embeddings are synthetic (random [1, K, 4096]), so no text encoder is needed. Every
variant first runs once untimed (warm-up, latent check, and the peak-memory run), then baseline
and patched runs alternate (forward, then reversed order each round); medians and the fastest
rounds are compared (the targets use the fastest: on a shared machine noise only adds time).
On the CPU each patched run also times the stream's own functions (bench_attribution), which gives
an overhead estimate from within one run ("attr x"), steady where a shared machine makes
wall-time ratios of separate runs swing by tens of percent.
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

import bench_attribution
import bench_flops
import bench_host
import bench_meter
import torch

SEED = 42
TEXT_TOKENS = 32
TARGETS = {"sampler_4": 1.02, "sampler_64": 1.05, "segment": 0.40, "memory": 1.02}
WEIGHT_DTYPES = {"native": None, "fp8": torch.float8_e4m3fn, "gguf_q8": None}


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
    family: str = "flux1"
    weights: str = "native"  # native: stored in dtype; fp8: stored as fp8_e4m3fn, computed in dtype
    frames: list[int] = field(default_factory=list)  # video families: clip lengths in video frames


def evidence_parser(doc: str) -> argparse.ArgumentParser:
    """The options every evidence script shares: the device and the depth overrides."""
    parser = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--depth", type=int)
    parser.add_argument("--single", type=int)
    parser.add_argument("--family", choices=list(bench_host.FAMILIES), default="flux1")
    parser.add_argument("--weights", choices=["native", "fp8"], default="native",
                        help="fp8: weights stored as fp8_e4m3fn and cast as used")
    return parser


def evidence_settings(options) -> Settings:
    """The full run's settings with an evidence script's --depth/--single/--concepts overrides."""
    settings = default_settings(options.device, quick=False)
    settings.depth = options.depth or settings.depth
    settings.single = options.single or settings.single
    settings.concepts = getattr(options, "concepts", None) or settings.concepts
    settings.family = getattr(options, "family", settings.family)
    settings.weights = getattr(options, "weights", settings.weights)
    return settings


def default_settings(device: str, quick: bool) -> Settings:
    """Sizes that fit the machine: a 2-core CPU runs a shallow model, a GPU the full Flux.1."""
    if device == "cuda":
        if quick:
            return Settings(device, "bfloat16", 2, 4, [512], [1, 4], 2, 1, 4, [], True)
        return Settings(device, "bfloat16", 19, 38, [512, 1024], [1, 4, 16, 64], 2, 7, 4,
                        ["0", "-1", "-2,-1", "auto", "all"], False)
    if quick:
        return Settings(device, "float32", 1, 2, [128], [1, 4], 1, 1, 4, [], True)
    return Settings(device, "float32", 2, 4, [256, 512], [1, 4, 16, 64], 1, 5, 4, ["0", "-1", "all"], False)


@dataclass
class Runs:
    """One variant: its untimed memory run, then one Measurement per round."""

    memory: bench_meter.MemoryPeak
    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    stream_seconds: list[float] = field(default_factory=list)  # CPU only: inside the stream's functions
    embedding_seconds: list[float] = field(default_factory=list)  # of those, the concepts' embedding
    calibration_seconds: list[float] = field(default_factory=list)  # products timed for the attribution alone
    rss_peak_bytes: list[int] = field(default_factory=list)

    @property
    def time(self) -> float:
        return statistics.median(self.seconds)

    @property
    def cpu_time(self) -> float:
        return statistics.median(self.cpu_seconds)


def progress(message: str) -> None:
    """One line per measured group on stderr, so a long run shows it is alive."""
    print(f"bench: {message}", file=sys.stderr, flush=True)


def alternate(variants: dict[str, Callable[[], object]], rounds: int, bench: "Bench",
              clock: bench_attribution.StreamClock | None) -> tuple[dict[str, Runs], dict[str, object]]:
    """Each variant once untimed (its memory run, which also warms it up), then once per round,
    the order reversed every other round. Returns the runs and each variant's first result."""
    device = bench.device
    runs, first = {}, {}
    for name, call in variants.items():
        peak, first[name] = bench_meter.memory_peak(call, device, bench.resident_bytes)
        runs[name] = Runs(peak)
    names = list(variants)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            if clock:
                clock.reset()
                clock.timing = True
            try:
                m = bench_meter.measure(variants[name], device)
            finally:
                if clock:
                    clock.timing = False
            run = runs[name]
            run.seconds.append(m.seconds)
            run.cpu_seconds.append(m.cpu_seconds)
            run.rss_peak_bytes.append(m.rss_peak_bytes)
            run.stream_seconds.append(clock.total if clock else float("nan"))
            run.embedding_seconds.append(clock.parts.get("embed_concepts", 0.0) if clock else float("nan"))
            run.calibration_seconds.append(clock.calibration if clock else 0.0)
    return runs, first


def ratios(patched: Runs, base: Runs, embedding_once_per_run: bool = False) -> dict:
    """Median time ratios, the in-run attribution, and the memory ratios. embedding_once_per_run: the family embeds
    the concepts once per sampling run, so step_ratio leaves that embedding out (it is a cost of the run, which a
    one-step run shows whole)."""
    def ratio(a: float, b: float) -> float:
        return a / b if b else float("nan")

    # the run's own time: its wall time less the stream's and less the products timed for the attribution alone
    rest = [t - s - c for s, t, c in zip(patched.stream_seconds, patched.seconds, patched.calibration_seconds,
                                         strict=True)]
    attributed = [s / r for s, r in zip(patched.stream_seconds, rest, strict=True)]
    once = patched.embedding_seconds if embedding_once_per_run else [0.0] * len(patched.seconds)
    per_step = [(s - e) / r for s, e, r in zip(patched.stream_seconds, once, rest, strict=True)]
    return {
        "step_ratio": 1 + statistics.median(per_step),
        "time_ratio": patched.time / base.time,
        # noise on a shared machine only ever adds time, so the fastest round is the cleanest
        "best_time_ratio": min(patched.seconds) / min(base.seconds),
        "cpu_time_ratio": patched.cpu_time / base.cpu_time,
        "attributed_ratio": 1 + statistics.median(attributed),
        "attributed_ratio_rounds": [1 + a for a in attributed],
        "time_ratio_rounds": [p / b for p, b in zip(patched.seconds, base.seconds, strict=True)],
        "peak_ratio": ratio(patched.memory.peak_bytes, base.memory.peak_bytes),
        "total_peak_ratio": ratio(patched.memory.total_peak_bytes, base.memory.total_peak_bytes),
        "rss_peak_ratio": ratio(statistics.median(patched.rss_peak_bytes), statistics.median(base.rss_peak_bytes)),
        "baseline_s": base.time, "patched_s": patched.time,
        "baseline_rounds_s": base.seconds, "patched_rounds_s": patched.seconds,
        "baseline_peak_mib": base.memory.peak_bytes / 2**20, "patched_peak_mib": patched.memory.peak_bytes / 2**20,
    }


class Bench:
    """The model, inputs and the four kinds of run, built once."""

    def __init__(self, host: bench_host.Host, settings: Settings, clock: bench_attribution.StreamClock | None):
        import comfy.samplers
        import comfy.supported_models
        import nodes

        self.host, self.s = host, settings
        self.nodes, self.samplers = nodes, comfy.samplers
        self.device, self.clock = settings.device, clock
        self.geometry = bench_host.FAMILIES[settings.family]
        self.model = bench_host.build_model(self.geometry, settings.depth, settings.single, settings.device,
                                            getattr(torch, settings.dtype), seed=0,
                                            weight_dtype=WEIGHT_DTYPES[settings.weights])
        self.gguf_folder = None  # where the GGUF file lies, for the caller to remove
        if settings.weights == "gguf_q8":
            import tempfile

            self.gguf_folder = Path(tempfile.mkdtemp(prefix="ca-bench-gguf-"))
            config = getattr(comfy.supported_models, self.geometry.config_class)(
                bench_host.family_config(self.geometry, settings.depth, settings.single))
            self.model = bench_host.as_gguf(self.model, "Q8_0", self.gguf_folder, config)
        self.diffusion_model = self.model.get_model_object("diffusion_model")
        # what is live before every call on the CPU: the weights (the profiler cannot see them)
        self.resident_bytes = sum(t.numel() * t.element_size() for t in self.model.model.state_dict().values())
        self.patch_class = host.install_module.ConceptAttentionPatch
        family = sys.modules[f"{host.pack.__name__}.nodes.families"].family_for(self.model)
        self.embedding_once_per_run = not family.concept_embedding_per_call
        self.family = sys.modules[f"{host.pack.__name__}.nodes.families"].family_for(self.model)
        self.parse_layers = sys.modules[f"{host.pack.__name__}.ca_core.layers"].parse_layers
        generator = torch.Generator().manual_seed(SEED)
        g = self.geometry
        context = torch.randn(1, TEXT_TOKENS, g.context_dim, generator=generator)
        pooled = torch.randn(1, g.pooled_dim, generator=generator) if g.pooled_dim else None
        self.concepts = torch.randn(1, max([*settings.concepts, settings.segment_concepts]), g.context_dim,
                                    generator=generator)
        extra = g.extra_conditioning(generator, TEXT_TOKENS)  # drawn last: the draws above stay the same
        self.positive = [[context, {"pooled_output": pooled, "guidance": 3.5, **extra}]]
        self.negative = [[torch.zeros_like(context), {"pooled_output": None if pooled is None else torch.zeros_like(pooled),
                                                      "guidance": 3.5, **extra}]]
        self.segment_cond = [[context, {**self.family.segmentation_conditioning(self.diffusion_model), **extra}]]
        self.last_patch = None

    def layers(self, spec: str) -> tuple[int, ...]:
        return self.parse_layers(spec, self.s.depth, self.family.default_layers)

    def latent(self, side: int, frames: int | None = None) -> dict:
        """An empty latent: [1, C, H, W], or for a video family [1, C, latent frames, H, W] of a clip of `frames`."""
        g = self.geometry
        cells = (side // g.vae_scale, side // g.vae_scale)
        if g.frame_stride:
            return {"samples": torch.zeros(1, g.latent_channels, g.latent_frames(frames), *cells)}
        return {"samples": torch.zeros(1, g.latent_channels, *cells)}

    def tokens(self, side: int, frames: int | None = None) -> int:
        """Image tokens: one grid of side / 16 squared per latent frame (the video families patch frames singly)."""
        return tokens(side) * (self.geometry.latent_frames(frames) if self.geometry.frame_stride else 1)

    def patch(self, k: int, layers: tuple[int, ...], stop: bool = False):
        return self.patch_class(self.family, self.concepts[:, :k], layers, (0, 10000), stop_after_last_layer=stop)

    def maps(self, patch, k: int, side: int):
        return patch.concept_maps([f"c{i}" for i in range(k)], (side, side), "output",
                                  self.family.token_pixels(self.model))

    def ksampler(self, side: int, steps: int | None = None, frames: int | None = None) -> torch.Tensor:
        """KSampler: nodes.common_ksampler on the unpatched model."""
        (out,) = self.nodes.common_ksampler(self.model, SEED, steps or self.s.steps, 1.0, "euler", "simple",
                                            self.positive, self.negative, self.latent(side, frames))
        return out["samples"]

    def concept_sampler(self, side: int, k: int, layers: tuple[int, ...], steps: int | None = None,
                        frames: int | None = None) -> torch.Tensor:
        """What the Concept Attention Sampler node does, minus encoding the concepts with CLIP."""
        patch = self.patch(k, layers)
        patched = patch.install(self.model.clone())
        (out,) = self.nodes.common_ksampler(patched, SEED, steps or self.s.steps, 1.0, "euler", "simple",
                                            self.positive, self.negative, self.latent(side, frames))
        self.maps(patch, k, side)
        self.last_patch = patch
        return out["samples"]

    def _guided_pass(self, model, sampler_function, side: int, frames: int | None = None) -> None:
        import comfy.sample

        shape = self.latent(side, frames)["samples"].shape
        latent = torch.randn(shape, generator=torch.Generator().manual_seed(SEED))
        latent = comfy.sample.fix_empty_latent_channels(model, latent)  # as Segment Image (Qwen-Image: 5-D)
        guider = self.samplers.CFGGuider(model)
        guider.set_conds(self.segment_cond, self.segment_cond)
        guider.set_cfg(1.0)
        noise = comfy.sample.prepare_noise(latent, SEED)
        guider.sample(noise, latent, self.samplers.KSAMPLER(sampler_function), torch.tensor([0.5, 0.0]),
                      disable_pbar=True, seed=SEED)

    def full_pass(self, side: int, frames: int | None = None) -> None:
        """One full model forward through Segment Image's own mechanism, on the unpatched model."""
        self._guided_pass(self.model, one_full_pass, side, frames)

    def segment(self, side: int, k: int, layers: tuple[int, ...], frames: int | None = None) -> None:
        """What Segment Image does per noise sample (minus VAE and CLIP): a pass that stops early."""
        patch = self.patch(k, layers, stop=True)
        self._guided_pass(patch.install(self.model.clone()), self.host.segment_module.one_partial_pass, side, frames)
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


def clips(s: Settings) -> list[int | None]:
    """The clip lengths to measure: each of --frames for a video family, None (one image) otherwise."""
    return list(s.frames) if bench_host.FAMILIES[s.family].frame_stride else [None]


def shape_fields(bench: Bench, side: int, frames: int | None) -> dict:
    """A row's size, clip length (video) and image tokens."""
    video = {"frames": frames, "latent_frames": bench.geometry.latent_frames(frames)} if frames else {}
    return {"size": side, **video, "image_tokens": bench.tokens(side, frames)}


def sampler_variants(bench: Bench, side: int, configs: dict[str, tuple[int, tuple[int, ...]]],
                     stores: dict[str, dict], frames: int | None = None) -> dict[str, Callable[[], object]]:
    """KSampler first, then one Concept Attention Sampler per (concepts, layers) config."""
    variants: dict[str, Callable[[], object]] = {"ksampler": lambda: bench.ksampler(side, frames=frames)}
    for name, (k, layers) in configs.items():
        def run(k=k, layers=layers, name=name):
            latent = bench.concept_sampler(side, k, layers, frames=frames)
            stores[name] = aggregator_bytes(bench.last_patch)
            return latent
        variants[name] = run
    return variants


def sampler_section(bench: Bench, layers: tuple[int, ...]) -> list[dict]:
    rows = []
    for side, frames in ((side, frames) for side in bench.s.sizes for frames in clips(bench.s)):
        progress(f"a. sampler {side}^2{f' x {frames} frames' if frames else ''}, concepts {bench.s.concepts}")
        stores: dict[str, dict] = {}
        configs = {f"k{k}": (k, layers) for k in bench.s.concepts}
        runs, first = alternate(sampler_variants(bench, side, configs, stores, frames), bench.s.rounds, bench,
                                bench.clock)
        for k in bench.s.concepts:
            rows.append({
                **shape_fields(bench, side, frames), "concepts": k, "layers": list(layers),
                **ratios(runs[f"k{k}"], runs["ksampler"], bench.embedding_once_per_run),
                # the node's promise: KSampler's latent, bit for bit
                "latent_identical": torch.equal(first["ksampler"], first[f"k{k}"]),
                "aggregator": stores[f"k{k}"],
                "analytic_ratio": analytic(bench_flops.sampler_ratio, bench.s, side, TEXT_TOKENS, k, max(layers)),
            })
    return rows


def segment_section(bench: Bench, layers: tuple[int, ...]) -> list[dict]:
    rows = []
    k = bench.s.segment_concepts
    for side, frames in ((side, frames) for side in bench.s.sizes for frames in clips(bench.s)):
        progress(f"b. segment {side}^2{f' x {frames} frames' if frames else ''}")
        runs, _ = alternate({"full": lambda side=side, frames=frames: bench.full_pass(side, frames),
                             "segment": lambda side=side, frames=frames: bench.segment(side, k, layers, frames)},
                            bench.s.rounds, bench, None)
        full, seg = runs["full"], runs["segment"]
        row = ratios(seg, full)
        rows.append({
            **shape_fields(bench, side, frames), "concepts": k, "layers": list(layers),
            "full_s": row.pop("baseline_s"), "segment_s": row.pop("patched_s"),
            "full_rounds_s": row.pop("baseline_rounds_s"), "segment_rounds_s": row.pop("patched_rounds_s"),
            "full_peak_mib": row.pop("baseline_peak_mib"), "segment_peak_mib": row.pop("patched_peak_mib"),
            **{key: value for key, value in row.items() if not key.startswith("attributed_ratio")},
            "analytic_ratio": analytic(bench_flops.segment_ratio, bench.s, side, TEXT_TOKENS, k, max(layers)),
        })
    return rows


def layer_section(bench: Bench) -> list[dict]:
    """Overhead against the layer choice: the stream runs through every double block up to the
    last chosen one, so the cost should follow max(layers), not how many layers are averaged."""
    if not bench.s.layer_sets:  # --quick: one double block leaves nothing to vary
        return []
    side, frames = min(bench.s.sizes), clips(bench.s)[0]
    k = 16 if 16 in bench.s.concepts else max(bench.s.concepts)
    chosen: dict[tuple[int, ...], str] = {}
    for spec in bench.s.layer_sets:
        chosen.setdefault(bench.layers(spec), spec)
    progress(f"c. layers {[list(layers) for layers in chosen]} at {side}^2")
    stores: dict[str, dict] = {}
    configs = {str(list(layers)): (k, layers) for layers in chosen}
    runs, _ = alternate(sampler_variants(bench, side, configs, stores, frames), bench.s.rounds, bench, bench.clock)
    return [{
        **shape_fields(bench, side, frames), "concepts": k, "layers_spec": spec, "layers": list(layers),
        **ratios(runs[str(list(layers))], runs["ksampler"]), "aggregator": stores[str(list(layers))],
        "analytic_ratio": analytic(bench_flops.sampler_ratio, bench.s, side, TEXT_TOKENS, k, max(layers)),
    } for layers, spec in chosen.items()]


def steps_section(bench: Bench) -> list[dict]:
    """Stored maps over steps: the aggregator keeps one running sum per space, however many
    layers x steps contribute (the smallest size; its time is not measured)."""
    side, frames, k, rows = min(bench.s.sizes), clips(bench.s)[0], 4, []
    layers = bench.layers("all")
    for steps in (1, 2):
        bench.concept_sampler(side, k, layers, steps=steps, frames=frames)
        store = aggregator_bytes(bench.last_patch)
        rows.append({**shape_fields(bench, side, frames), "concepts": k, "layers": list(layers), "steps": steps,
                     **store, "expected_bytes": 1 * k * bench.tokens(side, frames) * 4 * 2})
    return rows


def analytic(ratio: Callable[..., float], s: Settings, *args) -> float:
    """A FLOP ratio of bench_flops' Flux.1 model at this depth; NaN for the other families, which it does
    not model (their columns then read only the measured ratios)."""
    if s.family != "flux1":
        return float("nan")
    return ratio(bench_flops.Geometry(depth=s.depth, single=s.single), *args)


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
    def check(target: str, limit: float, value: float) -> dict:
        return {"target": target, "limit": limit, "value": value, "met": value <= limit}

    checks = []
    sampler = {(r["size"], r.get("frames"), r["concepts"]): r for r in result["sampler"]}
    side = 512 if any(size == 512 for size, _, _ in sampler) else max(size for size, _, _ in sampler)
    for k, key in ((4, "sampler_4"), (64, "sampler_64")):
        for row in (row for (size, _, concepts), row in sampler.items() if (size, concepts) == (side, k)):
            checks.append(check(f"sampler wall time {shape_label(row)} K={k}, fastest rounds", TARGETS[key],
                                row["best_time_ratio"]))
            if result["settings"]["device"] == "cpu":
                checks.append(check(f"sampler in-run attribution {shape_label(row)} K={k}", TARGETS[key],
                                    row["attributed_ratio"]))
    depth = f"{result['settings']['depth']}+{result['settings']['single']}"
    for row in result["segment"]:
        checks.append(check(f"segment wall time {shape_label(row)} (depth {depth}), fastest rounds", TARGETS["segment"],
                            row["best_time_ratio"]))
    for key, what in (("peak_ratio", "activations"), ("total_peak_ratio", "weights included")):
        worst = max(result["sampler"], key=lambda r, key=key: r[key])
        checks.append(check(f"sampler peak memory, {what} (worst: {worst['size']}^2 K={worst['concepts']})",
                            TARGETS["memory"], worst[key]))
    return checks


def shape_label(row: dict) -> str:
    """256^2, or 256^2 x 17f for a clip of 17 video frames."""
    return f"{row['size']}^2" + (f" x {row['frames']}f" if row.get("frames") else "")


def _size(row: dict) -> str:
    return f"{row['size']}" + (f"x{row['frames']}f" if row.get("frames") else "")


def _spread(row: dict, key: str = "time_ratio_rounds") -> str:
    values = row.get(key) or [float("nan")]  # results written before a key existed lack it
    return f"{min(values):.3f}-{max(values):.3f}"


def print_report(result: dict) -> None:
    s, m = result["settings"], result["machine"]
    print(f"\nConceptAttention benchmark  ({'quick' if s['quick'] else 'full'}, {s['device']}, {s['dtype']})")
    print(f"machine: {m['nproc']} cpus, {m['cpu']}{', ' + m['gpu'] if 'gpu' in m else ''}; torch {m['torch']} "
          f"({m['torch_threads']} threads), ComfyUI {m['comfyui']}, attention {m['attention']}")
    weights = "" if s.get("weights", "native") == "native" else f", {s['weights']} weights"
    print(f"model: {bench_host.FAMILIES[s['family']].describe()}{weights}, guidance 3.5, depth "
          f"{s['depth']} double + {s['single']} single, random weights; {TEXT_TOKENS} text tokens; steps {s['steps']}, "
          f"cfg 1, euler/simple; {s['rounds']} alternating round(s) after an untimed run of each variant; medians")
    if s.get("frames"):
        print(f"clips: {', '.join(str(f) for f in s['frames'])} video frames (latent frames (n - 1) // 4 + 1)")
    print(f"memory: {result['memory_method']}")
    print("columns: time x = median wall / median wall; best x = fastest wall / fastest wall (the targets' "
          "measure: noise only adds time); cpu x = the same on process CPU time; attr x = 1 + stream "
          "time / rest within each patched run (CPU); rounds = min-max of the per-round wall ratios; attr rounds = "
          "min-max of the per-round attr x; peak MiB = "
          "activations (above the weights); RSS x = process RSS high-water ratio (CUDA: the peak ratio of the timed "
          "runs); +w x = peak ratio with the weights; FLOP x = analytic, this geometry")

    print("\na. Concept Attention Sampler / KSampler")
    print(f"{'size':>8} {'tokens':>6} {'K':>3} {'KSampler s':>10} {'CA s':>8} {'time x':>7} {'best x':>6} {'cpu x':>6} "
          f"{'attr x':>6} {'rounds':>11} {'attr rounds':>11} "
          f"{'KS MiB':>7} {'CA MiB':>7} {'peak x':>6} {'RSS x':>6} {'+w x':>6} {'FLOP x':>6} {'same':>5}")
    for r in result["sampler"]:
        print(f"{_size(r):>8} {r['image_tokens']:>6} {r['concepts']:>3} {r['baseline_s']:>10.3f} {r['patched_s']:>8.3f} "
              f"{r['time_ratio']:>7.3f} {r['best_time_ratio']:>6.3f} {r['cpu_time_ratio']:>6.3f} "
              f"{r['attributed_ratio']:>6.3f} {_spread(r):>11} {_spread(r, 'attributed_ratio_rounds'):>11} "
              f"{r['baseline_peak_mib']:>7.1f} {r['patched_peak_mib']:>7.1f} {r['peak_ratio']:>6.3f} "
              f"{r['rss_peak_ratio']:>6.3f} {r['total_peak_ratio']:>6.4f} {r['analytic_ratio']:>6.3f} "
              f"{str(r['latent_identical']):>5}")

    print(f"\nb. Segment Image partial pass / one full forward (layers {result['segment'][0]['layers']}: the last chosen "
          f"is the last double block, so all {s['depth']} double blocks run and no single block)")
    print(f"{'size':>8} {'tokens':>6} {'K':>3} {'full s':>8} {'segment s':>9} {'time x':>7} {'best x':>6} {'cpu x':>6} "
          f"{'rounds':>11} "
          f"{'full MiB':>8} {'seg MiB':>7} {'peak x':>6} {'FLOP x':>6}")
    for r in result["segment"]:
        print(f"{_size(r):>8} {r['image_tokens']:>6} {r['concepts']:>3} {r['full_s']:>8.3f} {r['segment_s']:>9.3f} "
              f"{r['time_ratio']:>7.3f} {r['best_time_ratio']:>6.3f} {r['cpu_time_ratio']:>6.3f} {_spread(r):>11} "
              f"{r['full_peak_mib']:>8.1f} "
              f"{r['segment_peak_mib']:>7.1f} {r['peak_ratio']:>6.3f} {r['analytic_ratio']:>6.3f}")

    cpu = s["device"] == "cpu"
    print(f"\nc. Scaling of the sampler overhead (x - 1: wall{' / attributed' if cpu else ''})")

    def cell(r: dict) -> str:
        return f"{r['time_ratio'] - 1:+.3f}" + (f"/{r['attributed_ratio'] - 1:+.3f}" if cpu else "")

    for shape in dict.fromkeys(shape_label(r) for r in result["sampler"]):
        rows = [r for r in result["sampler"] if shape_label(r) == shape]
        cells = "  ".join(f"K={r['concepts']}: {cell(r)}" for r in rows)
        print(f"  vs concepts at {shape} ({rows[0]['image_tokens']} image tokens): {cells}")
    for k in s["concepts"]:
        cells = "  ".join(f"{r['image_tokens']} tokens: {cell(r)}" for r in result["sampler"] if r["concepts"] == k)
        print(f"  vs image tokens, K={k}: {cells}")
    for r in result["layers"]:
        print(f"  vs layers at {shape_label(r)} K={r['concepts']}: {r['layers_spec']!r:>7} = {str(r['layers']):<8} "
              f"{cell(r)} (FLOP {r['analytic_ratio'] - 1:+.3f}), peak x {r['peak_ratio']:.3f}, "
              f"{r['aggregator']['contributions']} maps averaged, {r['aggregator']['bytes']} B stored")

    print("\nd. Stored maps (aggregator sums): B*K*N*4 bytes * 2 spaces, whatever layers x steps")
    for r in result["steps"]:
        print(f"  {shape_label(r)} K={r['concepts']} layers {r['layers']} steps {r['steps']}: {r['contributions']} "
              f"maps per space averaged, {r['bytes']} B stored (B*K*N*4*2 = {r['expected_bytes']} B), sums {r['shape']}")
    for r in result["sampler"]:
        a = r["aggregator"]
        print(f"  {shape_label(r)} K={r['concepts']}: {a['bytes']} B ({a['bytes'] / 2**10:.1f} KiB) = 1*{r['concepts']}*"
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
    parser.add_argument("--out", type=Path, help="JSON results (default bench/results.json, --quick: results-quick.json)")
    parser.add_argument("--depth", type=int, help="double blocks (default: by device and --quick)")
    parser.add_argument("--single", type=int, help="single blocks")
    parser.add_argument("--sizes", type=int, nargs="+", help="image sides in pixels")
    parser.add_argument("--frames", type=int, nargs="+", help="video families: clip lengths in video frames "
                        "(1 + 4k; default 17 33)")
    parser.add_argument("--layer-sets", nargs="*", help="layer choices of section c (none: skip it)")
    parser.add_argument("--concepts", type=int, nargs="+", help="concept counts")
    parser.add_argument("--steps", type=int, help="sampling steps")
    parser.add_argument("--rounds", type=int, help="alternating measured rounds")
    parser.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument("--family", choices=list(bench_host.FAMILIES), default="flux1",
                        help="model family, at its real width (default flux1)")
    parser.add_argument("--weights", choices=list(WEIGHT_DTYPES), default="native",
                        help="native: weights in the compute dtype; fp8: stored as fp8_e4m3fn and cast as used, "
                             "as ComfyUI runs fp8 checkpoints; gguf_q8: a Q8_0 GGUF file loaded by ComfyUI-GGUF "
                             "(needs CA_GGUF_DIR)")
    parser.add_argument("--all-families", action="store_true",
                        help="every family x weights x K = 4, 64 in one table (bench/family_table.py), row by row "
                             "into bench/results-all-families.json; a run cut short resumes there")
    parser.add_argument("--families", nargs="+", choices=list(bench_host.FAMILIES),
                        help="--all-families: these families only")
    parser.add_argument("--weights-set", nargs="+", choices=list(WEIGHT_DTYPES),
                        help="--all-families: these weights only (default: all three)")
    parser.add_argument("--peaks-only", action="store_true",
                        help="--all-families: measure the chosen rows' activation peaks again, keeping their timings")
    parser.add_argument("--fresh", action="store_true",
                        help="--all-families: measure the chosen rows again (the JSON's others are kept)")
    parser.add_argument("--readme", action="store_true",
                        help="write the README's family table from the JSON (alone: without measuring)")
    return parser.parse_args(argv)


def family_table_main(options: argparse.Namespace) -> dict:
    """--all-families and --readme (bench/family_table.py)."""
    import family_table

    options.out = options.out or family_table.DEFAULT_OUT
    if not options.all_families:
        result = json.loads(options.out.read_text())
    else:
        if options.threads:
            torch.set_num_threads(options.threads)
        host = bench_host.boot(options.device, gguf="gguf_q8" in (options.weights_set or family_table.WEIGHTS))
        import comfy.utils

        comfy.utils.PROGRESS_BAR_ENABLED = False
        clock = None
        if options.device == "cpu":
            clock = bench_attribution.StreamClock()
            bench_attribution.instrument(host, clock.wrap, clock.wrap_part, clock.ride_along)
        with torch.inference_mode():
            result = family_table.run_table(sys.modules[__name__], options, host, clock)
    family_table.print_table(result)
    if options.readme:
        family_table.write_readme(result)
        print(f"wrote the family table into {family_table.README}")
    return result


def main(argv: list[str] | None = None) -> dict:
    started = time.perf_counter()
    options = parse_args(argv)
    if options.device == "cuda" and not torch.cuda.is_available():
        raise SystemExit("bench: --device cuda but torch sees no CUDA device")
    if options.all_families or options.readme:
        return family_table_main(options)
    if options.out is None:  # the CI smoke run must not overwrite the full run's results
        options.out = Path(__file__).parent / ("results-quick.json" if options.quick else "results.json")
    settings = default_settings(options.device, options.quick)
    settings.family = options.family
    settings.weights = options.weights
    if bench_host.FAMILIES[settings.family].frame_stride:
        settings.frames = [17, 33]
    for name in ("depth", "single", "sizes", "concepts", "steps", "rounds", "frames", "layer_sets"):
        if getattr(options, name) is not None:
            setattr(settings, name, getattr(options, name))
    if options.threads:
        torch.set_num_threads(options.threads)
    host = bench_host.boot(options.device, gguf=options.weights.startswith("gguf"))
    import comfy.utils

    comfy.utils.PROGRESS_BAR_ENABLED = False  # no tqdm in the timed region, as a headless server
    with torch.inference_mode():  # as ComfyUI's executor runs every node
        result = run_all(options, settings, host)
    result["wall_s"] = time.perf_counter() - started
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(_json_safe(result), indent=1))
    print_report(result)
    print(f"wrote {options.out}")
    return result


def _json_safe(value: object) -> object:
    """NaN (no attribution on CUDA, no RSS where clear_refs is closed) as null, for strict JSON readers."""
    if isinstance(value, float) and value != value:
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(item) for item in value]
    return value


def run_all(options: argparse.Namespace, settings: Settings, host: bench_host.Host) -> dict:
    clock = None
    if options.device == "cpu":  # CUDA calls return before their kernels end: use profile_stream.py there
        clock = bench_attribution.StreamClock()
        bench_attribution.instrument(host, clock.wrap, clock.wrap_part, clock.ride_along)
    progress(f"building {bench_host.FAMILIES[settings.family].label}-width model, depth "
             f"{settings.depth}+{settings.single}, {settings.dtype}")
    bench = Bench(host, settings, clock)
    auto = bench.layers("auto")  # the last four double blocks (all of them when there are fewer)
    result = {
        "settings": asdict(settings),
        "machine": machine_info(options.device, host),
        "memory_method": bench_meter.CPU_METHOD if options.device == "cpu" else bench_meter.CUDA_METHOD,
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
