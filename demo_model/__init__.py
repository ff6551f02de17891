"""The shipped demo model: its config, word-level text encoder, patch-PCA latent codec and weights (no ComfyUI import).

How it was trained and measured lives in research/, which the registry package leaves out.
"""

from pathlib import Path

WEIGHTS = Path(__file__).resolve().parent / "weights" / "demo_model.safetensors"
