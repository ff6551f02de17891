"""The demo: run the demo model's nodes headless through ComfyUI's own executor.

    scripts/demo.sh [--out demo-output] [--prompt "..."] [--concepts "..."] [--seed N] [--scenes N]
                    [--pack DIR] [--verbose]

First it generates: the image, one heatmap per concept, the circle's mask, the recoloured image and
a contact sheet of all of them. Then it segments the first held-out scenes of the demo model's
shapes dataset (never trained on) with Segment Image and Concept Mask, writes each shape's mask
beside its ground truth, and prints their IoU.
"""

import argparse
import json
import shutil
import sys
from pathlib import Path

import comfy_inprocess
import numpy as np
from PIL import Image, ImageDraw

WORKFLOW = comfy_inprocess.REPO / "workflows" / "api" / "demo_shapes.json"
LABEL_HEIGHT = 24


def contact_sheet(tiles: list[tuple[str, Image.Image]], out: Path) -> None:
    """The tiles side by side, each with its label underneath."""
    size = max(image.width for _, image in tiles)
    sheet = Image.new("RGB", (size * len(tiles), size + LABEL_HEIGHT), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, image) in enumerate(tiles):
        sheet.paste(image.convert("RGB"), (i * size, 0))
        draw.text((i * size + 4, size + 6), label, fill="black")
    sheet.save(out)


def output_file(image: dict) -> Path:
    """Where ComfyUI wrote one of a node's output or preview images."""
    import folder_paths

    folder = folder_paths.get_temp_directory() if image["type"] == "temp" else folder_paths.get_output_directory()
    return Path(folder) / image["subfolder"] / image["filename"]


def generate(args: argparse.Namespace, executor) -> None:
    prompt = json.loads(WORKFLOW.read_text())
    if args.prompt is not None:
        prompt["2"]["inputs"]["text"] = args.prompt
    if args.concepts is not None:
        prompt["5"]["inputs"]["concepts"] = args.concepts
    if args.seed is not None:
        prompt["5"]["inputs"]["seed"] = args.seed
    result = comfy_inprocess.run_prompt(prompt, executor)
    if not result["valid"] or not result["success"]:
        raise SystemExit(f"the demo workflow failed: {result.get('error') or result['errors']}")

    concepts = [c.strip() for c in prompt["5"]["inputs"]["concepts"].split(",")]
    labels = {"12": ["image"], "13": [f"heatmap: {c}" for c in concepts], "14": ["mask: circle"],
              "15": ["recoloured"]}
    saved = []
    for node_id, names in labels.items():
        for label, image in zip(names, result["outputs"][node_id]["images"], strict=True):
            target = args.out / (label.replace(": ", "_").replace(" ", "_") + ".png")
            shutil.copyfile(output_file(image), target)
            saved.append((label, Image.open(target)))
    contact_sheet(saved, args.out / "contact_sheet.png")
    print(f"wrote {len(saved)} images and contact_sheet.png to {args.out}/")


def segmentation_prompt(image_file: str, shapes: list[str], caption: str) -> dict:
    """Load Demo Model -> Load Image -> Segment Image (the shapes and background) -> one Concept Mask per shape."""
    prompt = {
        "1": {"class_type": "ConceptAttentionLoadDemoModel", "inputs": {}},
        "2": {"class_type": "LoadImage", "inputs": {"image": image_file}},
        "3": {"class_type": "ConceptAttentionSegmentImage",
              "inputs": {"model": ["1", 0], "clip": ["1", 1], "vae": ["1", 2], "image": ["2", 0],
                         "concepts": ", ".join([*shapes, "background"]), "layers": "auto", "space": "output",
                         "softmax": True, "token_pooling": "first", "noise_level": 0.5, "noise_samples": 1,
                         "seed": 0, "caption": caption}},
    }
    for shape in shapes:
        prompt[f"mask {shape}"] = {
            "class_type": "ConceptAttentionMask",
            "inputs": {"concept_maps": ["3", 0], "concepts": shape, "method": "argmax", "threshold": 0.5,
                       "grow": 0, "blur": 0.0, "fill_holes": False, "invert": False, "space": "as_made"}}
    return prompt


def iou(predicted: np.ndarray, truth: np.ndarray) -> float:
    return float(np.logical_and(predicted, truth).sum() / np.logical_or(predicted, truth).sum())


def segment_held_out_scenes(args: argparse.Namespace, executor) -> None:
    """Segment the first held-out scenes (no choosing among them) and compare each shape's mask with the truth."""
    import folder_paths

    # the shapes dataset is research code, not part of the pack; found from the repository root, last,
    # so ComfyUI's own top-level modules come first
    sys.path.append(str(comfy_inprocess.REPO))
    from research.evaluation import segmentation_caption
    from research.shapes import held_out_seeds, make_scene

    scores = []
    for number, seed in enumerate(held_out_seeds(args.scenes), start=1):
        scene = make_scene(seed)
        shapes = [obj.shape for obj in scene.objects]
        image = Image.fromarray((scene.image * 255).round().astype(np.uint8))
        image_file = f"held_out_scene_{number}.png"
        image.save(Path(folder_paths.get_input_directory()) / image_file)
        result = comfy_inprocess.run_prompt(segmentation_prompt(image_file, shapes, segmentation_caption(shapes)),
                                            executor)
        if not result["valid"] or not result["success"]:
            raise SystemExit(f"segmenting held-out scene {number} failed: {result.get('error') or result['errors']}")
        tiles = [(f"held-out scene {number}", image)]
        found = []
        for shape in shapes:
            (preview,) = result["outputs"][f"mask {shape}"]["images"]
            mask = np.asarray(Image.open(output_file(preview)).convert("L")) > 127
            truth = scene.masks[shape]
            found.append((shape, iou(mask, truth)))
            tiles += [(f"truth: {shape}", Image.fromarray(truth)),
                      (f"mask: {shape}, IoU {found[-1][1]:.2f}", Image.fromarray(mask))]
        contact_sheet(tiles, args.out / f"segmentation_scene_{number}.png")
        scores += [score for _, score in found]
        print(f"held-out scene {number} ({scene.caption}): "
              + ", ".join(f"{shape} IoU {score:.2f}" for shape, score in found))
    print(f"wrote segmentation_scene_1..{args.scenes}.png to {args.out}/; the shapes' masks against their "
          f"ground truth over {args.scenes} held-out scenes: mean IoU {np.mean(scores):.2f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--prompt", default=None)
    parser.add_argument("--concepts", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--scenes", type=int, default=6, help="held-out scenes to segment (0 skips them)")
    parser.add_argument("--pack", type=Path, default=comfy_inprocess.REPO,
                        help="load the node pack from this folder (default: this repository), e.g. a copy of "
                             "the registry package (scripts/registry_package.py --copy-to DIR)")
    parser.add_argument("--verbose", action="store_true", help="print every warning ComfyUI logs while booting")
    args = parser.parse_args()
    if args.scenes < 0:
        parser.error("--scenes must be 0 or more")

    comfy_inprocess.boot(quiet=not args.verbose, pack_dir=args.pack.resolve())
    args.out.mkdir(parents=True, exist_ok=True)
    executor = comfy_inprocess.make_executor()  # one executor: the demo model loads once, from its cache
    generate(args, executor)
    if args.scenes:
        segment_held_out_scenes(args, executor)


if __name__ == "__main__":
    main()
