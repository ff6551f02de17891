"""The extension in ComfyUI's real frontend: templates, help pages, the gallery, the shipped workflows.

Screenshots and the browser's report go to test-artifacts/browser/<ComfyUI version>/.
"""

import json
import os
import re
from pathlib import Path
from urllib.parse import quote

import pytest
from comfy_server import (
    PACK_NAME,
    SAVED,
    WORKFLOW_DIR,
    host_version,
    left_out,
    min_hosts,
    saved_workflow_files,
    workflow_files,
)

WORKFLOWS = workflow_files()
HOST = host_version(os.environ["CA_COMFYUI_DIR"])
# Templates that declare (`minHost` in scripts/template_specs.mjs) a newer ComfyUI than this host: listed and
# served like the others, never loaded or validated here; see test_templates_for_newer_hosts_left_out.
LEFT_OUT = left_out(HOST)
NODE_IDS = ["ConceptAttentionSampler", "ConceptAttentionModel", "ConceptAttentionMaps", "ConceptAttentionSegmentImage",
            "ConceptAttentionSaliencyMap", "ConceptAttentionMask", "ConceptAttentionPrompts",
            "ConceptAttentionLoadDemoModel"]
RUNNABLE = "Demo on any CPU - concept maps and a mask"
HEADLESS_DEMO = WORKFLOW_DIR / "api" / "demo_shapes.json"  # what scripts/demo.sh runs
FLUX_SCHNELL = "Flux.1 schnell - concept maps"
MISSING_MODEL = f"{FLUX_SCHNELL} with a missing checkpoint"


def skip_if_left_out(name: str) -> None:
    if name in LEFT_OUT:
        pytest.skip(f"{name} needs ComfyUI {LEFT_OUT[name]} or newer (minHost); this host is {HOST}")


@pytest.fixture(scope="session")
def validated(server, browser, tmp_path_factory) -> dict:
    """POST /prompt each workflow as the frontend converts it, while the gate node holds the worker (nothing runs)."""
    prompts = {name: entry["prompt"] for name, entry in browser["workflows"].items()}
    # A control: the same Flux workflow naming a model file that does not exist must be refused.
    control = json.loads(json.dumps(prompts[FLUX_SCHNELL]))
    for node in control.values():
        if node["class_type"] == "CheckpointLoaderSimple":
            node["inputs"]["ckpt_name"] = "not-installed.safetensors"
    prompts[MISSING_MODEL] = control
    return server.validate_without_running(prompts, tmp_path_factory.mktemp("gate"), "ca-browser-tests")


def test_workflow_templates_listed_with_thumbnails(server):
    listed = server.get("/api/workflow_templates")
    assert sorted(listed.get(PACK_NAME, [])) == sorted(WORKFLOWS)
    for name, path in WORKFLOWS.items():
        status, body, _ = server.request(f"/api/workflow_templates/{PACK_NAME}/{quote(name)}.json")
        assert status == 200 and body == json.loads(path.read_text()), name
        # The template browser asks for <name>.jpg next to each custom-node template.
        status, image, _ = server.request(f"/api/workflow_templates/{PACK_NAME}/{quote(name)}.jpg")
        assert status == 200 and image[:3] == b"\xff\xd8\xff", f"{name}.jpg is not a JPEG"


def test_help_pages_served_where_the_frontend_looks(server):
    for node_id in NODE_IDS:
        definition = server.get(f"/api/object_info/{node_id}")[node_id]
        # The frontend reads the pack name from python_module: /extensions/<pack>/docs/<NodeId>.md
        assert definition["python_module"] == f"custom_nodes.{PACK_NAME}"
        status, page, kind = server.request(f"/extensions/{PACK_NAME}/docs/{node_id}.md")
        assert status == 200 and "text/html" not in kind, node_id
        text = page.decode()
        assert text.startswith(f"# {definition['display_name']}\n"), node_id
        inputs = {**definition["input"].get("required", {}), **definition["input"].get("optional", {})}
        undocumented = [name for name in inputs if f"- **{name}** — " not in text]
        assert not undocumented, f"{node_id}.md does not describe {undocumented}"
        for name, spec in inputs.items():
            if len(spec) > 1 and "default" in spec[1]:
                line = next(line for line in text.splitlines() if line.startswith(f"- **{name}** — "))
                assert documented_default(line) == spec[1]["default"], f"{node_id}.md: default of {name}"


