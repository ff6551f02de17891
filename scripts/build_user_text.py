"""Write what the translations and help pages say about the model families from the family list itself.

nodes/families/user_text.py builds every text that names families (which are supported, what `layers = auto`
takes on each, their usual cfg) from the family classes, in English, Chinese, Japanese and Korean. This script
writes its output into the static files, from every family the extension supports on the newest host
(ALL_FAMILIES), whichever host runs it:
- locales/<language>/nodeDefs.json: the `model`, `layers` and `cfg` tooltips of the nodes in TOOLTIPS;
- web/docs/<Node>/en.md: a copy of web/docs/<Node>.md, the English page, for every node. The frontend asks for
  <Node>/<language>.md first and falls back to <Node>.md (the page for languages without a translation), so an
  English reader's help opens without a failed request;
- web/docs/<Node>.md and web/docs/<Node>/<language>.md: each span between <!-- families:KIND --> and
  <!-- /families --> (HTML comments, which the frontend's markdown renderer shows as nothing), KIND one of
  user_text.HELP_SPANS. A span stays on one line and never opens a line (a line that starts with "<!--" is an
  HTML block to markdown, and would lose its formatting).

    CA_COMFYUI_DIR=~/.cache/comfyui-concept-attention/hosts/0.33.0 \\
        ~/.cache/comfyui-concept-attention/venv-0.33.0/bin/python scripts/build_user_text.py [--check]

It imports the families, so it boots ComfyUI in-process (scripts/comfy_inprocess.py). --check writes nothing and
exits 1 where a file is out of date; tests/host/test_family_names.py checks the same.
"""

import argparse
import json
import re
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
LOCALES = REPO / "locales"
DOCS = REPO / "web" / "docs"

# The translated tooltips written here, by node and input: (builder name in user_text, keyword arguments)
TOOLTIPS = {
    "ConceptAttentionSampler": {"model": ("model_tooltip", {"copy": True}), "cfg": ("cfg_tooltip", {}),
                                "layers": ("layers_tooltip", {})},
    "ConceptAttentionModel": {"model": ("model_tooltip", {"copy": True}), "layers": ("layers_tooltip", {})},
    "ConceptAttentionSegmentImage": {"model": ("model_tooltip", {"copy": False}), "layers": ("layers_tooltip", {})},
}
ADVANCED_INPUTS = {"layers"}  # their translated tooltips open with the language's advanced mark
# The spans each help page holds, in every language, in order
HELP_PAGES = {
    "ConceptAttentionSampler": ("list", "short", "cfg", "layers"),
    "ConceptAttentionModel": ("list", "short", "layers"),
    "ConceptAttentionSegmentImage": ("short", "video", "layers"),
}
SPAN = re.compile(r"<!-- families:(\w+) -->(.*?)<!-- /families -->")


class OutOfDate(Exception):
    """A static file that cannot be brought up to date by rewriting its spans (a span missing or misplaced)."""


def user_text(pack: ModuleType) -> ModuleType:
    return pack.nodes.families.user_text


def all_families(pack: ModuleType) -> tuple:
    return pack.nodes.families.ALL_FAMILIES


def tooltip(pack: ModuleType, node_id: str, input_id: str, language: str) -> str:
    """An input's tooltip in a language, as the static files hold it."""
    text = user_text(pack)
    builder, options = TOOLTIPS[node_id][input_id]
    mark = text.PHRASES[language]["advanced"] if input_id in ADVANCED_INPUTS else ""
    return mark + getattr(text, builder)(all_families(pack), language, **options)


def built_node_defs(pack: ModuleType, language: str) -> str:
    path = LOCALES / language / "nodeDefs.json"
    node_defs = json.loads(path.read_text(encoding="utf-8"))
    for node_id, inputs in TOOLTIPS.items():
        for input_id in inputs:
            node_defs[node_id]["inputs"][input_id]["tooltip"] = tooltip(pack, node_id, input_id, language)
    return json.dumps(node_defs, indent=2, ensure_ascii=False) + "\n"


def help_page(node_id: str, language: str) -> Path:
    return DOCS / f"{node_id}.md" if language == "en" else DOCS / node_id / f"{language}.md"


def built_help_page(pack: ModuleType, node_id: str, language: str) -> str:
    path = help_page(node_id, language)
    page = path.read_text(encoding="utf-8")
    where = path.relative_to(REPO)
    kinds = tuple(match[1] for match in SPAN.finditer(page))
    if kinds != HELP_PAGES[node_id] or page.count("<!-- families") != len(kinds):
        raise OutOfDate(f"{where} holds the spans {kinds} (or a span left open or split over lines); it should "
                        f"hold {HELP_PAGES[node_id]}, each <!-- families:KIND -->...<!-- /families --> on one line")
    if re.search(r"^ {0,3}<!--", page, re.M):
        raise OutOfDate(f"{where}: a line opens with a span, which markdown reads as raw HTML; put words before it")
    text = user_text(pack)
    families = all_families(pack)
    return SPAN.sub(lambda match: f"<!-- families:{match[1]} -->{text.HELP_SPANS[match[1]](families, language)}"
                                  "<!-- /families -->", page)


def built_files(pack: ModuleType) -> dict[Path, str]:
    """Every file this script writes, as it should read now."""
    languages = user_text(pack).LANGUAGES
    files = {LOCALES / language / "nodeDefs.json": built_node_defs(pack, language)
             for language in languages if language != "en"}
    for node_id in HELP_PAGES:
        for language in languages:
            files[help_page(node_id, language)] = built_help_page(pack, node_id, language)
    return {**files, **english_copies(files)}


def english_copies(files: dict[Path, str]) -> dict[Path, str]:
    """web/docs/<Node>/en.md for every node's English page, as built in `files` or as it stands."""
    copies = {}
    for page in sorted(DOCS.glob("*.md")):
        copies[DOCS / page.stem / "en.md"] = files.get(page) or page.read_text(encoding="utf-8")
    return copies


def out_of_date(pack: ModuleType) -> dict[Path, str]:
    return {path: text for path, text in built_files(pack).items()
            if not path.is_file() or path.read_text(encoding="utf-8") != text}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true", help="write nothing; exit 1 where a file is out of date")
    check = parser.parse_args().check
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import comfy_inprocess

    pack = comfy_inprocess.boot(quiet=True)
    try:
        stale = out_of_date(pack)
    except OutOfDate as error:
        print(error, file=sys.stderr)
        return 1
    for path, text in stale.items():
        if not check:
            path.write_text(text, encoding="utf-8")
        print(f"{'out of date' if check else 'wrote'}: {path.relative_to(REPO)}")
    if not stale:
        print("up to date")
    return 1 if check and stale else 0


if __name__ == "__main__":
    sys.exit(main())
