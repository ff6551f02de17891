"""How one concept gets a mask: the candidates measured on the demo model's held-out scenes.

    <python> research/single_concept.py [--scenes 300] [--skip-scenes 200]

A softmax over one concept is 1 everywhere, so the paper's maps and argmax mask say nothing when a
user types a single concept. For each object of each held-out scene (past the semantic test's first
200 by default), its shape word alone is segmented with Segment Image (noise 0.5, layers auto) and
masked with Concept Mask; printed: the IoU of each candidate's mask with the object's true mask.
  softmax argmax: the paper's softmax and argmax, as before single concepts were handled (the whole image);
  raw, cut at half range: raw scores (softmax off), cut at half their per-image range (what ships);
  raw, Otsu / raw, above mean: the same raw map, Otsu's threshold / the paper's mean threshold;
  + background, argmax: softmax against an implicit "background" concept, argmax.
"""

import argparse
import time

import numpy as np
import torch
from demo_segmenter import demo_segmenter

from research import shapes  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenes", type=int, default=300)
    parser.add_argument("--skip-scenes", type=int, default=200)
    args = parser.parse_args()
    host, masks, segment = demo_segmenter()

    def cut(maps, method: str) -> np.ndarray:
        return masks.concept_mask(maps.pixel_maps(), [0], method=method)[0].numpy() > 0.5

    def candidates(word: str, image, caption: str) -> dict[str, np.ndarray]:
        raw = segment(image, [word], caption, softmax=False)
        return {
            # a softmax over one concept is 1 everywhere, so its argmax wins every pixel
            "softmax argmax": np.ones(image.shape[1:3], dtype=bool),
            "raw, cut at half range": cut(raw, "threshold"),
            "raw, Otsu": cut(raw, "otsu"),
            "raw, above mean": cut(raw, "mean_threshold"),
            "+ background, argmax": cut(segment(image, [word, "background"], caption, softmax=True), "argmax"),
        }

    ious: dict[str, list[float]] = {}
    start = time.time()
    with torch.inference_mode():
        for seed in shapes.held_out_seeds(args.scenes, skip=args.skip_scenes):
            scene = shapes.make_scene(seed)
            image = torch.from_numpy(scene.image).float()[None]
            for thing in scene.objects:
                truth = thing.mask.astype(bool)
                for name, ours in candidates(thing.shape, image, scene.caption).items():
                    ious.setdefault(name, []).append((ours & truth).sum() / max((ours | truth).sum(), 1))
    objects = len(ious["raw, Otsu"])
    print(f"ComfyUI {host.comfyui_version}; {args.scenes} held-out scenes after the first {args.skip_scenes}, "
          f"{objects} objects, {time.time() - start:.0f} s")
    print(f"{'one concept, mask':>24} {'mean IoU':>9} {'median':>7} {'IoU > 0.5':>10}")
    for name, values in ious.items():
        values = np.array(values)
        print(f"{name:>24} {values.mean():>9.3f} {np.median(values):>7.3f} {(values > 0.5).mean():>10.0%}")


if __name__ == "__main__":
    main()