def documented_default(line: str):
    """The default a help page states on an input's line, as the type object_info gives it."""
    match = re.search(r"default (`[^`]*`|\S+?)\.(?:\s|$)", line)
    value = match[1].strip("`") if match else None
    if value in ("on", "off"):
        return value == "on"
    if value == "empty":
        return ""
    try:
        return int(value)
    except (TypeError, ValueError):
        pass
    try:
        return float(value)
    except (TypeError, ValueError):
        return value


def test_frontend_extension_loads(server, browser):
    assert f"/extensions/{PACK_NAME}/js/concept_attention.js" in server.get("/api/extensions")
    assert browser["extensionLoaded"]


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_loads_with_every_node_known(browser, name):
    skip_if_left_out(name)
    loaded = browser["workflows"][name]
    assert loaded["unknownTypes"] == []
    assert loaded["dialogs"] == [], "a dialog opened on load (missing nodes or models?)"
    assert loaded["nodeCount"] == loaded["fileNodeCount"]
    assert loaded["linkCount"] == loaded["fileLinkCount"]
    assert loaded["widgetDrift"] == [], "widget values moved to other widgets on load"
    assert loaded["offscreen"] == [], "the workflow's saved view does not show these nodes"
    assert Path(loaded["screenshot"]).is_file()


@pytest.mark.parametrize("name", WORKFLOWS)
def test_workflow_passes_comfyui_validation(validated, name):
    skip_if_left_out(name)
    status, body = validated["responses"][name]
    assert status == 200, body
    assert body["node_errors"] == {}


def test_templates_for_newer_hosts_left_out(browser):
    """Only the templates that declare a newer ComfyUI are left out, and this host does lack what they use.

    The second half keeps `minHost` honest: a template that loads here needs no newer host.
    """
    assert set(min_hosts()) <= set(WORKFLOWS), "minHost declared for a template with no workflows/ file"
    templates = {name for name in browser["workflows"] if not name.startswith(SAVED)}
    assert templates == set(WORKFLOWS) - set(LEFT_OUT)
    assert set(browser["leftOut"]) == set(LEFT_OUT)
    for name, needed in LEFT_OUT.items():
        assert browser["leftOut"][name]["lacks"], (
            f"{name} declares minHost {needed}, yet ComfyUI {HOST}'s frontend has every node type and combo "
            "value it uses: lower its minHost (or drop it) so that this host tests it")


@pytest.mark.parametrize("name", saved_workflow_files())
def test_a_workflow_saved_by_an_earlier_release_keeps_its_settings_and_links(browser, validated, name):
    """Concept Mask has gained inputs (refine, a socket for the image) and outputs (objects, count) since this
    workflow was saved: its widget values and the links into and out of it stay where they were, and it runs."""
    loaded = browser["workflows"][SAVED + name]
    assert loaded["unknownTypes"] == [] and loaded["dialogs"] == []
    assert loaded["linkCount"] == loaded["fileLinkCount"]
    assert loaded["widgetDrift"] == [], "widget values moved to other widgets on load"
    saved = json.loads(saved_workflow_files()[name].read_text())
    mask_id = next(str(node["id"]) for node in saved["nodes"] if node["type"] == "ConceptAttentionMask")
    mask = loaded["prompt"][mask_id]["inputs"]
    # the concepts come from the linked string node, the rest from the saved widgets, refine at its default
    assert mask == {"concept_maps": ["5", 1], "concepts": ["14", 0], "method": "argmax", "threshold": 0.5, "grow": 2,
                    "blur": 1, "fill_holes": True, "invert": False, "space": "as_made", "min_region": 1024,
                    "temporal_smoothing": 0, "refine": "none"}
    assert loaded["prompt"]["11"]["inputs"]["mask"] == [mask_id, 0]  # its MASK still feeds the composite
    status, body = validated["responses"][SAVED + name]
    assert status == 200 and body["node_errors"] == {}, body


def test_validation_refuses_a_missing_model_file(validated):
    status, body = validated["responses"][MISSING_MODEL]
    assert status == 400 and "ckpt_name" in json.dumps(body["node_errors"])


