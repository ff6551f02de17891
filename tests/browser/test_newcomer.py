"""What a newcomer meets in ComfyUI's real frontend: help pages that open without a failed request, the node
search, the demo's gallery in the classic canvas and in Nodes 2.0, and a language switch without a reload.

The browser half is newcomer.mjs; screenshots go to test-artifacts/browser/<ComfyUI version>/.
"""

import json
import os

import pytest
from comfy_server import PACK_NAME, host_version, run_browser_script, version_key, workflow_files

HOST = host_version(os.environ["CA_COMFYUI_DIR"])
NODE_IDS = ["ConceptAttentionSampler", "ConceptAttentionModel", "ConceptAttentionMaps", "ConceptAttentionSegmentImage",
            "ConceptAttentionSaliencyMap", "ConceptAttentionMask", "ConceptAttentionPrompts",
            "ConceptAttentionLoadDemoModel"]
QUERIES = ["mask", "segment", "concept", "heatmap"]
# Nodes 2.0 lets a node hide its stock preview (hideOutputImages) from frontend 1.49 (ComfyUI 0.33); in the
# frontends of 0.3.64 and 0.8 it is an early preview without that switch.
NODES_2 = version_key(HOST) >= (0, 33, 0)


def demo_template() -> tuple[str, dict]:
    """The template that runs the bundled demo model (found by its loader, whatever its file name)."""
    for path in workflow_files().values():
        workflow = json.loads(path.read_text())
        if any(node["type"] == "ConceptAttentionLoadDemoModel" for node in workflow["nodes"]):
            return str(path), workflow
    raise AssertionError("no template loads the demo model")


def demo_concepts() -> list[str]:
    _, workflow = demo_template()
    sampler = next(node for node in workflow["nodes"] if node["type"] == "ConceptAttentionSampler")
    concepts = next(value for value in sampler["widgets_values"] if isinstance(value, str) and "," in value)
    return [concept.strip() for concept in concepts.split(",")]


@pytest.fixture(scope="session")
def newcomer(server, artifacts) -> dict:
    config = {
        "url": server.url + "/",
        "demo": demo_template()[0],
        "nodeIds": NODE_IDS,
        "queries": QUERIES,
        "nodes2": NODES_2,
        "artifacts": str(artifacts),
        "report": str(artifacts / "newcomer-report.json"),
    }
    try:
        return run_browser_script("newcomer.mjs", config, artifacts, "newcomer", timeout=420)
    finally:  # the other browser tests expect English and the classic canvas
        server.request("/settings/Comfy.Locale", "en")
        server.request("/settings/Comfy.VueNodes.Enabled", False)


@pytest.mark.parametrize("node_id", NODE_IDS)
def test_help_opens_from_the_first_address_the_frontend_asks(server, newcomer, node_id):
    opened = newcomer["help"][node_id]
    assert opened["served"] == f"/extensions/{PACK_NAME}/docs/{node_id}/en.md"
    title = server.get(f"/api/object_info/{node_id}")[node_id]["display_name"]
    assert title in opened["shown"]


def test_no_failed_request_and_no_error_from_the_extension(newcomer):
    assert newcomer["extensionMisses"] == []
    assert newcomer["extensionErrors"] == []


def shows_the_gallery_once(shown: dict, concepts: list[str]) -> None:
    assert shown["galleries"] == 1
    assert [item["label"] for item in shown["items"]] == concepts
    assert all(item["loaded"] for item in shown["items"])
    assert shown["legends"] == 1, "the gallery's colour bar"
    assert shown["galleryFits"], "the node cuts the gallery off (its captions need scrolling)"
    # no stock preview of the same heatmaps, in either canvas mode
    assert shown["saliencyStockImages"] == shown["saliencyPreviewWidgets"] == shown["saliencyVuePreviews"] == 0
    assert shown["maskOutputImages"] == 1


def test_the_classic_canvas_shows_the_gallery_once(newcomer):
    classic = newcomer["classic"]
    assert classic["run"]["done"] and classic["run"]["error"] is None
    assert not classic["shown"]["vueNodes"]
    shows_the_gallery_once(classic["shown"], demo_concepts())
    assert classic["shown"]["maskImages"] == 1


