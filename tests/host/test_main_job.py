"""The README's main job (scripts/demo.sh -> scripts/run_demo.py) as a user runs it, and its quiet boot."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from comfy_inprocess import REPO, HeldHostLog
from PIL import Image

OUTPUTS = ["image", "heatmap_circle", "heatmap_square", "heatmap_background", "mask_circle", "recoloured"]


def test_the_main_job_writes_every_output_and_no_host_traceback(tmp_path: Path):
    done = subprocess.run([sys.executable, str(REPO / "scripts" / "run_demo.py"), "--out", str(tmp_path)],
                          capture_output=True, text=True, timeout=300, env=dict(os.environ))
    assert done.returncode == 0, done.stderr[-3000:]
    assert f"wrote {len(OUTPUTS)} images and contact_sheet.png" in done.stdout
    sizes = {name: Image.open(tmp_path / f"{name}.png").size for name in OUTPUTS}
    assert len(set(sizes.values())) == 1, sizes
    width, height = sizes["image"]
    assert Image.open(tmp_path / "contact_sheet.png").size == (width * len(OUTPUTS), height + 24)
    # The hosts here lack torchaudio, so ComfyUI logs a traceback per audio module; the job holds them.
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    assert "warnings while booting, none naming this extension" in done.stderr


def test_held_warnings_print_as_one_line_and_the_handlers_come_back(capsys):
    root = logging.getLogger()
    before = list(root.handlers)
    held = HeldHostLog()
    logging.warning("IMPORT FAILED: nodes_audio.py")
    logging.warning("IMPORT FAILED: nodes_lt_audio.py")
    logging.info("below the warnings: never held")
    assert not held.names("custom_nodes")
    held.release(replay=False)
    assert root.handlers == before
    assert "ComfyUI logged 2 warnings while booting" in capsys.readouterr().err


def test_held_warnings_are_all_printed_when_the_extension_is_named(capsys):
    stream = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(stream)
    try:
        held = HeldHostLog()
        logging.warning("Cannot import /tmp/x/custom_nodes%scomfyui-concept-attention module", os.sep)
        logging.warning("IMPORT FAILED: nodes_audio.py")
        assert held.names(f"custom_nodes{os.sep}comfyui-concept-attention")
        assert "IMPORT FAILED" not in capsys.readouterr().err  # held, not yet printed
        held.release(replay=True)
        err = capsys.readouterr().err
        assert "Cannot import /tmp/x/custom_nodes" in err and "IMPORT FAILED: nodes_audio.py" in err
        assert "warnings while booting" not in err
    finally:
        root.removeHandler(stream)


def test_a_failed_boot_prints_every_held_warning(capsys):
    stream = logging.StreamHandler(sys.stderr)
    root = logging.getLogger()
    root.addHandler(stream)
    try:
        with pytest.raises(RuntimeError), HeldHostLog():
            logging.warning("IMPORT FAILED: nodes_audio.py")
            raise RuntimeError("ComfyUI did not load the extension")
        assert "IMPORT FAILED: nodes_audio.py" in capsys.readouterr().err
        with HeldHostLog():
            logging.warning("IMPORT FAILED: nodes_audio.py")
        assert "ComfyUI logged 1 warnings while booting" in capsys.readouterr().err
    finally:
        root.removeHandler(stream)
