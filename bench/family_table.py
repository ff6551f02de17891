"""bench/run.py --all-families: every family x weights x K in one table.

Each family at its real width (bench_host.FAMILIES; depth reduced, its own proportion of joint to single blocks),
with weights in the compute dtype, stored as fp8_e4m3fn, or a Q8_0 GGUF file through ComfyUI-GGUF, and K = 4
and 64 concepts: the Concept Attention Sampler's in-run share (attr x: 1 + the stream's time / the rest, inside
each patched run), its fastest-round wall ratio to KSampler, the peak memory ratio of the activations, and
Segment Image's pass against one full forward. Rows are written to the JSON as they are measured, so that a
run cut short resumes where it stopped (--fresh measures the chosen rows again, keeping the others); --readme
writes the README's table from the JSON alone.
"""

import gc
import json
import shutil
import sys
import traceback
from pathlib import Path

import bench_host

WEIGHTS = ("native", "fp8", "gguf_q8")
CONCEPTS = (4, 64)
TARGETS = {4: 1.02, 64: 1.05}  # in-run share at K = 4 and 64
MEMORY_TARGET = 1.01
# What the share counts: 2 from when the concepts' rows riding in the text's own products were the stream's time
# (bench_attribution.RIDE_ALONG); rows measured before are marked in the table.
ATTRIBUTION = 2
DEFAULT_OUT = Path(__file__).parent / "results-all-families.json"
README = Path(__file__).resolve().parents[1] / "README.md"
README_START = "<!-- family table: written by bench/run.py --all-families --readme -->"
README_END = "<!-- end of family table -->"


def row_key(family: str, weights: str) -> str:
    return f"{family}/{weights}"


def table_settings(run, family: str, weights: str, device: str, quick: bool):
    """The settings of one row: 512^2 (a video family: 256^2 x 17 frames), K = 4 and 64, one step, the family's
    bench depth, two alternating rounds (quick: 128^2, one round)."""
    geometry = bench_host.FAMILIES[family]
    depth, single = geometry.bench_depth
    video = bool(geometry.frame_stride)
    sizes = [128] if quick else [256 if video else 512]
    dtype = "bfloat16" if device == "cuda" else "float32"
    return run.Settings(device, dtype, depth, single, sizes, list(CONCEPTS), 1, 1 if quick else 2, 4, [], quick,
                        family=family, weights=weights, frames=[17] if video else [])