@pytest.mark.skipif(not NODES_2, reason=f"Nodes 2.0 of ComfyUI {HOST}'s frontend has no way to hide a node's "
                                        "stock preview (hideOutputImages, frontend 1.49 / ComfyUI 0.33)")
def test_nodes_2_shows_the_gallery_once_and_the_mask_preview_once(newcomer):
    nodes2 = newcomer["nodes2"]
    assert nodes2["run"]["done"] and nodes2["run"]["error"] is None
    assert nodes2["shown"]["vueNodes"]
    shows_the_gallery_once(nodes2["shown"], demo_concepts())
    assert nodes2["shown"]["maskVuePreviews"] == 1
    assert nodes2["shown"]["overlappingNodes"] == [], "the demo's nodes overlap in Nodes 2.0"


@pytest.mark.skipif(not NODES_2, reason=f"App mode came with frontend 1.49 (ComfyUI 0.33); this host is {HOST}")
def test_app_mode_labels_each_heatmap_with_its_concept(newcomer):
    """The Saliency Map and Concept Mask picked as an app's outputs: one output per heatmap, named for its
    concept, and the mask."""
    labels = newcomer["appMode"]["labels"]
    concepts = demo_concepts()
    assert len(labels) == len(concepts) + 1
    assert sorted(label for label in labels if label in concepts) == sorted(concepts)


@pytest.mark.parametrize("mode", ["classic", "nodes2"])
def test_a_language_switch_without_reload_keeps_the_labelled_gallery(newcomer, mode):
    if mode == "nodes2" and not NODES_2:
        pytest.skip(f"Nodes 2.0 is checked from ComfyUI 0.33 on; this host is {HOST}")
    switch = newcomer["languageSwitch"][mode]
    assert switch["rebuilt"], "the frontend did not rebuild the nodes after the language switch"
    shows_the_gallery_once(switch["afterSwitch"], demo_concepts())
    assert switch["run"]["done"] and switch["run"]["error"] is None
    shows_the_gallery_once(switch["afterRun"], demo_concepts())
    assert switch["restored"]


@pytest.mark.parametrize("mode", ["classic", "nodes2"])
def test_concept_mask_shows_threshold_only_for_the_method_that_reads_it(newcomer, mode):
    if mode == "nodes2" and not NODES_2:
        pytest.skip(f"Nodes 2.0 is checked from ComfyUI 0.33 on; this host is {HOST}")
    assert newcomer[mode]["shown"]["thresholdByMethod"] == {"argmax": False, "threshold": True, "otsu": False}


def rank(newcomer: dict, query: str, node_id: str) -> int | None:
    return newcomer["search"][query]["ranks"][node_id]


# ComfyUI 0.33 sends search aliases to the frontend; older hosts search the names alone.
ALIASES = version_key(HOST) >= (0, 33, 0)


def test_segment_image_leads_the_search_for_segment(newcomer):
    assert rank(newcomer, "segment", "ConceptAttentionSegmentImage") == 1


def test_concept_mask_is_found_for_mask_and_for_segment_where_the_host_sends_aliases(newcomer):
    assert rank(newcomer, "mask", "ConceptAttentionMask") is not None
    if ALIASES:
        assert rank(newcomer, "segment", "ConceptAttentionMask") is not None


@pytest.mark.skipif(not ALIASES, reason=f"ComfyUI {HOST} sends no search aliases, so no node is found for 'heatmap'")
def test_the_nodes_that_make_maps_lead_the_search_for_heatmap(newcomer):
    first_two = newcomer["search"]["heatmap"]["first"][:2]
    assert sorted(first_two) == ["ConceptAttentionSampler", "ConceptAttentionSegmentImage"]
    # the nodes that only read maps made elsewhere are found by other words
    assert rank(newcomer, "heatmap", "ConceptAttentionMaps") is None
    assert rank(newcomer, "heatmap", "ConceptAttentionModel") is None