def test_validated_workflows_never_ran(server, validated):
    assert validated["pending_after_delete"] == []
    for prompt_id in validated["queued"]:
        assert server.get(f"/history/{prompt_id}") == {}, "a validated workflow was executed"


def test_demo_runs_from_the_run_button(browser):
    run = browser["run"]
    assert run["done"] and run["error"] is None
    assert run["events"][0][0] == "execution_start"


def test_demo_template_is_the_headless_demo(browser):
    """The template shows what scripts/demo.sh runs (workflows/api/demo_shapes.json), setting for setting."""
    headless = json.loads(HEADLESS_DEMO.read_text())

    def settings(prompt):
        by_type = {}
        for node in prompt.values():
            values = {k: v for k, v in node["inputs"].items() if not isinstance(v, list)}  # lists are links
            by_type.setdefault(node["class_type"], []).append(values)
        return {t: sorted(v, key=json.dumps) for t, v in by_type.items()}

    template, demo = settings(browser["workflows"][RUNNABLE]["prompt"]), settings(headless)
    for class_type in ("ConceptAttentionLoadDemoModel", "CLIPTextEncode", "EmptySD3LatentImage",
                       "ConceptAttentionSampler", "ConceptAttentionSaliencyMap", "ConceptAttentionMask",
                       "EmptyImage", "ImageCompositeMasked"):
        assert template.get(class_type) == demo.get(class_type), class_type


def generated_size(browser) -> tuple[int, int]:
    """The demo workflow's image size, from its empty latent."""
    prompt = browser["workflows"][RUNNABLE]["prompt"]
    latent = next(n for n in prompt.values() if n["class_type"] == "EmptySD3LatentImage")["inputs"]
    return latent["width"], latent["height"]


def test_gallery_shows_one_labelled_heatmap_per_concept(browser):
    prompt = browser["workflows"][RUNNABLE]["prompt"]
    sampler = next(n for n in prompt.values() if n["class_type"] == "ConceptAttentionSampler")
    expected = [c.strip() for c in sampler["inputs"]["concepts"].split(",")]
    gallery = browser["run"]["gallery"]
    assert [item["label"] for item in gallery] == expected
    assert [item["concept"] for item in gallery] == expected
    assert all(item["loaded"] and item["visible"] for item in gallery)
    assert all((item["width"], item["height"]) == generated_size(browser) for item in gallery)
    assert browser["run"]["saliencyStockPreview"] == 0, "the stock preview duplicates the gallery"


def test_gallery_names_the_steps_a_block_cache_skipped(browser):
    note = browser["run"]["stepsNote"]
    count = len(browser["run"]["gallery"])
    assert note["skipped"] == {"note": "maps from steps 0, 3; a block cache skipped steps 1, 2", "items": count}
    assert note["plain"] == {"note": None, "items": count}


def test_gallery_heatmap_enlarges_on_click(browser):
    run = browser["run"]
    first = run["gallery"][0]["label"]
    assert run["lightbox"]["caption"] == first and run["lightbox"]["loaded"]
    assert run["lightbox"]["width"] > generated_size(browser)[0]
    assert run["lightboxClosed"]


def test_concept_mask_previews_its_mask(browser):
    preview = browser["run"]["maskPreview"]
    assert preview["outputImages"] == 1
    width, height = generated_size(browser)
    assert preview["shown"] == [{"width": width, "height": height}]


def test_gallery_is_display_only(browser):
    assert browser["run"]["promptUnchanged"]
    assert browser["run"]["saliencyWidgetsUnchanged"]


def test_no_errors_from_the_extension(browser):
    assert browser["extensionErrors"] == []
    assert browser["extensionMisses"] == [], "the frontend asked for files of the extension that are not there"


def test_gallery_labels_each_image_of_a_batch(browser):
    run = browser["batchRun"]
    assert run["done"] and run["error"] is None
    concepts = [item["concept"] for item in browser["run"]["gallery"]]
    expected = [f"{concept} · image {image}" for image in (1, 2) for concept in concepts]
    assert [item["label"] for item in run["gallery"]] == expected
    assert all(item["loaded"] and item["visible"] for item in run["gallery"])
    assert run["maskPreview"]["outputImages"] == 2
