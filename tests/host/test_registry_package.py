"""The registry package on its own: exactly its files, copied into a fresh custom_nodes folder, load
through ComfyUI's loader and run the main job. Each check boots a ComfyUI of its own, in a child process
whose import path holds neither this repository nor its research code while the pack loads."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_inprocess import PACK_NAME, REPO

sys.path.insert(0, str(REPO / "scripts"))
from registry_package import copy_package  # noqa: E402

NODE_IDS = {"ConceptAttentionSampler", "ConceptAttentionModel", "ConceptAttentionMaps", "ConceptAttentionSegmentImage",
            "ConceptAttentionSaliencyMap", "ConceptAttentionMask", "ConceptAttentionPrompts",
            "ConceptAttentionLoadDemoModel"}

# Boots ComfyUI with the pack from argv[1] and reports what its loader made of it.
LOAD_PROBE = """
import json, sys
from pathlib import Path
sys.path.insert(0, sys.argv[2])
import comfy_inprocess
pack = comfy_inprocess.boot(pack_dir=Path(sys.argv[1]), quiet=True)
import nodes
ours = sorted(name for name, cls in nodes.NODE_CLASS_MAPPINGS.items() if cls.__module__.startswith(pack.__name__))
print(json.dumps({"pack_file": str(Path(pack.__file__).resolve()), "nodes": ours,
                  "research_loaded": any(name == "research" or name.startswith("research.") for name in sys.modules)}))
"""


@pytest.fixture(scope="module")
def package(tmp_path_factory) -> Path:
    """The registry package's files in <tmp>/ComfyUI/custom_nodes/<pack>, as an install unpacks them."""
    target = tmp_path_factory.mktemp("registry") / "ComfyUI" / "custom_nodes" / PACK_NAME
    copy_package(target)
    return target


def child_env() -> dict:
    return {**os.environ, "PYTHONPATH": ""}


def test_the_package_has_no_tests_bench_or_research(package):
    copied = {path.relative_to(package).parts[0] for path in package.rglob("*")}
    assert copied.isdisjoint({"tests", "bench", "research", "scripts", ".github", "node_modules"}), copied
    assert (package / "demo_model" / "weights" / "demo_model.safetensors").exists()


def test_comfyui_loads_every_node_from_the_package_alone(package, tmp_path):
    done = subprocess.run([sys.executable, "-c", LOAD_PROBE, str(package), str(REPO / "scripts")], cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, env=child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert Path(loaded["pack_file"]) == (package / "__init__.py").resolve()
    assert set(loaded["nodes"]) == NODE_IDS
    assert not loaded["research_loaded"]


def test_the_main_job_runs_from_the_package(package, tmp_path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "run_demo.py"), "--pack", str(package),
                           "--out", str(tmp_path / "out"), "--scenes", "1"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=300, env=child_env())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "wrote 6 images and contact_sheet.png" in done.stdout
    assert "over 1 held-out scenes: mean IoU" in done.stdout
    assert (tmp_path / "out" / "contact_sheet.png").exists()
    assert (tmp_path / "out" / "segmentation_scene_1.png").exists()
