"""Core tier: ca_core alone (plain torch, einops, numpy, opencv), no ComfyUI needed."""

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    """Core tensors are tiny: thread start-up would cost more than the work (ms per softmax)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
