"""The pack's subgraph blueprints (subgraphs/*.json): served by ComfyUI, placed in its real frontend, expanded
into our and core nodes, and accepted by ComfyUI's validation.

ComfyUI reads custom nodes' subgraphs/ from 0.8.0 on (app/subgraph_manager.py); on older hosts only the checks
of the files themselves run.
Screenshots and the browser's report go to test-artifacts/browser/<ComfyUI version>/subgraphs/.
"""

import json
import os
import re
from pathlib import Path

import pytest
from comfy_server import PACK_NAME, REPO, WORKFLOW_DIR, host_version, run_browser_script

HOST = host_version(os.environ["CA_COMFYUI_DIR"])
READS_BLUEPRINTS = (Path(os.environ["CA_COMFYUI_DIR"]) / "app" / "subgraph_manager.py").is_file()
# The files' own checks run on every host; what needs ComfyUI to serve the blueprints skips where it does not.
needs_blueprints = pytest.mark.skipif(not READS_BLUEPRINTS, reason=(
    f"ComfyUI {HOST} does not read custom nodes' subgraph blueprints (no app/subgraph_manager.py; "
    "ComfyUI 0.8.0 or newer does)"))

BLUEPRINTS = {path.stem: path for path in sorted((REPO / "subgraphs").glob("*.json"))}
PHOTO, INPAINT = "Concept mask from a photo", "Concept inpaint"
CATEGORY = "ConceptAttention"
# What each blueprint holds, takes and gives: no loaders, the models are inputs.
INNER_TYPES = {
    PHOTO: ["ConceptAttentionMask", "ConceptAttentionSegmentImage"],
    INPAINT: ["ConceptAttentionMask", "DifferentialDiffusion", "ImageCompositeMasked", "InpaintModelConditioning",
              "KSampler", "VAEDecode"],
}
INPUTS = {
    PHOTO: ["model", "clip", "vae", "image", "concepts", "mask_concepts", "method", "grow", "blur"],
    INPAINT: ["model", "positive", "negative", "vae", "image", "concept_maps", "concepts", "grow", "blur", "seed",
              "steps", "cfg"],
}
OUTPUTS = {PHOTO: ["MASK", "CONCEPT_MAPS"], INPAINT: ["IMAGE"]}
# Promoted widgets set on the placed node, and found again in the inner nodes' prompt entries.
EDITS = {PHOTO: {"mask_concepts": "grass", "grow": 12, "method": "otsu"}, INPAINT: {"concepts": "sky", "steps": 8}}
# The template whose loaders name the placeholder model files the server fixture creates.
MODELS_FROM = "Flux.1 dev - photo to mask and Fill inpainting"
# Broken copies of the wired prompt that validation must refuse: the node broken, its input, the error expected.
MISSING_IMAGE = "Segment Image without its image"
WRONG_TYPE = "Concept inpaint's Concept Mask fed an IMAGE as concept maps"
NOT_VALID = {MISSING_IMAGE: ("ConceptAttentionSegmentImage", "image", "required_input_missing"),
             WRONG_TYPE: ("ConceptAttentionMask", "concept_maps", "return_type_mismatch")}


def blueprint(name: str) -> dict:
    return json.loads(BLUEPRINTS[name].read_text())


def definition(name: str) -> dict:
    return blueprint(name)["definitions"]["subgraphs"][0]


def promoted_targets(name: str) -> dict[str, tuple[str, str]]:
    """Each subgraph input that feeds an inner widget: the inner node's class type and the widget's input name."""
    graph = definition(name)
    nodes = {node["id"]: node for node in graph["nodes"]}
    links = {link["id"]: link for link in graph["links"]}
    targets = {}
    for entry in graph["inputs"]:
        for link_id in entry["linkIds"]:
            node = nodes[links[link_id]["target_id"]]
            slot = node["inputs"][links[link_id]["target_slot"]]
            if "widget" in slot:
                targets[entry["name"]] = (node["type"], slot["name"])
    return targets


