# ruff: noqa: E402  (ComfyUI must be put on sys.path and configured before its modules import)
"""Boots a real ComfyUI in-process, once, with this extension and the test nodes installed.

Imported by conftest.py and by the tests under one module name, so ComfyUI starts only once.
"""

import asyncio
import inspect
import os
import sys
import tempfile
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
COMFYUI_DIR = os.environ.get("CA_COMFYUI_DIR")
PACK_NAME = "comfyui-concept-attention"

if not COMFYUI_DIR:
    raise RuntimeError("comfy_host needs CA_COMFYUI_DIR")
sys.path.insert(0, COMFYUI_DIR)
# ComfyUI's import order matters: cli flags, then extra_config, then nodes.
# isort: off
from comfy.cli_args import args

args.cpu = True
import utils.extra_config  # noqa: F401
import execution
import folder_paths
import nodes
# isort: on

_work = Path(tempfile.mkdtemp(prefix="ca-host-"))
_custom = _work / "custom_nodes"
_custom.mkdir()
(_custom / PACK_NAME).symlink_to(REPO)
(_custom / "ca_test_nodes").symlink_to(Path(__file__).parent / "ca_test_nodes")
folder_paths.set_temp_directory(str(_work / "temp"))
folder_paths.set_output_directory(str(_work / "output"))
folder_paths.add_model_folder_path("custom_nodes", str(_custom), is_default=True)
asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))


def pack():
    """The extension as ComfyUI loaded it (its module, with ca_core and nodes inside)."""
    for module in list(sys.modules.values()):
        path = getattr(module, "__file__", None) or ""
        if path.endswith(f"{PACK_NAME}/__init__.py"):
            return module
    raise RuntimeError("ComfyUI did not load the extension")


class RecordingServer:
    client_id = None
    last_node_id = None
    last_prompt_id = None
    sockets_metadata = {}

    def __init__(self):
        self.events = []

    def send_sync(self, event, data, sid=None):
        self.events.append((event, data))

    def queue_updated(self):
        pass


def make_executor():
    params = inspect.signature(execution.PromptExecutor.__init__).parameters
    cache = {"cache_args": {"lru": 0, "ram": 0}} if "cache_args" in params else {"cache_size": 0}
    return execution.PromptExecutor(RecordingServer(), cache_type=execution.CacheType.CLASSIC, **cache)


def run_prompt(prompt: dict, executor=None) -> dict:
    """Validate and execute an API-format prompt through ComfyUI's own executor."""
    executor = executor or make_executor()
    prompt_id = str(uuid.uuid4())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not valid:
        return {"valid": False, "error": error, "node_errors": node_errors}
    executor.execute(prompt, prompt_id, {"client_id": "test"}, outputs)
    errors = [data for event, data in executor.status_messages if event == "execution_error"]
    return {"valid": True, "success": executor.success, "outputs": executor.history_result["outputs"],
            "errors": errors, "node_errors": node_errors}

