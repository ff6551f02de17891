"""Large images and large batches through Concept Mask and Saliency Map, as ComfyUI runs them.

    <python> bench/large_images.py [--quick] [--pack DIR] [--out bench/results-large-images.json]

Boots ComfyUI in-process (CA_COMFYUI_DIR) with this extension (or the copy in --pack, to compare another
version) on the CPU. Planted maps like Flux's, 16-pixel tokens: per image a concept's region and the others'
around it, softmax maps and their raw scores, and a picture of flat 64-pixel squares to refine against.

  a. 4096 x 4096 (65,536 tokens): one Concept Mask call with refine 'image edges', grow 8 and blur 4, for 2 and
     4 concepts; best of five runs, its preview saved as the node saves it. Peak: the process's resident-set
     high-water mark above what was resident before the call (bench_meter.measure), outputs included.
  b. Batches of 1, 8 and 64 images at 1024 x 1024, 3 concepts: Saliency Map (over the image) and Concept Mask
     (grow 4, blur 2), peak above the inputs, beside the outputs' own size.

Wall and CPU seconds both: on a shared machine the wall time of a call swings with what else runs.
"""

import argparse
import json
import os
import sys
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
sys.path.insert(0, str(REPO / "bench"))
import comfy_inprocess  # noqa: E402
from bench_meter import measure  # noqa: E402

TOKEN = 16
GIB = 1 << 30


def planted_maps(ca, images: int, concepts: int, tokens: int):
    names = [f"object {k}" for k in range(concepts - 1)] + ["background"]
    raw = torch.randn(images, concepts, tokens, tokens, generator=torch.Generator().manual_seed(0)) * 0.1
    for i in range(images):
        for k in range(concepts - 1):
            top, left = (i + 3 * k) % (tokens // 2), (2 * i + 5 * k) % (tokens // 2)
            raw[i, k, top:top + tokens // 3, left:left + tokens // 3] += 2.0
    raw[:, -1] += 1.0
    maps = raw.softmax(dim=1)
    return ca.ca_core.maps.ConceptMaps(names=names, maps=maps, cross_attention_maps=maps.clone(),
                                       image_size=(tokens * TOKEN,) * 2, token_pixels=TOKEN, raw_maps=raw,
                                       raw_cross_attention_maps=raw.clone())


def picture(images: int, size: int) -> torch.Tensor:
    squares = torch.rand(images, size // 64, size // 64, 3, generator=torch.Generator().manual_seed(1))
    return squares.repeat_interleave(64, dim=1).repeat_interleave(64, dim=2)


def concept_mask(ca, maps, image, grow: int, blur: float, refine: str):
    return ca.nodes.map_nodes.ConceptMask.execute(
        concept_maps=maps, concepts="object 0", method="argmax", threshold=0.5, grow=grow, blur=blur,
        fill_holes=False, invert=False, space="as_made", refine=refine, image=image)


def saliency(ca, maps, image):
    return ca.nodes.map_nodes.SaliencyMap.execute(concept_maps=maps, normalisation="joint", overlay_opacity=0.6,
                                                  space="as_made", image=image)


def four_k(ca, concepts: int) -> dict:
    maps, image = planted_maps(ca, 1, concepts, 4096 // TOKEN), picture(1, 4096)
    runs = [measure(lambda: concept_mask(ca, maps, image, 8, 4.0, "image edges"), "cpu") for _ in range(5)]
    best = min(runs, key=lambda run: run.seconds)
    peak = max(run.rss_peak_bytes for run in runs)
    count = runs[0].value.args[2]
    del runs
    return {"concepts": concepts, "seconds": round(best.seconds, 3), "cpu_seconds": round(best.cpu_seconds, 3),
            "peak_gib": round(peak / GIB, 3), "objects": count}


def batch(ca, images: int) -> dict:
    maps, image = planted_maps(ca, images, 3, 1024 // TOKEN), picture(images, 1024)
    out = {"images": images}
    for name, call in (("saliency_map", lambda: saliency(ca, maps, image)),
                       ("concept_mask", lambda: concept_mask(ca, maps, image, 4, 2.0, "none"))):
        run = measure(call, "cpu")
        outputs = sum(value.numel() * value.element_size() for value in run.value.args if torch.is_tensor(value))
        out[name] = {"seconds": round(run.seconds, 3), "cpu_seconds": round(run.cpu_seconds, 3),
                     "peak_gib": round(run.rss_peak_bytes / GIB, 3),
                     "outputs_gib": round(outputs / GIB, 3)}
        del run
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="2 concepts at 4096, batches of 1 and 8")
    parser.add_argument("--pack", type=Path, default=REPO, help="the extension's copy to measure")
    parser.add_argument("--out", type=Path, default=REPO / "bench" / "results-large-images.json")
    options = parser.parse_args()
    torch.set_num_threads(2)
    ca = comfy_inprocess.boot(quiet=True, pack_dir=options.pack.resolve())
    import cv2

    cv2.setNumThreads(2)
    results = {"pack": str(options.pack), "torch_threads": torch.get_num_threads(), "cpus": os.cpu_count(),
               "four_k": [], "batches": []}
    print("Concept Mask at 4096x4096, refine 'image edges' + grow 8 + blur 4 (2 torch / opencv threads)")
    for concepts in (2,) if options.quick else (2, 4):
        row = four_k(ca, concepts)
        results["four_k"].append(row)
        print(f"  {concepts} concepts: {row['seconds']:.2f} s ({row['cpu_seconds']:.2f} s CPU), peak "
              f"+{row['peak_gib']:.2f} GiB, {row['objects']} object(s)", flush=True)
    print("Batches at 1024x1024, 3 concepts: peak resident memory above the inputs (outputs' own size)")
    for images in (1, 8) if options.quick else (1, 8, 64):
        row = batch(ca, images)
        results["batches"].append(row)
        print(f"  {images:>2} images: " + "; ".join(
            f"{name} {row[name]['seconds']:.2f} s ({row[name]['cpu_seconds']:.2f} s CPU), peak "
            f"+{row[name]['peak_gib']:.2f} GiB "
            f"(outputs {row[name]['outputs_gib']:.2f} GiB)" for name in ("saliency_map", "concept_mask")),
            flush=True)
    options.out.write_text(json.dumps(results, indent=1) + "\n")
    print(f"-> {options.out}")


if __name__ == "__main__":
    main()