def saved_widgets(node: dict) -> dict[str, object]:
    """An inner node's saved widget values by name."""
    values = iter(node.get("widgets_values") or [])
    named = {}
    for slot in node["inputs"]:
        if "widget" in slot:
            named[slot["name"]] = next(values)
            if slot["name"] == "seed":
                next(values)  # the frontend saves the seed's control_after_generate right after it
    return named


def inner_values(name: str) -> dict[str, object]:
    """The value each promoted widget starts with: the inner widget's saved value."""
    nodes = {node["type"]: node for node in definition(name)["nodes"]}
    return {input_name: saved_widgets(nodes[class_type])[widget]
            for input_name, (class_type, widget) in promoted_targets(name).items()}


def template_loaders() -> dict[str, list[list]]:
    """widgets_values of the MODELS_FROM template's loaders and image, by node type, in file order."""
    found: dict[str, list[list]] = {}
    for node in json.loads((WORKFLOW_DIR / f"{MODELS_FROM}.json").read_text())["nodes"]:
        if node["type"] in ("UNETLoader", "DualCLIPLoader", "VAELoader", "LoadImage"):
            found.setdefault(node["type"], []).append(node["widgets_values"])
    return found


def harness() -> dict:
    """Core nodes around the two blueprints: the template's loaders and image into their inputs, the photo's
    concept maps into the inpaint, the mask and the inpainted image into previews."""
    loaders = template_loaders()
    nodes = {
        "image": {"type": "LoadImage", "values": loaders["LoadImage"][0][:1]},  # the file; then its upload button
        "maps model": {"type": "UNETLoader", "values": loaders["UNETLoader"][0]},
        "inpainting model": {"type": "UNETLoader", "values": loaders["UNETLoader"][-1]},
        "text encoders": {"type": "DualCLIPLoader", "values": loaders["DualCLIPLoader"][0]},
        "vae": {"type": "VAELoader", "values": loaders["VAELoader"][0]},
        "prompt": {"type": "CLIPTextEncode", "values": ["a yellow raincoat"]},
        "no prompt": {"type": "ConditioningZeroOut"},
        "mask preview": {"type": "MaskPreview"},
        "inpainted": {"type": "PreviewImage"},
    }
    links = [
        ["maps model", "MODEL", PHOTO, "model"], ["text encoders", "CLIP", PHOTO, "clip"],
        ["vae", "VAE", PHOTO, "vae"], ["image", "IMAGE", PHOTO, "image"],
        [PHOTO, "MASK", "mask preview", "mask"],
        ["text encoders", "CLIP", "prompt", "clip"], ["prompt", "CONDITIONING", "no prompt", "conditioning"],
        ["inpainting model", "MODEL", INPAINT, "model"], ["prompt", "CONDITIONING", INPAINT, "positive"],
        ["no prompt", "CONDITIONING", INPAINT, "negative"], ["vae", "VAE", INPAINT, "vae"],
        ["image", "IMAGE", INPAINT, "image"], [PHOTO, "CONCEPT_MAPS", INPAINT, "concept_maps"],
        [INPAINT, "IMAGE", "inpainted", "images"],
    ]
    widgets = {PHOTO: {"concepts": "girl, dress, grass, sky", "mask_concepts": "dress"}, INPAINT: {"concepts": "dress"}}
    return {"nodes": nodes, "links": links, "widgets": widgets}


def by_class(prompt: dict, class_type: str) -> tuple[str, dict]:
    (found,) = [(key, node) for key, node in prompt.items() if node["class_type"] == class_type]
    return found


