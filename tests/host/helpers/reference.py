"""The paper authors' ConceptAttention code, as scripts/third_party_env.sh reference exports it into
$CA_REFERENCE_DIR: the modules the reference tests compare the extension against."""

import importlib
import os
import sys
import warnings
from pathlib import Path

import pytest


def reference_module(reference_dir: str, dotted_name: str):
    """A module of the authors' code, imported from reference_dir (and checked to come from there, not from
    anything else on the path)."""
    root = Path(reference_dir).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    module = importlib.import_module(dotted_name)
    assert Path(module.__file__).resolve().is_relative_to(root), f"{dotted_name} came from {module.__file__}"
    return module


def reference_dir_or_skip(label: str, files: tuple[str, ...], missing_dependency: str | None = None) -> str:
    """$CA_REFERENCE_DIR where it holds `files`; otherwise the calling test module is skipped, loudly (a warning and
    a line on stderr), saying what is missing: a dependency (missing_dependency) or one of the authors' files."""
    reference_dir = os.environ.get("CA_REFERENCE_DIR")
    missing = [name for name in files if not reference_dir or not (Path(reference_dir) / name).is_file()]
    if missing or missing_dependency:
        message = f"{label} REFERENCE TESTS SKIPPED: " + (
            missing_dependency or f"the authors' {missing[0]} is not in CA_REFERENCE_DIR={reference_dir} "
                                  "(scripts/third_party_env.sh reference)")
        warnings.warn(message, stacklevel=2)
        print(f"\n*** {message} ***\n", file=sys.stderr)
        pytest.skip(message, allow_module_level=True)
    return reference_dir
