"""Browser tier: ComfyUI as a real server, its real frontend in Debian's chromium (playwright-core).

scripts/test.sh points CA_COMFYUI_DIR at a ComfyUI work tree (see scripts/host_env.sh) and runs
this with that host's Python; scripts/browser_env.sh installs chromium and playwright-core. Without
any of them these tests skip, and say so loudly.
"""

import os
import shutil
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
    from comfy_server import (
        SAVED,
        ComfyServer,
        example_image,
        host_version,
        left_out,
        models_named,
        run_browser_script,
        saved_workflow_files,
        workflow_files,
    )

    HOST = host_version(os.environ["CA_COMFYUI_DIR"])
    ARTIFACTS = REPO / "test-artifacts" / "browser" / HOST
    LEFT_OUT = left_out(HOST)  # the templates this host is too old for: name -> the ComfyUI they need
    _lacks: dict[str, list[str]] = {}  # what the frontend lacks for each of them, once the browser ran

    def _artifacts() -> Path:
        shutil.rmtree(ARTIFACTS, ignore_errors=True)
        ARTIFACTS.mkdir(parents=True)
        return ARTIFACTS

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
        """What the frontend showed: every workflow loaded, the demo run with the Run button.

        Templates that declare a newer ComfyUI than this host (`minHost` in scripts/template_specs.mjs) are not
        loaded; the report says instead what this frontend lacks for them (leftOut).
        """
        files = workflow_files()
        config = {
            "url": server.url + "/",
            "workflows": {**{name: str(path) for name, path in files.items() if name not in LEFT_OUT},
                          **{f"{SAVED}{name}": str(path) for name, path in saved_workflow_files().items()}},
            "leftOut": {name: str(path) for name, path in files.items() if name in LEFT_OUT},
            "runnable": "Demo on any CPU - concept maps and a mask",
            "artifacts": str(artifacts),
            "report": str(artifacts / "report.json"),
        }
        report = run_browser_script("check.mjs", config, artifacts, "check")
        _lacks.update({name: entry["lacks"] for name, entry in report["leftOut"].items()})
        return report

    def pytest_terminal_summary(terminalreporter):
        """Say which templates this host is too old for, and what it lacks for them (never silently)."""
        if not LEFT_OUT:
            return
        terminalreporter.write_sep("-", f"templates left out on ComfyUI {HOST}, too old for them")
        for name, needed in sorted(LEFT_OUT.items()):
            found = _lacks.get(name)
            detail = f"; this host lacks {', '.join(found)}" if found else ""
            terminalreporter.write_line(f"{name}: needs ComfyUI {needed} or newer (minHost){detail}")