def measure_row(run, host, settings, clock) -> dict:
    """One family and weights: the sampler at each K and the segment pass, summarised."""
    bench = None
    try:
        bench = run.Bench(host, settings, clock)
        auto = bench.layers("auto")
        sampler = run.sampler_section(bench, auto)
        segment = run.segment_section(bench, auto)[0]
        row = {"attribution": ATTRIBUTION, "depth": [settings.depth, settings.single], "size": settings.sizes[0],
               "frames": settings.frames[0] if settings.frames else None, "layers": list(auto)}
        for r in sampler:
            row[f"k{r['concepts']}"] = {key: r[key] for key in (
                "attributed_ratio", "step_ratio", "best_time_ratio", "time_ratio", "cpu_time_ratio", "peak_ratio",
                "total_peak_ratio", "baseline_s", "patched_s", "latent_identical")}
        row["segment"] = {key: segment[key] for key in ("best_time_ratio", "time_ratio", "full_s", "segment_s")}
        return row
    except Exception as error:  # one family's failure is a row of the table, not the end of the run
        traceback.print_exc(file=sys.stderr)
        return {"error": f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"[:300]}
    finally:
        if bench is not None and bench.gguf_folder is not None:  # a GGUF file per family: gigabytes at real width
            shutil.rmtree(bench.gguf_folder, ignore_errors=True)
        del bench
        free_models()


def measure_peaks(run, host, settings) -> dict:
    """The activation peak ratios of a row alone (one memory run per sampler variant), to measure them again after a
    memory fix without its timed rounds."""
    bench = None
    try:
        bench = run.Bench(host, settings, None)
        layers, side = bench.layers("auto"), settings.sizes[0]
        frames = settings.frames[0] if settings.frames else None
        variants = run.sampler_variants(bench, side, {f"k{k}": (k, layers) for k in settings.concepts}, {}, frames)
        peaks = {name: run.bench_meter.memory_peak(call, settings.device, bench.resident_bytes)[0]
                 for name, call in variants.items()}
        base = peaks["ksampler"]
        return {f"k{k}": {"peak_ratio": peaks[f"k{k}"].peak_bytes / base.peak_bytes,
                          "total_peak_ratio": peaks[f"k{k}"].total_peak_bytes / base.total_peak_bytes}
                for k in settings.concepts}
    finally:
        if bench is not None and bench.gguf_folder is not None:
            shutil.rmtree(bench.gguf_folder, ignore_errors=True)
        del bench
        free_models()


def free_models() -> None:
    """Let go of the row's model: ComfyUI's model management keeps every model it loaded (on the CPU, its weights
    in RAM) until told otherwise, and the families at real width do not fit side by side."""
    import comfy.model_management

    comfy.model_management.unload_all_models()
    comfy.model_management.cleanup_models()
    gc.collect()
    comfy.model_management.soft_empty_cache()


def run_table(run, options, host, clock) -> dict:
    """Every (family, weights) not yet in the JSON, each written as soon as it is measured."""
    out = options.out
    families = options.families or list(bench_host.FAMILIES)
    weights_set = options.weights_set or list(WEIGHTS)
    result = json.loads(out.read_text()) if out.exists() else {}
    result.setdefault("rows", {})
    result["machine"] = run.machine_info(options.device, host)
    for family in families:
        for weights in weights_set:
            key = row_key(family, weights)
            if options.peaks_only:  # a measured row's peaks again, its timings kept
                if key in result["rows"] and "error" not in result["rows"][key]:
                    run.progress(f"{key}: peaks")
                    settings = table_settings(run, family, weights, options.device, options.quick)
                    for k, peaks in measure_peaks(run, host, settings).items():
                        result["rows"][key][k].update(peaks)
                    out.write_text(json.dumps(run._json_safe(result), indent=1))
                continue
            if key in result["rows"] and "error" not in result["rows"][key] and not options.fresh:
                continue  # measured: the other rows keep theirs whatever is measured again
            settings = table_settings(run, family, weights, options.device, options.quick)
            run.progress(f"{key}: depth {settings.depth}+{settings.single}, {settings.sizes[0]}^2"
                         f"{f' x {settings.frames[0]} frames' if settings.frames else ''}")
            result["rows"][key] = measure_row(run, host, settings, clock)
            out.write_text(json.dumps(run._json_safe(result), indent=1))
    return result


def met(value, limit) -> str:
    return "" if value is None else ("" if value <= limit else "!")


def table_lines(result: dict) -> list[str]:
    """The table in Markdown: a row per family and weights; '!' marks a figure over its target. (The wall-time
    ratios stay in the JSON: on a shared machine they swing by more than the share they would show.)"""
    lines = ["| family | weights | share K=4 | share K=64 | peak K=64 | segment / full | depth, size |",
             "|---|---|---|---|---|---|---|"]

    def share(k: dict, limit: float) -> str:
        """The in-run share, and in brackets the share of a step (without the embedding done once per run) where
        they differ."""
        text = f"{k['attributed_ratio']:.3f}{met(k['attributed_ratio'], limit)}"
        step = k.get("step_ratio")
        if step is not None and f"{step:.3f}" != f"{k['attributed_ratio']:.3f}":
            text += f" ({step:.3f}{met(step, limit)})"
        return text

    for key, row in result["rows"].items():
        family, weights = key.split("/")
        label = bench_host.FAMILIES[family].label if family in bench_host.FAMILIES else family
        if row.get("attribution", 1) < ATTRIBUTION:
            label += " †"  # its share leaves out the concepts' rows that ride along in the text's products
        if "error" in row:
            lines.append(f"| {label} | {weights} | not measured: {row['error']} | | | | |")
            continue
        k4, k64, segment = row["k4"], row["k64"], row["segment"]
        shape = f"{row['size']}²" + (f" × {row['frames']} f" if row.get("frames") else "")
        lines.append(
            f"| {label} | {weights} | {share(k4, TARGETS[4])} | {share(k64, TARGETS[64])} | "
            f"{k64['peak_ratio']:.3f}{met(k64['peak_ratio'], MEMORY_TARGET)} | {segment['best_time_ratio']:.2f} | "
            f"{row['depth'][0]}+{row['depth'][1]}, {shape} |")
    return lines


def print_table(result: dict) -> None:
    machine = result.get("machine", {})
    print(f"\nEvery family ({machine.get('nproc')} cpus, torch {machine.get('torch')}, ComfyUI {machine.get('comfyui')}): "
          f"share = in-run attribution, targets K=4 <= {TARGETS[4]}, K=64 <= {TARGETS[64]}, peak <= {MEMORY_TARGET} "
          "('!' over)")
    for line in table_lines(result):
        print(line)


def write_readme(result: dict, readme: Path = README) -> None:
    """Replace the README's family table (between its markers) with the JSON's."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        raise SystemExit(f"bench: {readme} has no family table markers ({README_START!r} ... {README_END!r})")
    head, rest = text.split(README_START, 1)
    _, tail = rest.split(README_END, 1)
    readme.write_text(head + README_START + "\n" + "\n".join(table_lines(result)) + "\n" + README_END + tail)
