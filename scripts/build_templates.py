"""Regenerate workflows/*.json and their thumbnails from the templates' source, template_specs.mjs.

    CA_COMFYUI_DIR=<ComfyUI 0.8.0> <its python> scripts/build_templates.py [template ...]

Starts a ComfyUI server (the browser tier's, tests/browser/comfy_server.py) and runs build_templates.mjs in
chromium against it (scripts/browser_env.sh installs chromium and playwright-core).
The oldest host that has a template's nodes writes its files: 0.8.0 (Flux.2's) for every template that
runs there; the browser tier checks that every supported frontend reads them, 0.3.64's included. A
template that declares a newer host (`minHost`) is built there, by name:

    CA_COMFYUI_DIR=<ComfyUI 0.33.0> <its python> scripts/build_templates.py "CogVideoX - per-frame concept mask"

Without names, every template this host can load is built; named ones only those.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "browser"))
from comfy_server import REPO, WORKFLOW_DIR, ComfyServer, example_image, host_version, left_out  # noqa: E402

LIST_TEMPLATES = """
import { WORKFLOWS } from "./scripts/template_specs.mjs";
const models = Object.fromEntries(Object.entries(WORKFLOWS).map(([name, w]) => [name,
  Object.values(w.nodes).flatMap((n) => n.models ?? []).map((m) => [m.directory, m.name])]));
console.log(JSON.stringify(models));
"""


def main() -> None:
    comfy_dir = os.environ.get("CA_COMFYUI_DIR")
    if not comfy_dir:
        sys.exit("set CA_COMFYUI_DIR to a ComfyUI work tree (0.8.0, the oldest host with every template's nodes)")
    listed = subprocess.run(["node", "--input-type=module", "-e", LIST_TEMPLATES], cwd=REPO, check=True,
                            capture_output=True, text=True)
    models_by_template = json.loads(listed.stdout)
    host, too_new = host_version(comfy_dir), left_out(host_version(comfy_dir))
    names = sys.argv[1:] or [name for name in models_by_template if name not in too_new]
    unknown = [name for name in names if name not in models_by_template]
    if unknown:
        sys.exit(f"no template {', '.join(unknown)} in template_specs.mjs (it has {', '.join(models_by_template)})")
    for name in names:
        if name in too_new:
            sys.exit(f"{name} needs ComfyUI {too_new[name]} or newer (minHost); this host is {host}")
    for name, needed in too_new.items():
        if name not in names:
            print(f"not building {name}: it needs ComfyUI {needed} or newer; build it there by name")
    server = ComfyServer(comfy_dir)
    server.prepare(models={tuple(m) for name in names for m in models_by_template[name]},
                   input_image=example_image(comfy_dir, server.base))
    try:
        server.start()
        subprocess.run(["node", "scripts/build_templates.mjs", server.url, str(WORKFLOW_DIR), *names], cwd=REPO,
                       check=True)
    finally:
        server.stop()


if __name__ == "__main__":
    main()
