"""Run a real ComfyUI inside this Python process: boot it, load custom nodes, execute prompts.

Shared by the host tests, the benchmarks and the demo, so ComfyUI is driven one way everywhere.
"""

import asyncio
import contextlib
import inspect
import logging
import logging.handlers
import os
import sys
import tempfile
import uuid
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
PACK_NAME = "comfyui-concept-attention"


def boot(comfyui_dir: str | None = None, extra_custom_nodes: dict[str, Path] | None = None,
         cpu: bool = True, quiet: bool = False, pack_dir: Path = REPO) -> ModuleType:
    """Import ComfyUI from comfyui_dir (default $CA_COMFYUI_DIR), load this extension from pack_dir
    (default: this repository; e.g. a copy of the registry package) through ComfyUI's own loader, plus
    any extra custom node folders, and return the extension's module.

    quiet: hold the warnings ComfyUI logs while it boots and print one line instead; they are all
    printed when this extension fails to load or one of them names it.
    """
    comfyui_dir = comfyui_dir or os.environ.get("CA_COMFYUI_DIR")
    if not comfyui_dir:
        raise SystemExit("set CA_COMFYUI_DIR to a ComfyUI work tree (scripts/host_env.sh VERSION prepares one)")
    sys.path.insert(0, comfyui_dir)
    with HeldHostLog() if quiet else contextlib.nullcontext():
        return _load(cpu, {PACK_NAME: pack_dir, **(extra_custom_nodes or {})})


def _load(cpu: bool, custom_nodes: dict[str, Path]) -> ModuleType:
    # ComfyUI's import order matters: cli flags, then extra_config, then nodes.
    # isort: off
    from comfy.cli_args import args

    args.cpu = cpu
    import utils.extra_config  # noqa: F401
    import folder_paths
    import nodes
    # isort: on

    work = Path(tempfile.mkdtemp(prefix="ca-comfy-"))
    custom = work / "custom_nodes"
    custom.mkdir()
    for name, path in custom_nodes.items():
        (custom / name).symlink_to(path)
    folder_paths.set_temp_directory(str(work / "temp"))
    folder_paths.set_output_directory(str(work / "output"))
    (work / "input").mkdir()
    folder_paths.set_input_directory(str(work / "input"))
    folder_paths.add_model_folder_path("custom_nodes", str(custom), is_default=True)
    asyncio.run(nodes.init_extra_nodes(init_custom_nodes=True, init_api_nodes=False))
    return pack()


def pack() -> ModuleType:
    """The extension as ComfyUI loaded it (its module, with ca_core and nodes inside)."""
    for module in list(sys.modules.values()):
        if (getattr(module, "__file__", None) or "").endswith(f"{PACK_NAME}/__init__.py"):
            return module
    raise RuntimeError("ComfyUI did not load the extension (see its log above)")


class HeldHostLog:
    """Holds the root logger's warnings instead of printing them, until release() or the end of its with-block.

    ComfyUI imports every comfy_extras module; on a host without an optional package (torchaudio
    here) it logs a traceback per module, and none of those modules is needed by this extension.
    """

    # how ComfyUI names this extension when it cannot load it
    OURS = f"custom_nodes{os.sep}{PACK_NAME}"

    def __init__(self):
        self.root = logging.getLogger()
        self.handlers = list(self.root.handlers)
        self.holder = logging.handlers.BufferingHandler(capacity=1 << 30)
        self.holder.setLevel(logging.WARNING)
        for handler in self.handlers:
            self.root.removeHandler(handler)
        self.root.addHandler(self.holder)

    def __enter__(self) -> "HeldHostLog":
        return self

    def __exit__(self, failure, *_) -> None:
        self.release(replay=failure is not None or self.names(self.OURS))

    @property
    def records(self) -> list[logging.LogRecord]:
        return self.holder.buffer

    def names(self, text: str) -> bool:
        return any(text in record.getMessage() for record in self.records)

    def release(self, replay: bool) -> None:
        """Give the logger its handlers back; print the held records, or one line counting them."""
        self.root.removeHandler(self.holder)
        for handler in self.handlers:
            self.root.addHandler(handler)
        if replay:
            for record in self.records:
                for handler in self.handlers or [logging.lastResort]:
                    handler.handle(record)
        elif self.records:
            print(f"ComfyUI logged {len(self.records)} warnings while booting, none naming this extension "
                  "(optional host modules); scripts/demo.sh --verbose prints them", file=sys.stderr)


class RecordingServer:
    """The little of PromptServer that the executor talks to."""

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
    import execution

    params = inspect.signature(execution.PromptExecutor.__init__).parameters
    # As each host's main.py builds it with --cache-classic: 0.33 reads every cache_args key, even
    # the RAM-pressure ones (ram_inactive), whatever the cache type; older hosts ignore the extra keys.
    cache_args = {"lru": 0, "ram": 0, "ram_inactive": 0}
    cache = {"cache_args": cache_args} if "cache_args" in params else {"cache_size": 0}
    return execution.PromptExecutor(RecordingServer(), cache_type=execution.CacheType.CLASSIC, **cache)


def run_prompt(prompt: dict, executor=None) -> dict:
    """Validate and execute an API-format prompt through ComfyUI's own executor."""
    import execution

    executor = executor or make_executor()
    prompt_id = str(uuid.uuid4())
    valid, error, outputs, node_errors = asyncio.run(execution.validate_prompt(prompt_id, prompt, None))
    if not valid:
        return {"valid": False, "error": error, "node_errors": node_errors}
    executor.execute(prompt, prompt_id, {"client_id": "local"}, outputs)
    errors = [data for event, data in executor.status_messages if event == "execution_error"]
    return {"valid": True, "success": executor.success, "outputs": executor.history_result["outputs"],
            "errors": errors, "node_errors": node_errors}
