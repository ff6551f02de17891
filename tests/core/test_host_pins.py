"""The pinned hosts (scripts/hosts.tsv): every host the tests run on has its torch set, in one place."""

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PINS = REPO / "scripts" / "hosts.tsv"


def pinned_rows() -> list[list[str]]:
    lines = PINS.read_text().splitlines()
    return [line.split("\t") for line in lines if line.strip() and not line.startswith("#")]


def test_every_pinned_host_has_a_torch_set():
    rows = pinned_rows()
    assert len(rows) >= 3
    for row in rows:
        assert len(row) == 2 and re.fullmatch(r"\d+\.\d+\.\d+", row[0]), f"bad row in {PINS.name}: {row}"
        packages = dict(pin.split("==") for pin in row[1].split())
        assert {"torch", "torchvision"} <= set(packages), f"ComfyUI {row[0]} needs torch and torchvision pinned"
        assert set(packages) <= {"torch", "torchvision", "torchaudio"}, row


def test_the_pin_list_is_the_only_list_of_hosts():
    """test.sh and demo.sh read the versions from the pin list, so a host cannot be added elsewhere."""
    for script in ("test.sh", "demo.sh"):
        text = (REPO / "scripts" / script).read_text()
        assert "hosts.tsv" in text
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert not re.search(r"\b0\.\d+\.\d+\b", code), f"{script} names a host version outside the pin list"


def _fake_host(tmp_path: Path, version: str) -> Path:
    host = tmp_path / f"ComfyUI-{version}"
    host.mkdir()
    (host / "comfyui_version.py").write_text(f'__version__ = "{version}"\n')
    (host / "requirements.txt").write_text("torch\n")
    return host


def test_host_env_refuses_a_host_without_a_torch_set(tmp_path):
    host = _fake_host(tmp_path, "9.9.9")
    env = {**os.environ, "COMFYUI_PATH": str(host), "CA_CACHE": str(tmp_path / "cache")}
    result = subprocess.run(["bash", str(REPO / "scripts" / "host_env.sh"), "9.9.9"], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 4, result.stderr
    assert "9.9.9 has no torch set in scripts/hosts.tsv" in result.stderr
    assert not (tmp_path / "cache").exists()  # refused before building anything