@pytest.fixture(scope="module")
def frontend(server, artifacts) -> dict:
    """What the frontend made of the blueprints: their node definitions, each placed alone (its prompt before
    and after editing its promoted widgets), and both wired into a harness of core nodes (its prompt)."""
    folder = artifacts / "subgraphs"
    config = {
        "url": server.url + "/",
        "blueprints": [PHOTO, INPAINT],
        "edits": EDITS,
        "harness": harness(),
        "artifacts": str(folder),
        "report": str(folder / "report.json"),
    }
    folder.mkdir(parents=True, exist_ok=True)
    return run_browser_script("subgraphs.mjs", config, folder, "subgraphs")


def broken(prompt: dict, key: str, input_name: str, value=None) -> dict:
    """A copy of prompt with one input of one node replaced (value) or removed (None)."""
    copy = json.loads(json.dumps(prompt))
    if value is None:
        del copy[key]["inputs"][input_name]
    else:
        copy[key]["inputs"][input_name] = value
    return copy


def inner_key(wired: dict, name: str, class_type: str) -> str:
    """The prompt key of a blueprint's inner node: <placed node id>:<inner node id>."""
    (key,) = [key for key, node in wired["prompt"].items()
              if node["class_type"] == class_type and key.startswith(wired["ids"][name] + ":")]
    return key


def not_valid_variants(wired: dict) -> dict[str, tuple[str, dict]]:
    """The broken prompts of NOT_VALID, each with the key of the node broken."""
    segment = inner_key(wired, PHOTO, "ConceptAttentionSegmentImage")
    mask = inner_key(wired, INPAINT, "ConceptAttentionMask")
    return {MISSING_IMAGE: (segment, broken(wired["prompt"], segment, "image")),
            WRONG_TYPE: (mask, broken(wired["prompt"], mask, "concept_maps", [wired["ids"]["image"], 0]))}


@pytest.fixture(scope="module")
def validated(server, frontend, tmp_path_factory) -> dict:
    """POST /prompt the wired blueprints' prompt (and the broken variants) while the gate node holds the worker.

    /prompt validates in the request itself; the accepted prompts are then deleted from the queue before the
    gate opens, so nothing runs and no placeholder model file is ever opened.
    """
    wired = frontend["wired"]
    assert wired, "the browser could not place and wire the blueprints"
    variants = not_valid_variants(wired)
    prompts = {"wired": wired["prompt"], **{name: prompt for name, (_, prompt) in variants.items()}}
    held = server.validate_without_running(prompts, tmp_path_factory.mktemp("subgraph-gate"), "ca-subgraph-tests")
    return {**held, "broken_keys": {name: key for name, (key, _) in variants.items()}}


def test_both_blueprints_shipped():
    assert sorted(BLUEPRINTS) == sorted(INNER_TYPES)


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint_file_is_one_subgraph_node(name):
    """The format ComfyUI's frontend loads: a workflow whose root is one node of the one subgraph defined."""
    workflow = blueprint(name)
    graph = definition(name)
    (node,) = workflow["nodes"]
    assert node["type"] == graph["id"] and len(workflow["definitions"]["subgraphs"]) == 1
    assert workflow["links"] == []
    # Widgets are promoted by linking subgraph inputs to them. A proxyWidgets entry for an input named otherwise
    # than its widget (mask_concepts) shows twice in ComfyUI 0.8; 0.33 turns such entries into these links.
    assert "proxyWidgets" not in node["properties"]
    assert [i["name"] for i in node["inputs"]] == [i["name"] for i in graph["inputs"]] == INPUTS[name]
    assert [o["name"] for o in node["outputs"]] == [o["name"] for o in graph["outputs"]] == OUTPUTS[name]
    assert sorted(n["type"] for n in graph["nodes"]) == INNER_TYPES[name]
    assert graph["category"] == CATEGORY
    assert graph["description"] and workflow["extra"]["BlueprintDescription"] == graph["description"]
    # ComfyUI 0.8 reads the file in the platform's encoding
    assert BLUEPRINTS[name].read_bytes().isascii()


