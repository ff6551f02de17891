"""Masks as sharp as the image: Concept Mask's masks with and without the image-guided refinement, measured on
the demo model's held-out scenes at full resolution (256x256) against their true masks.

    <python> research/refine_masks.py [--scenes 200] [--skip-scenes 0] [--out research/refine_masks.json]

Each scene is segmented with Segment Image (its shape words and "background", noise 0.5, layers auto); each
object's mask comes from the argmax over the concepts, and, for the one-concept cut, from its shape word alone
(raw scores cut at half their range, what Concept Mask does with one concept). Each mask is made from the maps
as they are (upsampled bilinearly from the 16-px token grid) and from the maps refined with the image as guide
(ca_core.refine.edge_aware_maps). Printed, per way of masking: the mean IoU with the true mask, and the mean
boundary F-score at a 2-pixel tolerance (the boundary pixels of each mask that lie within 2 px of the other's
boundary, as precision and recall).
"""

import argparse
import importlib
import json
import time
from pathlib import Path

import numpy as np
import torch
from demo_segmenter import demo_segmenter

from research import shapes  # noqa: E402
from research.evaluation import BOUNDARY_TOLERANCE, boundary_f, iou, segmentation_caption  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=200)
    parser.add_argument("--skip-scenes", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path(__file__).resolve().parent / "refine_masks.json")
    args = parser.parse_args()
    host, _, segment = demo_segmenter()
    concept_mask = importlib.import_module(f"{host.pack.__name__}.nodes.map_nodes").ConceptMask.execute
    scores: dict[str, dict[str, list[float]]] = {}

    def mask(maps, word: str, method: str, refine: str, image) -> np.ndarray:
        """Concept Mask's own mask, as the node makes it (presence, one-concept cut and all)."""
        out = concept_mask(concept_maps=maps, concepts=word, method=method, threshold=0.5, grow=0, blur=0.0,
                           fill_holes=False, invert=False, space="as_made", refine=refine, image=image)
        return out.args[0][0].numpy() > 0.5

    def score(way: str, predicted: np.ndarray, truth: np.ndarray) -> None:
        entry = scores.setdefault(way, {"iou": [], "boundary_f": []})
        entry["iou"].append(iou(predicted, truth))
        entry["boundary_f"].append(boundary_f(predicted, truth))

    started = time.monotonic()
    for seed in shapes.held_out_seeds(args.scenes, args.skip_scenes):
        scene = shapes.make_scene(seed)
        words = [obj.shape for obj in scene.objects]
        image = torch.from_numpy(scene.image)[None]
        caption = segmentation_caption(words)
        maps = segment(image, [*words, "background"], caption)
        for word in words:
            truth = scene.masks[word]
            alone = segment(image, [word], caption)
            for refine in ("none", "image edges"):
                score(f"argmax, {refine}", mask(maps, word, "argmax", refine, image), truth)
                score(f"one concept, {refine}", mask(alone, word, "argmax", refine, image), truth)
    summary = {way: {name: round(float(np.mean(values)), 4) for name, values in entry.items()} | {
        "objects": len(entry["iou"])} for way, entry in scores.items()}
    print(f"{args.scenes} held-out scenes from {args.skip_scenes}, {time.monotonic() - started:.0f} s")
    print(f"{'masks':28s} {'IoU':>7s} {'boundary F (2 px)':>18s}")
    for way, entry in summary.items():
        print(f"{way:28s} {entry['iou']:7.3f} {entry['boundary_f']:18.3f}")
    args.out.write_text(json.dumps({"scenes": args.scenes, "skip_scenes": args.skip_scenes,
                                    "tolerance_px": BOUNDARY_TOLERANCE, "masks": summary}, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
