"""Regenerate workflows/*.json and their thumbnails from workflow_specs.mjs.

    CA_COMFYUI_DIR=<ComfyUI 0.8.0> <its python> tests/browser/build_workflows.py

Starts a ComfyUI server (see comfy_server.py) and runs build_workflows.mjs in chromium against it.
The oldest host that has every template's nodes writes the files (0.8.0, for Flux.2's); the browser
tier checks that every supported frontend reads them, 0.3.64's included.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from comfy_server import REPO, WORKFLOW_DIR, ComfyServer, example_image  # noqa: E402

LIST_MODELS = """
import { WORKFLOWS } from "./tests/browser/workflow_specs.mjs";
const models = Object.values(WORKFLOWS).flatMap((w) => Object.values(w.nodes))
  .flatMap((n) => n.models ?? []).map((m) => [m.directory, m.name]);
console.log(JSON.stringify(models));
"""


def main() -> None:
    comfy_dir = os.environ.get("CA_COMFYUI_DIR")
    if not comfy_dir:
        sys.exit("set CA_COMFYUI_DIR to a ComfyUI work tree (0.8.0, the oldest host with every template's nodes)")
    listed = subprocess.run(["node", "--input-type=module", "-e", LIST_MODELS], cwd=REPO, check=True,
                            capture_output=True, text=True)
    server = ComfyServer(comfy_dir)
    server.prepare(models={tuple(m) for m in json.loads(listed.stdout)},
                   input_image=example_image(comfy_dir, server.base))
    try:
        server.start()
        subprocess.run(["node", "tests/browser/build_workflows.mjs", server.url, str(WORKFLOW_DIR)], cwd=REPO, check=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
