"""Core tier: ca_core alone (plain torch, einops, numpy, opencv), no ComfyUI needed."""

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


def pytest_collection_modifyitems(items):
    """Run without a ComfyUI host even though the repo root is a package.

    The repo root's __init__.py is the ComfyUI entry point, so pytest collects the root as a
    Package and, before the first test under it, imports that __init__.py to look for a
    setup_module; the import needs comfy_api. The file defines no setup_module, so where no
    ComfyUI is importable that import is skipped (the host tier, which puts ComfyUI on sys.path,
    is left as it is).
    """
    if importlib.util.find_spec("comfy_api") is not None:
        return
    for item in items:
        for node in item.listchain():
            if isinstance(node, pytest.Package) and node.path == REPO:
                node.setup = lambda: None
                return


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    """Core tensors are tiny: thread start-up would cost more than the work (ms per softmax)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
