"""A real ComfyUI server for the browser tier and the template builder (scripts/build_templates.py), writing
nothing into the host or the repository.

Everything ComfyUI reads or writes lives in a temporary --base-directory: custom_nodes (a link to
this repository, named as users install it, plus the test-only gate node), models (empty
placeholder files under the names the workflows use, so validation sees them; nothing may load
them), input, output, temp and user (settings that skip first-run popups). The database is in
memory.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKFLOW_DIR = REPO / "workflows"
PACK_NAME = "comfyui-concept-attention"
GATE_NODES = Path(__file__).resolve().parent / "gate_node"
_LOCAL = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through an HTTP proxy

SETTINGS = {
    "Comfy.TutorialCompleted": True,  # else a fresh profile opens the template browser
    "Comfy.Notification.ShowVersionUpdates": False,
    "Comfy.Minimap.Visible": False,
    "LiteGraph.Canvas.MinFontSizeForLOD": 0,  # readable screenshots of whole workflows
}


def workflow_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(WORKFLOW_DIR.glob("*.json"))}


# Workflows as earlier releases of the pack saved them, which must load into today's nodes unchanged; the browser
# run loads them beside the templates, named with this prefix.
SAVED_WORKFLOW_DIR = Path(__file__).resolve().parent / "saved_workflows"
SAVED = "saved: "


def saved_workflow_files() -> dict[str, Path]:
    return {path.stem: path for path in sorted(SAVED_WORKFLOW_DIR.glob("*.json"))}


def host_version(comfy_dir: str | Path) -> str:
    """The ComfyUI version of a work tree, from its comfyui_version.py (else the folder's name)."""
    version_file = Path(comfy_dir) / "comfyui_version.py"
    if version_file.is_file():
        return version_file.read_text().split('"')[1]
    return Path(comfy_dir).resolve().name


def version_key(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split("."))


_MIN_HOSTS = """
import { WORKFLOWS } from "./scripts/template_specs.mjs";
const declared = Object.entries(WORKFLOWS).filter(([, w]) => w.minHost).map(([name, w]) => [name, w.minHost]);
console.log(JSON.stringify(Object.fromEntries(declared)));
"""


@functools.cache
def min_hosts() -> dict[str, str]:
    """The oldest ComfyUI each template declares it needs (`minHost` in scripts/template_specs.mjs), by name."""
    listed = subprocess.run(["node", "--input-type=module", "-e", _MIN_HOSTS], cwd=REPO, check=True,
                            capture_output=True, text=True)
    declared = json.loads(listed.stdout)
    for name, version in declared.items():
        try:
            version_key(version)
        except (AttributeError, ValueError):
            raise ValueError(f"template_specs.mjs: {name}.minHost {version!r} is not a version such as 0.8.0") from None
    return declared


def left_out(host: str) -> dict[str, str]:
    """The templates this host is too old for: name -> the oldest ComfyUI they declare they need."""
    return {name: needed for name, needed in min_hosts().items() if version_key(host) < version_key(needed)}


def models_named(workflows) -> set[tuple[str, str]]:
    """(folder, file name) of every model the workflows' loaders declare in properties.models."""
    named = set()
    for path in workflows:
        for node in json.loads(Path(path).read_text())["nodes"]:
            for model in node.get("properties", {}).get("models", []):
                named.add((model["directory"], model["name"]))
    return named


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ComfyServer:
    def __init__(self, comfy_dir: str | Path, python: str = sys.executable, log_path: Path | None = None):
        self.comfy_dir = Path(comfy_dir)
        self.python = python
        self.base = Path(tempfile.mkdtemp(prefix="ca-browser-"))
        self.log_path = log_path or self.base / "server.log"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen | None = None
        self._log = None

    def prepare(self, models=(), input_image: Path | None = None) -> None:
        custom = self.base / "custom_nodes"
        custom.mkdir()
        (custom / PACK_NAME).symlink_to(REPO)
        (custom / "ca_browser_gate").symlink_to(GATE_NODES)
        for folder, name in models:
            path = self.base / "models" / folder / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.touch()
        (self.base / "input").mkdir()
        if input_image is not None:
            shutil.copy(input_image, self.base / "input" / input_image.name)
        user = self.base / "user" / "default"
        user.mkdir(parents=True)
        (user / "comfy.settings.json").write_text(json.dumps(SETTINGS))

    def start(self, timeout: float = 180) -> None:
        command = [
            self.python, "main.py", "--cpu", "--listen", "127.0.0.1", "--port", str(self.port),
            "--base-directory", str(self.base), "--database-url", "sqlite:///:memory:",
            "--disable-auto-launch", "--disable-api-nodes", "--preview-method", "none",
        ]
        env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1", "PYTHONUNBUFFERED": "1"}
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = open(self.log_path, "w")  # the server writes to it until stop()
        self.process = subprocess.Popen(command, cwd=self.comfy_dir, stdout=self._log, stderr=subprocess.STDOUT,
                                        env=env)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"ComfyUI exited with {self.process.returncode}; see {self.log_path}")
            try:
                self.get("/api/system_stats", timeout=2)
                return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                time.sleep(0.5)
        raise RuntimeError(f"ComfyUI did not answer within {timeout}s; see {self.log_path}")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self._log:
            self._log.close()
        shutil.rmtree(self.base, ignore_errors=True)

    def request(self, path: str, data=None, timeout: float = 30) -> tuple[int, dict | list | bytes, str]:
        """(status, body, content type); JSON bodies are decoded. Errors are returned, not raised."""
        body = None if data is None else json.dumps(data).encode()
        headers = {"Content-Type": "application/json"} if body is not None else {}
        request = urllib.request.Request(self.url + path, data=body, headers=headers)
        try:
            with _LOCAL.open(request, timeout=timeout) as response:
                status, raw, kind = response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            status, raw, kind = error.code, error.read(), error.headers.get("Content-Type", "")
        return status, (json.loads(raw) if "json" in kind else raw), kind

    def validate_without_running(self, prompts: dict[str, dict], work: Path, client_id: str) -> dict:
        """POST /prompt each of `prompts` while the gate node (tests/browser/gate_node) holds the worker.

        /prompt validates in the request itself; the accepted prompts are deleted from the queue before the
        gate opens, so none runs and no placeholder model file is ever opened. Returns each prompt's
        (status, body) as `responses`, the ids it `queued`, and the queue left after the delete.
        """
        release, started = work / "release", work / "started"
        gate = {"1": {"class_type": "CABrowserTestGate",
                      "inputs": {"release_file": str(release), "started_file": str(started), "timeout": 120.0}}}
        status, body, _ = self.request("/prompt", {"prompt": gate, "client_id": client_id})
        if status != 200:
            raise RuntimeError(f"the gate node was refused: {body}")
        gate_id = body["prompt_id"]
        responses, queued = {}, []
        try:
            wait_for(started.exists, what="the gate node to hold the worker")
            for name, prompt in prompts.items():
                status, body, _ = self.request("/prompt", {"prompt": prompt, "client_id": client_id})
                responses[name] = (status, body)
                if status == 200:
                    queued.append(body["prompt_id"])
        finally:
            self.request("/queue", {"delete": queued})  # before the gate opens, whatever happened above
            pending = self.get("/queue")["queue_pending"]
            release.touch()
        wait_for(lambda: gate_id in self.get(f"/history/{gate_id}"), what="the gate node to finish")
        return {"responses": responses, "queued": queued, "pending_after_delete": pending}

    def get(self, path: str, timeout: float = 30):
        status, body, _ = self.request(path, timeout=timeout)
        if status != 200:
            raise urllib.error.URLError(f"GET {path}: {status}")
        return body


