"""The extension in Chinese, Japanese and Korean: what ComfyUI serves, and what its real frontend shows.

The browser half (locale.mjs) switches the frontend's language with its Comfy.Locale setting and places
each node on the canvas. Screenshots go to test-artifacts/browser/<ComfyUI version>/locale-<lang>.png.
"""

import json
import os
import sys
import warnings
from pathlib import Path

import pytest
from comfy_server import PACK_NAME, REPO, host_version, run_browser_script

HOST = host_version(os.environ["CA_COMFYUI_DIR"])
LANGUAGES = ["zh", "ja", "ko"]
NODE_IDS = ["ConceptAttentionSampler", "ConceptAttentionModel", "ConceptAttentionMaps", "ConceptAttentionSegmentImage",
            "ConceptAttentionSaliencyMap", "ConceptAttentionMask", "ConceptAttentionPrompts",
            "ConceptAttentionLoadDemoModel"]


def locale_file(language: str, name: str) -> dict:
    return json.loads((REPO / "locales" / language / name).read_text(encoding="utf-8"))


def node_defs(language: str) -> dict:
    return locale_file(language, "nodeDefs.json")


def inputs_of(definition: dict) -> dict:
    return {**definition["input"].get("required", {}), **definition["input"].get("optional", {})}


@pytest.fixture(scope="session")
def translated(server, artifacts) -> dict:
    """What the canvas showed in English, in each language, and in English again."""
    config = {
        "url": server.url + "/",
        "nodeIds": NODE_IDS,
        "titles": {language: {node_id: node["display_name"] for node_id, node in node_defs(language).items()}
                   for language in LANGUAGES},
        "artifacts": str(artifacts),
        "report": str(artifacts / "locale-report.json"),
    }
    try:
        report = run_browser_script("locale.mjs", config, artifacts, "locale")
    finally:
        server.request("/settings/Comfy.Locale", "en")  # the other browser tests expect English
    if not report["localeSetting"]:
        message = (f"LOCALE TESTS SKIPPED: the frontend of ComfyUI {HOST} ({report['frontendVersion']}) has no "
                   "Comfy.Locale setting to switch")
        warnings.warn(message, stacklevel=1)
        print(f"\n*** {message} ***\n", file=sys.stderr)
        pytest.skip(message)
    return report


@pytest.mark.parametrize("language", LANGUAGES)
def test_comfyui_serves_the_translations_at_i18n(server, language):
    served = server.get("/i18n")[language]
    assert {node_id: served["nodeDefs"][node_id] for node_id in NODE_IDS} == node_defs(language)
    for part, texts in locale_file(language, "main.json").items():
        assert {key: served[part][key] for key in texts} == texts, part


@pytest.mark.parametrize("language", LANGUAGES)
def test_translated_help_pages_served_where_the_frontend_looks(server, language):
    for node_id in NODE_IDS:
        definition = server.get(f"/api/object_info/{node_id}")[node_id]
        # The frontend asks for /extensions/<pack>/docs/<NodeId>/<language>.md before <NodeId>.md
        status, page, kind = server.request(f"/extensions/{PACK_NAME}/docs/{node_id}/{language}.md")
        assert status == 200 and "text/html" not in kind, node_id
        text = page.decode()
        assert text.startswith(f"# {node_defs(language)[node_id]['display_name']}\n"), node_id
        undocumented = [name for name in inputs_of(definition) if f"- **{name}**" not in text]
        assert not undocumented, f"{node_id}/{language}.md does not describe {undocumented}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_switching_the_language_translates_every_node_title_on_the_canvas(translated, language):
    seen = translated["languages"][language]
    assert seen["translated"], f"the frontend did not switch to {language} within 30 s"
    titles = {node_id: node["title"] for node_id, node in seen["nodes"].items()}
    assert titles == {node_id: node_defs(language)[node_id]["display_name"] for node_id in NODE_IDS}
    assert Path(seen["screenshot"]).is_file()


@pytest.mark.parametrize("language", LANGUAGES)
def test_switching_the_language_translates_input_and_output_labels(translated, language):
    seen = translated["languages"][language]["nodes"]
    texts = node_defs(language)
    sampler, model = seen["ConceptAttentionSampler"], seen["ConceptAttentionModel"]
    assert sampler["widgets"]["concepts"] == texts["ConceptAttentionSampler"]["inputs"]["concepts"]["name"]
    assert sampler["inputs"]["model"] == texts["ConceptAttentionSampler"]["inputs"]["model"]["name"]
    # Outputs named as their type read as the type (dataTypes); others as the node's translation.
    assert sampler["outputs"][1] == locale_file(language, "main.json")["dataTypes"]["CONCEPT_MAPS"]
    assert model["outputs"][1] == texts["ConceptAttentionModel"]["outputs"]["1"]["name"]


def test_switching_back_to_english_restores_the_titles(server, translated):
    english = {node_id: server.get(f"/api/object_info/{node_id}")[node_id]["display_name"] for node_id in NODE_IDS}
    assert {node_id: node["title"] for node_id, node in translated["english"].items()} == english
    assert {node_id: node["title"] for node_id, node in translated["restored"].items()} == english


def test_the_frontend_marks_the_inputs_the_host_marks_advanced(server, translated):
    """Where the host can say an input is advanced, the frontend folds exactly those; elsewhere none."""
    for node_id in NODE_IDS:
        inputs = inputs_of(server.get(f"/api/object_info/{node_id}")[node_id])
        marked = sorted(name for name, spec in inputs.items() if len(spec) > 1 and spec[1].get("advanced"))
        assert sorted(translated["english"][node_id]["advancedWidgets"]) == marked, node_id
    sampler = inputs_of(server.get("/api/object_info/ConceptAttentionSampler")["ConceptAttentionSampler"])
    if tuple(int(part) for part in HOST.split(".")) >= (0, 33, 0):
        assert sampler["layers"][1].get("advanced") is True
