"""The Comfy Registry package: the tracked files less .comfyignore carry the runtime and nothing else.

tests/host/test_registry_package.py loads the pack from exactly these files and runs the demo with it.
"""

import sys
from pathlib import Path

import pathspec
import tomllib

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
from registry_package import IGNORE_FILE, git_files, imported_modules, package_files  # noqa: E402

LEFT_OUT = ("tests/", "bench/", "research/", "scripts/", ".github/", ".ci/", "node_modules/", "test-artifacts/")
LEFT_OUT_FILES = ("package.json", "package-lock.json", "requirements-dev.txt", "docs/history.md")
NOT_SHIPPED_MODULES = ("research", "tests", "bench", "scripts")


def publisher_spec() -> pathspec.PathSpec:
    """.comfyignore as the registry's publisher (comfy-cli's zip_files) reads it: stripped lines, no blanks or
    comments, gitignore patterns (pathspec's gitwildmatch)."""
    lines = (REPO / IGNORE_FILE).read_text().splitlines()
    patterns = [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]
    return pathspec.PathSpec.from_lines("gitwildmatch", patterns)


def publisher_reading() -> list[str]:
    """The package as the registry's publisher reads it: git's tracked files less publisher_spec()."""
    spec = publisher_spec()
    return sorted(name for name in git_files() if not spec.match_file(name))


def test_the_package_carries_the_runtime():
    files = set(package_files())
    for needed in ("__init__.py", "nodes/__init__.py", "nodes/demo_loader.py", "ca_core/stream.py",
                   "demo_model/config.py", "demo_model/codec.py", "demo_model/text.py",
                   "demo_model/weights/demo_model.safetensors", "web/js/concept_attention.js",
                   "workflows/Demo on any CPU - concept maps and a mask.json", "pyproject.toml", "requirements.txt",
                   "LICENSE", "README.md"):
        assert needed in files, needed
    assert any(name.startswith("web/docs/") for name in files)


def test_the_package_leaves_out_tests_bench_research_and_tooling():
    files = package_files()
    assert [name for name in files if name.startswith(LEFT_OUT) or name in LEFT_OUT_FILES] == []
    tracked = git_files()
    for prefix in ("tests/", "bench/", "research/", "scripts/"):  # there, so leaving them out is a real exclusion
        assert any(name.startswith(prefix) for name in tracked), prefix


def test_the_package_carries_the_subgraph_blueprints():
    """ComfyUI (0.8 on) offers <pack>/subgraphs/*.json in its node library: neither reading of .comfyignore
    may leave them out, committed or not yet."""
    blueprints = {path.relative_to(REPO).as_posix() for path in (REPO / "subgraphs").glob("*.json")}
    assert len(blueprints) >= 2
    assert blueprints & git_files("-o", "-i", f"--exclude-from={REPO / IGNORE_FILE}", "--", "subgraphs") == set()
    assert sorted(name for name in blueprints if publisher_spec().match_file(name)) == []
    assert blueprints & git_files() <= set(package_files())


def test_git_and_the_registry_publisher_read_comfyignore_alike():
    assert package_files() == publisher_reading()


def test_the_registry_icon_and_banner_are_images_in_the_package():
    comfy = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["comfy"]
    files = set(package_files())
    for key in ("Icon", "Banner"):
        url = comfy[key]
        assert url.startswith("https://raw.githubusercontent.com/") and "/main/" in url, url
        path = url.split("/main/", 1)[1]
        assert path in files and path.endswith(".png"), url
        assert (REPO / path).stat().st_size < 32_000, f"{path}: keep registry images small, every clone carries them"
    assert comfy["requires-comfyui"] == ">=0.3.64"
    assert "includes" not in comfy  # everything the pack needs is tracked, so it needs no forced includes


def imported_top_levels(path: Path) -> set[str]:
    """The top-level modules a file imports, relative imports resolved against its place in the package."""
    return {name.split(".")[0] for name in imported_modules(path)}


def test_no_shipped_module_imports_what_the_package_leaves_out():
    shipped = [REPO / name for name in package_files() if name.endswith(".py")]
    assert len(shipped) > 10
    imports = {path.relative_to(REPO).as_posix(): imported_top_levels(path) & set(NOT_SHIPPED_MODULES)
               for path in shipped}
    assert {name: found for name, found in imports.items() if found} == {}
    # the reading resolves relative imports: research's own modules count as research
    assert {"research", "demo_model"} <= imported_top_levels(REPO / "research" / "train.py")
    assert "demo_model" in imported_top_levels(REPO / "nodes" / "demo_loader.py")


def test_a_version_tag_publishes_to_the_registry():
    workflow = (REPO / ".github" / "workflows" / "publish.yml").read_text()
    assert 'tags:\n      - "v*.*.*"' in workflow
    assert "uses: Comfy-Org/publish-node-action@" in workflow
    assert "personal_access_token: ${{ secrets.REGISTRY_ACCESS_TOKEN }}" in workflow