class BrowserRunFailed(RuntimeError):
    """A node script of the browser tier exited with an error or wrote no report."""


def run_browser_script(script: str, config: dict, artifacts: Path, name: str, timeout: float = 300) -> dict:
    """Run tests/browser/<script> on a config (written as <name>-config.json beside its log, <name>-browser.log,
    in artifacts) and return the report it writes to config["report"]."""
    config_path = artifacts / f"{name}-config.json"
    config_path.write_text(json.dumps(config, indent=2, ensure_ascii=False))
    result = subprocess.run(["node", str(Path(__file__).resolve().parent / script), str(config_path)], cwd=REPO,
                            capture_output=True, text=True, timeout=timeout)
    (artifacts / f"{name}-browser.log").write_text(result.stdout + result.stderr)
    report = Path(config["report"])
    if result.returncode != 0 or not report.is_file():
        raise BrowserRunFailed(f"{script} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return json.loads(report.read_text())


def wait_for(condition, timeout: float = 30.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    raise TimeoutError(f"timed out waiting for {what}")


def example_image(comfy_dir: str | Path, where: Path) -> Path:
    """input/example.png as every ComfyUI install ships it (the photo workflow loads it), or a stand-in."""
    shipped = Path(comfy_dir) / "input" / "example.png"
    if shipped.is_file():
        return shipped
    from PIL import Image

    path = where / "example.png"
    Image.new("RGB", (512, 512), (90, 140, 220)).save(path)
    return path
