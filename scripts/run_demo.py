"""The main job: run the demo workflow headless through ComfyUI's own executor.

    scripts/demo.sh [--out demo-output] [--prompt "..."] [--concepts "..."] [--seed N] [--verbose]

Writes the generated image, one heatmap per concept, the circle's mask, the recoloured image and
a contact sheet of all of them to the output folder.
"""

import argparse
import json
import shutil
from pathlib import Path

import comfy_inprocess
from PIL import Image, ImageDraw

WORKFLOW = comfy_inprocess.REPO / "workflows" / "api" / "demo_shapes.json"


def contact_sheet(files: list[tuple[str, Path]], out: Path) -> None:
    tiles = [(label, Image.open(path).convert("RGB")) for label, path in files]
    size = max(image.width for _, image in tiles)
    sheet = Image.new("RGB", (size * len(tiles), size + 24), "white")
    draw = ImageDraw.Draw(sheet)
    for i, (label, image) in enumerate(tiles):
        sheet.paste(image, (i * size, 0))
        draw.text((i * size + 4, size + 6), label, fill="black")
    sheet.save(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("demo-output"))
    parser.add_argument("--prompt", default=None)
    parser.add_argument("--concepts", default=None)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--verbose", action="store_true", help="print every warning ComfyUI logs while booting")
    args = parser.parse_args()

    comfy_inprocess.boot(quiet=not args.verbose)
    import folder_paths

    prompt = json.loads(WORKFLOW.read_text())
    if args.prompt is not None:
        prompt["2"]["inputs"]["text"] = args.prompt
    if args.concepts is not None:
        prompt["5"]["inputs"]["concepts"] = args.concepts
    if args.seed is not None:
        prompt["5"]["inputs"]["seed"] = args.seed
    result = comfy_inprocess.run_prompt(prompt)
    if not result["valid"] or not result["success"]:
        raise SystemExit(f"the demo workflow failed: {result.get('error') or result['errors']}")

    args.out.mkdir(parents=True, exist_ok=True)
    concepts = [c.strip() for c in prompt["5"]["inputs"]["concepts"].split(",")]
    labels = {"12": ["image"], "13": [f"heatmap: {c}" for c in concepts], "14": ["mask: circle"],
              "15": ["recoloured"]}
    saved = []
    for node_id, names in labels.items():
        for label, image in zip(names, result["outputs"][node_id]["images"], strict=True):
            source = Path(folder_paths.get_output_directory()) / image["subfolder"] / image["filename"]
            target = args.out / (label.replace(": ", "_").replace(" ", "_") + ".png")
            shutil.copyfile(source, target)
            saved.append((label, target))
    contact_sheet(saved, args.out / "contact_sheet.png")
    print(f"wrote {len(saved)} images and contact_sheet.png to {args.out}/")


if __name__ == "__main__":
    main()
