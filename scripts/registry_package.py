"""The files the Comfy Registry package carries: the repository's tracked files less what .comfyignore lists.

    python scripts/registry_package.py                   # list them
    python scripts/registry_package.py --copy-to DIR     # copy exactly them into DIR (e.g. custom_nodes/<name>)

The registry's publisher (comfy node publish) zips `git ls-files` less the .comfyignore patterns,
read as gitignore patterns; git reads them here the same way.
"""

import argparse
import ast
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
IGNORE_FILE = ".comfyignore"


def git_files(*options: str) -> set[str]:
    listed = subprocess.run(["git", "-C", str(REPO), "ls-files", "-c", "-z", *options], capture_output=True,
                            check=True).stdout.decode()
    return set(filter(None, listed.split("\0")))


def package_files() -> list[str]:
    """Tracked paths, relative to the repository root, that .comfyignore does not exclude, sorted."""
    if not (REPO / IGNORE_FILE).exists():
        raise FileNotFoundError(f"no {IGNORE_FILE} in {REPO}: without it the package would carry every tracked file")
    excluded = git_files("-i", f"--exclude-from={REPO / IGNORE_FILE}")
    return sorted(git_files() - excluded)


def imported_modules(path: Path, relative_only: bool = False) -> set[str]:
    """The dotted modules a file imports, relative imports resolved against its place in the repository
    (`from ..ca_core import stream` in nodes/x.py: ca_core; `from . import tokens` in nodes/families/: its
    nodes.families.tokens); relative_only: the pack's own relative imports alone."""
    package = path.resolve().relative_to(REPO).parent.parts
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and not relative_only:
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and not relative_only:
            names.add(node.module)
        elif isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)]
            if node.module:
                names.add(".".join((*base, *node.module.split("."))))
            else:
                names |= {".".join((*base, alias.name)) for alias in node.names}
    return names


def copy_package(target: Path) -> list[str]:
    """Copy the package's files into target (created; must not exist yet), keeping their paths."""
    target.mkdir(parents=True)
    files = package_files()
    for name in files:
        (target / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / name, target / name)
    return files


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--copy-to", type=Path, default=None, help="a folder that does not exist yet")
    args = parser.parse_args()
    files = copy_package(args.copy_to) if args.copy_to else package_files()
    print("\n".join(files))


if __name__ == "__main__":
    main()
