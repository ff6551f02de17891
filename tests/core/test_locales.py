"""The translations and translated help pages, as files: complete, alike across languages, in the frontend's layout.

ComfyUI reads locales/<language>/main.json and nodeDefs.json; its frontend asks for a node's help at
web/docs/<NodeId>/<language>.md and falls back to web/docs/<NodeId>.md. tests/host/test_locales.py
checks the translations against the node schemas themselves.
"""

import json
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
LOCALES = REPO / "locales"
DOCS = REPO / "web" / "docs"
LANGUAGES = ["ja", "ko", "zh"]
NODE_IDS = sorted(page.stem for page in DOCS.glob("*.md"))
# How a help page marks an advanced input, as the English page's *Advanced.*
ADVANCED_MARK = {"en": "*Advanced.*", "zh": "*高级选项。*", "ja": "*詳細設定。*", "ko": "*고급 옵션.*"}


def node_defs(language: str) -> dict:
    return json.loads((LOCALES / language / "nodeDefs.json").read_text(encoding="utf-8"))


def shape(value) -> object:
    """The keys of a translation, without its text."""
    return {key: shape(item) for key, item in value.items()} if isinstance(value, dict) else None


def listed_names(page: str) -> list[str]:
    """The inputs and outputs a help page lists, in order: its `- **name**` items."""
    return re.findall(r"^- \*\*(\w+)\*\*", page, re.M)


def advanced_items(page: str, mark: str) -> list[str]:
    return [name for name, line in re.findall(r"^- \*\*(\w+)\*\*(.*)$", page, re.M) if mark in line]


def code_blocks(page: str) -> list[str]:
    return re.findall(r"```.*?```", page, re.S)


def inline_code(page: str) -> set[str]:
    """Values a reader types or sees as they are (`auto`, `dog, grass, sky`), outside code blocks."""
    prose = re.sub(r"```.*?```", "", page, flags=re.S)
    return {" ".join(token.split()) for token in re.findall(r"`([^`]+)`", prose)}


def test_locales_hold_the_three_languages_and_only_the_files_comfyui_reads():
    assert sorted(path.name for path in LOCALES.iterdir()) == sorted(["en", *LANGUAGES])
    assert [path.name for path in (LOCALES / "en").iterdir()] == ["main.json"]  # the template browser's pack name
    for language in LANGUAGES:
        assert sorted(path.name for path in (LOCALES / language).iterdir()) == ["main.json", "nodeDefs.json"]


def test_every_language_translates_the_same_keys():
    reference = shape(node_defs("zh"))
    assert sorted(reference) == NODE_IDS, "one translation per node with a help page"
    for language in LANGUAGES:
        assert shape(node_defs(language)) == reference, language
        main = json.loads((LOCALES / language / "main.json").read_text(encoding="utf-8"))
        assert list(main) == ["nodeCategories", "dataTypes", "templateWorkflows"]
        assert list(main["templateWorkflows"]["category"]) == ["comfyui-concept-attention"]
        assert all(main["nodeCategories"].values()) and all(main["dataTypes"].values())
        assert list(main["dataTypes"]) == ["CONCEPT_MAPS", "CONCEPT_RECORDER"]


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_text_is_written_out(language):
    for node_id, node in node_defs(language).items():
        entries = [node, *node["inputs"].values(), *node["outputs"].values()]
        texts = [text for entry in entries for key, text in entry.items() if key not in ("inputs", "outputs")]
        assert all(isinstance(text, str) and text.strip() == text and text for text in texts), node_id


def test_help_page_folders_hold_one_page_per_language():
    folders = sorted(path.name for path in DOCS.iterdir() if path.is_dir())
    assert folders == NODE_IDS
    for node_id in NODE_IDS:
        pages = sorted(page.name for page in (DOCS / node_id).iterdir())
        assert pages == sorted(["en.md", *(f"{lang}.md" for lang in LANGUAGES)])


def test_the_english_page_is_also_where_the_frontend_asks_first():
    """The frontend asks for <Node>/<language>.md, then <Node>.md: en.md saves an English reader a failed request."""
    for node_id in NODE_IDS:
        assert (DOCS / node_id / "en.md").read_bytes() == (DOCS / f"{node_id}.md").read_bytes(), node_id


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("node_id", NODE_IDS)
def test_translated_help_page_matches_the_english_one(language, node_id):
    english = (DOCS / f"{node_id}.md").read_text(encoding="utf-8")
    translated = (DOCS / node_id / f"{language}.md").read_text(encoding="utf-8")
    title = node_defs(language)[node_id]["display_name"]
    assert translated.startswith(f"# {title}\n"), "the page is titled as the node is on the canvas"
    assert listed_names(translated) == listed_names(english)
    assert advanced_items(translated, ADVANCED_MARK[language]) == advanced_items(english, ADVANCED_MARK["en"])
    assert translated.count("\n## ") == english.count("\n## ")
    assert code_blocks(translated) == code_blocks(english), "wiring diagrams are kept as they are"
    missing = inline_code(english) - inline_code(translated)
    assert not missing, f"values the English page names and this one drops: {sorted(missing)}"
