"""The ComfyUI layer's three layers: node schemas in nodes/, the stream machinery in nodes/stream/, one adapter
per family in nodes/families/. The stream and the families meet only in the family interface (families/base.py)."""

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
NODES = REPO / "nodes"
sys.path.insert(0, str(REPO / "scripts"))
from registry_package import imported_modules  # noqa: E402


def imports_of(folder: Path) -> dict[str, set[str]]:
    return {path.name: imported_modules(path, relative_only=True) for path in sorted(folder.glob("*.py"))}


def test_imports_are_resolved_from_the_files_place():
    assert "nodes.families.base" in imported_modules(NODES / "families" / "sd3.py")
    assert "ca_core.stream" in imported_modules(NODES / "families" / "sd3.py")
    assert "nodes.families.tokens" in imported_modules(NODES / "families" / "base.py")  # from . import tokens


def test_the_stream_knows_families_only_through_their_interface():
    reached = {name: {module for module in modules if module.startswith("nodes.families")}
               for name, modules in imports_of(NODES / "stream").items()}
    assert {name: modules for name, modules in reached.items() if modules - {"nodes.families.base"}} == {}


def test_no_family_imports_the_stream_or_the_node_schemas():
    reached = {name: {module for module in modules if module.startswith("nodes.")
                      and not module.startswith("nodes.families")}
               for name, modules in imports_of(NODES / "families").items()}
    assert {name: modules for name, modules in reached.items() if modules} == {}


def test_no_family_imports_another_family():
    families = imports_of(NODES / "families")
    shared = {"nodes.families.base", "nodes.families.tokens", "nodes.families.flux_blocks", "nodes.families.qwen_blocks",
              "nodes.families.omnigen2_blocks"}
    crossing = {name: {m for m in modules if m.startswith("nodes.families.") and m not in shared}
                for name, modules in families.items() if name != "__init__.py"}
    assert {name: modules for name, modules in crossing.items() if modules} == {}
