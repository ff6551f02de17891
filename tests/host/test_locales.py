"""The translations in locales/, against the node schemas of this host and as ComfyUI's /i18n serves them.

Every node, input and output has a translated name and tooltip in each language, and nothing else is
there: a renamed or removed input leaves no stale key behind. The frontend shows the translation in
place of the schema's text, so each one must be translated, keep the option values the tooltip
names (the widget shows them untranslated), and say "advanced" exactly where the input is.
"""

import json
import re
from pathlib import Path

import nodes
import pytest
from app.custom_node_manager import CustomNodeManager
from comfy_api.latest import io
from comfy_host import pack
from comfy_inprocess import PACK_NAME

LOCALES = Path(__file__).resolve().parents[2] / "locales"
# The translated languages; locales/en holds only the template browser's name for the pack.
LANGUAGES = sorted(path.name for path in LOCALES.iterdir() if (path / "nodeDefs.json").is_file())
# How each language opens the tooltip of an advanced input (English: "Advanced. " where the host cannot fold).
ADVANCED_MARK = {"zh": "高级选项。", "ja": "詳細設定。", "ko": "고급 옵션. "}
ENGLISH_ADVANCED_MARK = "Advanced. "
NODE_IDS = sorted(node_id for node_id, cls in nodes.NODE_CLASS_MAPPINGS.items()
                  if getattr(cls, "RELATIVE_PYTHON_MODULE", None) == f"custom_nodes.{PACK_NAME}")


def node_defs(language: str) -> dict:
    return json.loads((LOCALES / language / "nodeDefs.json").read_text(encoding="utf-8"))


def main(language: str) -> dict:
    return json.loads((LOCALES / language / "main.json").read_text(encoding="utf-8"))


def schema(node_id: str) -> io.Schema:
    return nodes.NODE_CLASS_MAPPINGS[node_id].GET_SCHEMA()


def is_advanced(node_input: io.Input) -> bool:
    return getattr(node_input, "advanced", None) is True or node_input.tooltip.startswith(ENGLISH_ADVANCED_MARK)


def english_tooltip(node_input: io.Input) -> str:
    return node_input.tooltip.removeprefix(ENGLISH_ADVANCED_MARK)


def test_the_pack_ships_chinese_japanese_and_korean_for_all_eight_nodes():
    assert LANGUAGES == ["ja", "ko", "zh"]
    assert len(NODE_IDS) == 8, NODE_IDS


@pytest.mark.parametrize("language", LANGUAGES)
def test_comfyui_serves_them_from_the_locales_folder(language):
    served = CustomNodeManager().build_translations()[language]
    assert {node_id: served["nodeDefs"][node_id] for node_id in NODE_IDS} == node_defs(language)
    for part, texts in main(language).items():
        assert {key: served[part][key] for key in texts} == texts, part


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_node_category_and_socket_type_and_nothing_else(language):
    assert sorted(node_defs(language)) == NODE_IDS
    categories = {part for node_id in NODE_IDS for part in schema(node_id).category.split("/")}
    socket_types = pack().nodes.socket_types
    assert set(main(language)) == {"nodeCategories", "dataTypes", "templateWorkflows"}
    assert set(main(language)["templateWorkflows"]["category"]) == {PACK_NAME}
    assert set(main(language)["nodeCategories"]) == categories
    assert set(main(language)["dataTypes"]) == {socket_types.ConceptMapsType.io_type,
                                                 socket_types.ConceptRecorderType.io_type}


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("node_id", NODE_IDS)
def test_an_output_named_as_its_type_reads_as_the_type_does(language, node_id):
    """Frontends label such an output with the type's translation (dataTypes), others with the node's."""
    data_types = main(language)["dataTypes"]
    outputs = node_defs(language)[node_id]["outputs"]
    for index, output in enumerate(schema(node_id).outputs):
        if output.display_name == output.io_type and output.io_type in data_types:
            assert outputs[str(index)]["name"] == data_types[output.io_type], f"output {index}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("node_id", NODE_IDS)
def test_every_input_and_output_has_a_translated_name_and_tooltip(language, node_id):
    node = schema(node_id)
    translated = node_defs(language)[node_id]
    assert list(translated) == ["display_name", "description", "inputs", "outputs"]
    assert translated["display_name"] != node.display_name
    assert translated["description"] and translated["description"] != node.description
    assert list(translated["inputs"]) == [node_input.id for node_input in node.inputs], "stale or missing inputs"
    for node_input in node.inputs:
        entry = translated["inputs"][node_input.id]
        assert list(entry) == ["name", "tooltip"] and all(entry.values()), f"{node_input.id}: {entry}"
        assert entry["tooltip"] != node_input.tooltip, f"{node_input.id}: tooltip left in English"
    assert list(translated["outputs"]) == [str(index) for index in range(len(node.outputs))]
    for index, output in enumerate(node.outputs):
        entry = translated["outputs"][str(index)]
        assert list(entry) == ["name", "tooltip"] and all(entry.values()), f"output {index}: {entry}"
        assert entry["tooltip"] != output.tooltip, f"output {index}: tooltip left in English"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("node_id", NODE_IDS)
def test_tooltips_say_advanced_exactly_where_the_input_is(language, node_id):
    translated = node_defs(language)[node_id]["inputs"]
    for node_input in schema(node_id).inputs:
        marked = translated[node_input.id]["tooltip"].startswith(ADVANCED_MARK[language])
        assert marked is is_advanced(node_input), f"{node_id}.{node_input.id}"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("node_id", NODE_IDS)
def test_tooltips_keep_the_option_values_they_name(language, node_id):
    translated = node_defs(language)[node_id]["inputs"]
    for node_input in schema(node_id).inputs:
        options = getattr(node_input, "options", None) or []
        named = [option for option in options if re.search(rf"\b{re.escape(str(option))}\b", english_tooltip(node_input))]
        missing = [option for option in named if str(option) not in translated[node_input.id]["tooltip"]]
        assert not missing, f"{node_id}.{node_input.id}: the {language} tooltip drops {missing}"
