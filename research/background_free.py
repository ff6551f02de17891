"""Masks when the concepts name only the objects: the candidates measured on the demo model's held-out scenes.

    <python> research/background_free.py [--scenes 100] [--skip-scenes 0]

Users type the things they want ("circle, square"), not "background". A softmax over those concepts alone gives
every background pixel to whichever of them wins there, so a plain argmax mask spills over the background. For
each held-out scene, its shapes are segmented with Segment Image (noise 0.5, layers auto) with and without
"background" among the concepts, and each object's Concept Mask is compared with its true mask. Printed per
candidate: mean IoU over the objects, and how often a mask spills (covers more background than the object's
own area).
  with background, argmax: the templates' habit, the reference;
  argmax / otsu / threshold: Concept Mask's methods on the objects-only maps;
  ... + present: kept only where the concept's raw map is at or above half its range (masks.concept_presence);
  present alone: that cut by itself (what one concept's mask uses).
"""

import argparse
import time

import numpy as np
import torch
from demo_segmenter import demo_segmenter

from research import evaluation, shapes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=100)
    parser.add_argument("--skip-scenes", type=int, default=0)
    args = parser.parse_args()
    host, masks, segment = demo_segmenter()

    def candidates(index: int, with_background, objects_only) -> dict[str, np.ndarray]:
        maps, raw = objects_only.pixel_maps(), objects_only.pixel_maps(raw=True)
        present = masks.concept_presence(raw)

        def mask(method, present_only=False, source=maps):
            return masks.concept_mask(source, [index], method=method,
                                      present=present if present_only else None)[0].numpy() > 0.5

        found = {"with background, argmax": mask("argmax", source=with_background.pixel_maps())}
        found["with background, + present"] = masks.concept_mask(
            with_background.pixel_maps(), [index], method="argmax",
            present=masks.concept_presence(with_background.pixel_maps(raw=True)))[0].numpy() > 0.5
        for method in ("argmax", "otsu", "threshold"):
            found[method] = mask(method)
            found[f"{method} + present"] = mask(method, present_only=True)
        found["present alone"] = present[0, index].numpy()
        return found

    ious: dict[str, list[float]] = {}
    spills: dict[str, list[bool]] = {}
    start = time.time()
    with torch.inference_mode():
        for seed in shapes.held_out_seeds(args.scenes, skip=args.skip_scenes):
            scene = shapes.make_scene(seed)
            image = torch.from_numpy(scene.image).float()[None]
            objects = [thing.shape for thing in scene.objects]
            caption = evaluation.segmentation_caption(objects)
            with_background = segment(image, objects + [evaluation.BACKGROUND], caption)
            objects_only = segment(image, objects, caption)
            for index, thing in enumerate(scene.objects):
                truth = thing.mask.astype(bool)
                for name, ours in candidates(index, with_background, objects_only).items():
                    ious.setdefault(name, []).append((ours & truth).sum() / max((ours | truth).sum(), 1))
                    spills.setdefault(name, []).append((ours & ~truth).sum() > truth.sum())
    objects = len(ious["argmax"])
    print(f"ComfyUI {host.comfyui_version}; {args.scenes} held-out scenes after the first {args.skip_scenes}, "
          f"{objects} objects, {time.time() - start:.0f} s")
    print(f"{'objects-only concepts, mask':>28} {'mean IoU':>9} {'median':>7} {'spills':>7}")
    for name, values in ious.items():
        values = np.array(values)
        print(f"{name:>28} {values.mean():>9.3f} {np.median(values):>7.3f} {np.mean(spills[name]):>7.0%}")


if __name__ == "__main__":
    main()
