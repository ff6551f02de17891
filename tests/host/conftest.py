"""Host tier: the extension loaded into a real ComfyUI, in-process, on the CPU.

scripts/test.sh points CA_COMFYUI_DIR at a ComfyUI work tree (see scripts/host_env.sh). Without
one these tests skip, and say so loudly.
"""

import os
import sys
import warnings
from pathlib import Path

import pytest

if not os.environ.get("CA_COMFYUI_DIR"):
    message = ("HOST TESTS SKIPPED: no ComfyUI host (set CA_COMFYUI_DIR, or run scripts/test.sh, "
               "which prepares one)")
    warnings.warn(message, stacklevel=1)
    print(f"\n*** {message} ***\n", file=sys.stderr)
    collect_ignore_glob = ["test_*.py"]
else:
    sys.path.insert(0, str(Path(__file__).parent))  # the tests import comfy_host and helpers
    import comfy_host

    # research/ (training, the shapes dataset, evaluation) is not part of the pack ComfyUI loaded; it is
    # found from the repository root, last, so ComfyUI's own top-level modules (nodes, utils) come first
    sys.path.append(str(Path(__file__).resolve().parents[2]))

    @pytest.fixture(scope="session")
    def ca():
        return comfy_host.pack()
