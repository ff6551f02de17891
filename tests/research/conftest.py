"""Research tier: the demo model's dataset, training, probes and semantic results (research/), no
ComfyUI needed. None of it is shipped; the shipped demo model's runtime is demo_model/."""

import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

# pytest (--import-mode=importlib, rootdir tests/) imports this folder's files as research.<name>, and
# first registers this folder as a stand-in module `research`; the tests import the real package.
if list(getattr(sys.modules.get("research"), "__path__", [])) != [str(REPO / "research")]:
    sys.modules.pop("research", None)
    import research  # noqa: E402, F401


@pytest.fixture(autouse=True, scope="module")
def _one_cpu_thread():
    """The scenes and models here are small: thread start-up would cost more than the work."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
