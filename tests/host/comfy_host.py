"""Boots a real ComfyUI in-process, once, with this extension and the test nodes (helpers/node_pack.py) installed.

Imported by conftest.py and by the tests under one module name, so ComfyUI starts only once.
With CA_GGUF_DIR (ComfyUI-GGUF, exported by scripts/third_party_env.sh gguf) that pack is installed too, as a
user installs it, for test_gguf.py.
"""

import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
import comfy_inprocess  # noqa: E402
from comfy_inprocess import make_executor, pack, run_prompt  # noqa: E402, F401

GGUF_PACK = Path(os.environ["CA_GGUF_DIR"]) if os.environ.get("CA_GGUF_DIR") else None

# a one-file custom node pack; its imports (helpers.*) are found on sys.path, as the tests find them
if str(Path(__file__).parent) not in sys.path:
    sys.path.insert(0, str(Path(__file__).parent))
custom_nodes = {"ca_test_nodes.py": Path(__file__).parent / "helpers" / "node_pack.py"}
if GGUF_PACK is not None and (GGUF_PACK / "__init__.py").is_file():
    custom_nodes["ComfyUI-GGUF"] = GGUF_PACK
comfy_inprocess.boot(extra_custom_nodes=custom_nodes)
