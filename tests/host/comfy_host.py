"""Boots a real ComfyUI in-process, once, with this extension and the test nodes installed.

Imported by conftest.py and by the tests under one module name, so ComfyUI starts only once.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import comfy_inprocess  # noqa: E402
from comfy_inprocess import make_executor, pack, run_prompt  # noqa: E402, F401

comfy_inprocess.boot(extra_custom_nodes={"ca_test_nodes": Path(__file__).parent / "ca_test_nodes"})
