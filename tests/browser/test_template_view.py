"""Every template opens readable and tidy: as the template browser opens it, in a 1600x1000 window, with the
frontend's default level of detail (below a zoom threshold the canvas draws nodes as blank boxes).

Screenshots go to test-artifacts/browser/<ComfyUI version>/view-<template>.png.
"""

import json
import os
from pathlib import Path

import pytest
from comfy_server import PACK_NAME, REPO, SETTINGS, host_version, left_out, run_browser_script, workflow_files

WORKFLOWS = workflow_files()
HOST = host_version(os.environ["CA_COMFYUI_DIR"])
LEFT_OUT = left_out(HOST)
# Zoomed in this much past the low-quality threshold (0.62 at a device pixel ratio of 1), a template stays
# readable on a screen a little smaller than the window.
READABLE_MARGIN = 1.085
# The name the template browser gives the pack in English (its sidebar), from the translations ComfyUI serves.
PACK_LABEL = json.loads((REPO / "locales" / "en" / "main.json").read_text())["templateWorkflows"]["category"][PACK_NAME]
LOD_SETTING = "LiteGraph.Canvas.MinFontSizeForLOD"


@pytest.fixture(scope="session")
def views(server, artifacts) -> dict:
    """What the frontend showed for each template this host can load (template_view.mjs)."""
    config = {
        "url": server.url + "/",
        "pack": PACK_NAME,
        "templates": [name for name in WORKFLOWS if name not in LEFT_OUT],
        "minFontSizeAfter": SETTINGS[LOD_SETTING],
        "artifacts": str(artifacts),
        "report": str(artifacts / "view-report.json"),
    }
    return run_browser_script("template_view.mjs", config, artifacts, "view")


def opened(views: dict, name: str) -> dict:
    if name in LEFT_OUT:
        pytest.skip(f"{name} needs ComfyUI {LEFT_OUT[name]} or newer (minHost); this host is {HOST}")
    return views["templates"][name]


def test_views_use_the_frontends_level_of_detail_and_restore_it(views):
    lod = views["lod"]
    assert lod["frontendDefault"] > 0, "the frontend's default draws every zoom in full: nothing to check"
    assert lod["set"] == lod["frontendDefault"]
    assert lod["restored"] == SETTINGS[LOD_SETTING]  # what the other browser tests run with


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_opens_readable(views, name):
    view = opened(views, name)
    assert view["threshold"] > 0
    assert not view["lowQuality"], f"opens at zoom {view['scale']:.3f}: nodes drawn as blank boxes"
    assert view["scale"] >= READABLE_MARGIN * view["threshold"], (
        f"opens at zoom {view['scale']:.3f}, too close to the low-quality threshold {view['threshold']:.3f}")


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_nodes_do_not_overlap(views, name):
    assert opened(views, name)["overlaps"] == []


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_opens_with_every_node_in_view(views, name):
    view = opened(views, name)
    assert view["outside"] == [], f"outside the view {[round(v) for v in view['view']]}"
    assert Path(view["screenshot"]).is_file()


@pytest.mark.parametrize("name", WORKFLOWS)
def test_template_notes_fit(views, name):
    for note in opened(views, name)["notes"]:
        assert note["shown"], f"{note['node']} is hidden (the canvas draws at low quality)"
        assert note["wrappedCode"] == [], f"{note['node']}: these code lines wrap at the note's width"
        assert note["overflow"] <= 0, f"{note['node']}: its text runs {note['overflow']} past its bottom"


def test_template_browser_names_the_pack(views):
    assert views["packLabel"] == PACK_LABEL