@pytest.mark.parametrize("name", BLUEPRINTS)
def test_blueprint_links_are_whole(name):
    graph = definition(name)
    nodes = {node["id"]: node for node in graph["nodes"]}
    links = {link["id"]: link for link in graph["links"]}
    for link in links.values():
        if link["origin_id"] != -10:
            assert link["id"] in nodes[link["origin_id"]]["outputs"][link["origin_slot"]]["links"], link
        if link["target_id"] != -20:
            assert nodes[link["target_id"]]["inputs"][link["target_slot"]]["link"] == link["id"], link
    for side, end in (("inputs", "origin_id"), ("outputs", "target_id")):
        for entry in graph[side]:
            assert entry["linkIds"], f"{name}: subgraph {side[:-1]} {entry['name']} is not connected"
            assert all(links[i][end] == (-10 if side == "inputs" else -20) for i in entry["linkIds"])
    linked_inputs = {(node["id"], slot["name"]) for node in nodes.values() for slot in node["inputs"]
                     if slot["link"] is not None}
    required_sockets = {(node["id"], slot["name"]) for node in nodes.values() for slot in node["inputs"]
                        if "widget" not in slot and slot.get("shape") != 7}
    assert required_sockets <= linked_inputs, f"{name}: unconnected inner inputs"


def test_the_photo_blueprint_masks_along_the_photos_edges():
    """Its Concept Mask follows the photo's edges (refine: image edges) with the photo the maps came from."""
    graph = definition(PHOTO)
    (mask,) = [node for node in graph["nodes"] if node["type"] == "ConceptAttentionMask"]
    widgets = [slot["name"] for slot in mask["inputs"] if "widget" in slot]
    assert mask["widgets_values"][widgets.index("refine")] == "image edges"
    (image_link,) = [link for link in graph["links"] if link["target_id"] == mask["id"]
                     and mask["inputs"][link["target_slot"]]["name"] == "image"]
    assert image_link["origin_id"] == -10 and graph["inputs"][image_link["origin_slot"]]["name"] == "image"


@needs_blueprints
def test_global_subgraphs_lists_both_for_this_pack(server):
    listed = server.get("/api/global_subgraphs")
    ours = {entry["name"]: (entry_id, entry) for entry_id, entry in listed.items()
            if entry["info"].get("node_pack") == f"custom_nodes.{PACK_NAME}"}
    assert sorted(ours) == sorted(BLUEPRINTS)
    for name, (entry_id, entry) in ours.items():
        assert entry["source"] == "custom_node"
        served = server.get(f"/api/global_subgraphs/{entry_id}")
        assert json.loads(served["data"]) == blueprint(name)


@needs_blueprints
@pytest.mark.parametrize("name", BLUEPRINTS)
def test_frontend_lists_blueprint(frontend, name):
    found = frontend["definitions"].get(name)
    assert found, f"the frontend ({frontend['frontendVersion']}) registered no blueprint {name!r}"
    assert found["inputs"] == INPUTS[name] and found["outputs"] == OUTPUTS[name]
    # the node library's folder: ComfyUI 0.33 files it under its category, 0.8 under Subgraph Blueprints
    assert found["category"] in (f"Subgraph Blueprints/{CATEGORY}", "Subgraph Blueprints")
    assert found["pythonModule"] in ("blueprint", f"custom_nodes.{PACK_NAME}")
    assert found["description"] == definition(name)["description"]


@needs_blueprints
@pytest.mark.parametrize("name", BLUEPRINTS)
def test_placed_blueprint_shows_its_promoted_widgets(frontend, name):
    placed = frontend["placed"][name]
    assert placed["isSubgraphNode"] and placed["title"] == name
    assert placed["innerTypes"] == INNER_TYPES[name]
    assert placed["inputs"] == INPUTS[name] and placed["outputs"] == OUTPUTS[name]
    widgets = {widget["name"]: widget["value"] for widget in placed["widgets"]}
    assert widgets == inner_values(name)
    assert Path(placed["screenshot"]).is_file()


