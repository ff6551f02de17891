"""Browser tier: ComfyUI as a real server, its real frontend in Debian's chromium (playwright-core).

scripts/test.sh points CA_COMFYUI_DIR at a ComfyUI work tree (see scripts/host_env.sh) and runs
this with that host's Python; scripts/browser_env.sh installs chromium and playwright-core. Without
any of them these tests skip, and say so loudly.
"""

import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
REPO = HERE.parents[1]
CHROMIUM = os.environ.get("CA_CHROMIUM", "/usr/bin/chromium")


def _missing() -> str | None:
    if not os.environ.get("CA_COMFYUI_DIR"):
        return "no ComfyUI host (set CA_COMFYUI_DIR, or run scripts/test.sh, which prepares one)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        return f"no chromium at {CHROMIUM} (run scripts/browser_env.sh, or set CA_CHROMIUM)"
    if not shutil.which("node"):
        return "no node on PATH (run scripts/browser_env.sh)"
    if not (REPO / "node_modules" / "playwright-core").is_dir():
        return "no node_modules/playwright-core (run scripts/browser_env.sh)"
    return None


missing = _missing()
if missing:
    message = f"BROWSER TESTS SKIPPED: {missing}"
    warnings.warn(message, stacklevel=1)
    print(f"\n*** {message} ***\n", file=sys.stderr)
    collect_ignore_glob = ["test_*.py"]
else:
    sys.path.insert(0, str(HERE))
    from comfy_server import ComfyServer, example_image, models_named, workflow_files

    def _artifacts() -> Path:
        version = Path(os.environ["CA_COMFYUI_DIR"]).resolve().name
        version_file = Path(os.environ["CA_COMFYUI_DIR"]) / "comfyui_version.py"
        if version_file.is_file():
            version = version_file.read_text().split('"')[1]
        path = REPO / "test-artifacts" / "browser" / version
        shutil.rmtree(path, ignore_errors=True)
        path.mkdir(parents=True)
        return path

    @pytest.fixture(scope="session")
    def artifacts() -> Path:
        return _artifacts()

    @pytest.fixture(scope="session")
    def server(artifacts):
        comfy_dir = os.environ["CA_COMFYUI_DIR"]
        server = ComfyServer(comfy_dir, log_path=artifacts / "server.log")
        server.prepare(models=models_named(workflow_files().values()),
                       input_image=example_image(comfy_dir, server.base))
        try:
            server.start()
            yield server
        finally:
            server.stop()

    @pytest.fixture(scope="session")
    def browser(server, artifacts) -> dict:
        """What the frontend showed: every workflow loaded, the demo run with the Run button."""
        config = {
            "url": server.url + "/",
            "workflows": {name: str(path) for name, path in workflow_files().items()},
            "runnable": "demo_shapes",
            "artifacts": str(artifacts),
            "report": str(artifacts / "report.json"),
        }
        config_path = artifacts / "config.json"
        config_path.write_text(json.dumps(config, indent=2))
        result = subprocess.run(["node", str(HERE / "check.mjs"), str(config_path)], cwd=REPO,
                                capture_output=True, text=True, timeout=300)
        (artifacts / "browser.log").write_text(result.stdout + result.stderr)
        if result.returncode != 0 or not (artifacts / "report.json").is_file():
            pytest.fail(f"the browser run failed ({result.returncode}):\n{result.stderr[-4000:]}")
        return json.loads((artifacts / "report.json").read_text())
