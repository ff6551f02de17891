"""OpenCV's headless build: what the pack asks for, what this environment has, and that it serves every cv2 call.

The GUI build (opencv-python) needs libGL, which containers often lack, and shares its cv2 package with
the headless build that other popular packs install, so the two break each other.
"""

import importlib.metadata
import re
from pathlib import Path

import cv2
import pytest
import tomllib

REPO = Path(__file__).resolve().parents[2]
RUNTIME = ("ca_core", "nodes", "demo_model")
HEADLESS, GUI = "opencv-python-headless", "opencv-python"


def runtime_cv2_names() -> set[str]:
    """Every cv2 attribute the shipped code uses (cv2.GaussianBlur, cv2.THRESH_OTSU, ...)."""
    names = set()
    for folder in RUNTIME:
        for source in (REPO / folder).rglob("*.py"):
            names |= set(re.findall(r"\bcv2\.(\w+)", source.read_text()))
    return names


def test_the_pack_asks_for_the_headless_build_only():
    requirements = (REPO / "requirements.txt").read_text().split()
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    for listed in (requirements, dependencies):
        assert HEADLESS in listed and GUI not in listed, listed


def test_only_the_headless_build_is_installed():
    assert importlib.metadata.version(HEADLESS)
    with pytest.raises(importlib.metadata.PackageNotFoundError):
        importlib.metadata.distribution(GUI)
    gui = re.search(r"^\s*GUI:\s*(\S+)", cv2.getBuildInformation(), re.MULTILINE)
    assert gui and gui.group(1) == "NONE", "this cv2 was built with a GUI backend"


def test_the_headless_build_has_every_cv2_call_the_runtime_makes():
    names = runtime_cv2_names()
    assert {"GaussianBlur", "applyColorMap", "connectedComponentsWithStats", "floodFill"} <= names, names
    assert [name for name in sorted(names) if not hasattr(cv2, name)] == []