@needs_blueprints
@pytest.mark.parametrize("name", BLUEPRINTS)
def test_placed_blueprint_expands_into_its_inner_nodes(frontend, name):
    placed = frontend["placed"][name]
    prompt = placed["prompt"]
    assert sorted(node["class_type"] for node in prompt.values()) == INNER_TYPES[name]
    assert all(re.fullmatch(rf"{placed['id']}:\d+", key) for key in prompt), list(prompt)
    for input_name, (class_type, widget) in promoted_targets(name).items():
        assert by_class(prompt, class_type)[1]["inputs"][widget] == inner_values(name)[input_name], input_name


@needs_blueprints
@pytest.mark.parametrize("name", BLUEPRINTS)
def test_promoted_widget_edits_reach_the_inner_nodes(frontend, name):
    prompt = frontend["edited"][name]
    targets = promoted_targets(name)
    for input_name, value in EDITS[name].items():
        class_type, widget = targets[input_name]
        assert by_class(prompt, class_type)[1]["inputs"][widget] == value, input_name


@needs_blueprints
def test_wired_blueprints_link_across_their_borders(frontend):
    """Inner inputs fed from the blueprint's inputs resolve to the outer nodes, and outputs to the inner ones."""
    wired = frontend["wired"]
    prompt, ids = wired["prompt"], wired["ids"]
    segment = inner_key(wired, PHOTO, "ConceptAttentionSegmentImage")
    photo_mask = inner_key(wired, PHOTO, "ConceptAttentionMask")
    inpaint_mask = inner_key(wired, INPAINT, "ConceptAttentionMask")
    composite = inner_key(wired, INPAINT, "ImageCompositeMasked")
    differential = inner_key(wired, INPAINT, "DifferentialDiffusion")
    assert prompt[segment]["inputs"]["model"] == [ids["maps model"], 0]
    assert prompt[segment]["inputs"]["image"] == [ids["image"], 0]
    assert prompt[photo_mask]["inputs"]["concepts"] == "dress"
    assert prompt[ids["mask preview"]]["inputs"]["mask"] == [photo_mask, 0]
    assert prompt[inpaint_mask]["inputs"]["concept_maps"] == [segment, 0]
    assert prompt[differential]["inputs"]["model"] == [ids["inpainting model"], 0]
    assert prompt[composite]["inputs"]["destination"] == [ids["image"], 0]
    assert prompt[ids["inpainted"]]["inputs"]["images"] == [composite, 0]


@needs_blueprints
def test_wired_blueprints_pass_comfyui_validation(validated):
    status, body = validated["responses"]["wired"]
    assert status == 200, body
    assert body["node_errors"] == {}


@needs_blueprints
@pytest.mark.parametrize("name", NOT_VALID)
def test_validation_refuses_a_broken_prompt(validated, name):
    """So that the validation above cannot pass for want of checking anything."""
    class_type, input_name, error = NOT_VALID[name]
    status, body = validated["responses"][name]
    # 400 when no output is left valid; else ComfyUI queues the outputs that are and lists the errors
    assert status in (200, 400) and body["node_errors"], body
    errors = body["node_errors"].get(validated["broken_keys"][name])
    assert errors and errors["class_type"] == class_type, body["node_errors"]
    assert [e["type"] for e in errors["errors"]] == [error]
    assert errors["errors"][0]["extra_info"]["input_name"] == input_name


@needs_blueprints
def test_validated_prompts_never_ran(server, validated):
    assert validated["pending_after_delete"] == []
    for prompt_id in validated["queued"]:
        assert server.get(f"/history/{prompt_id}") == {}, "a validated prompt was executed"


@needs_blueprints
def test_no_errors_from_the_extension(frontend):
    assert frontend["extensionErrors"] == []
    assert frontend["pageErrors"] == []
