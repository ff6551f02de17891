"""Tiny Flux checkpoints on disk, loaded back through ComfyUI's own loaders (UNETLoader, and packs' loaders).

ComfyUI detects a Flux checkpoint's geometry from its state dict, but only at full size (hidden width
3072 and 24 heads before 0.33; 128 channels per head from 0.33): a tiny model's file is detected as a
full-size one. `tiny_detection` tells the detector the tiny config while a loader runs; everything else
(weight dtypes, scaled fp8, casting ops, custom operations, weight loading) is the host's own code.
"""

import contextlib
from pathlib import Path

import comfy.model_detection
import comfy.model_management
import folder_paths
import safetensors.torch
import torch

from .models import flux_config, tiny_flux

SIZES = dict(depth=3, single=2, hidden=64, heads=4)
FP8 = torch.float8_e4m3fn


def tiny_flux_state_dict(seed: int = 3, sizes: dict = SIZES) -> dict[str, torch.Tensor]:
    """The fp32 weights of tiny_flux(seed) at `sizes` under the keys a Flux checkpoint uses."""
    model = tiny_flux(seed, **sizes)
    return {k: v.detach().clone().contiguous() for k, v in model.model.diffusion_model.state_dict().items()}


def scaled_fp8_state_dict(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A "scaled fp8" checkpoint as the published ones are laid out: each linear weight stored as fp8 of
    weight / scale beside its fp32 `scale_weight`, and a `scaled_fp8` marker whose dtype is the fp8 type."""
    out = {}
    for key, value in state_dict.items():
        if key.endswith(".weight") and value.ndim == 2:
            scale = value.abs().max().float() / torch.finfo(FP8).max
            out[key] = (value / scale).to(FP8)
            out[key[: -len("weight")] + "scale_weight"] = scale.reshape(())
        else:
            out[key] = value
    out["scaled_fp8"] = torch.zeros(2, dtype=FP8)  # two elements: no fp8 matmul (the common files)
    return out


def save_diffusion_model(state_dict: dict[str, torch.Tensor], folder: Path, name: str) -> str:
    """Write a checkpoint into a folder ComfyUI lists under diffusion_models; returns its name there."""
    folder.mkdir(parents=True, exist_ok=True)
    safetensors.torch.save_file(state_dict, str(folder / name))
    folder_paths.add_model_folder_path("diffusion_models", str(folder))
    folder_paths.add_model_folder_path("unet_gguf", str(folder))  # ComfyUI-GGUF's folder, where it is loaded
    return name


@contextlib.contextmanager
def tiny_detection(compute_dtype: torch.dtype | None = None, sizes: dict = SIZES):
    """While ComfyUI loads a tiny Flux file: its detector returns the tiny config at `sizes`; with compute_dtype,
    ComfyUI's compute-dtype choice for low-precision weights returns it (what it picks on a GPU: bf16 or
    fp16; on a CPU it picks fp32)."""
    detect, manual_cast = comfy.model_detection.detect_unet_config, comfy.model_management.unet_manual_cast
    unet_dtype = comfy.model_management.unet_dtype

    def detect_tiny(state_dict, key_prefix, *args, **kwargs):
        config = detect(state_dict, key_prefix, *args, **kwargs)
        if config is not None and config.get("image_model") == "flux":
            config = {**flux_config(guidance_embed="guidance_in.in_layer.weight" in state_dict, **sizes)}
        return config

    def cast_to(weight_dtype, *args, **kwargs):
        if weight_dtype in (torch.float32, torch.float64):
            return None
        return compute_dtype

    comfy.model_detection.detect_unet_config = detect_tiny
    if compute_dtype is not None:
        comfy.model_management.unet_manual_cast = cast_to
        # a scaled-fp8 file leaves the dtype to the device (before 0.33 the model then computes in it)
        comfy.model_management.unet_dtype = lambda *args, **kwargs: compute_dtype
    try:
        yield
    finally:
        comfy.model_detection.detect_unet_config = detect
        comfy.model_management.unet_manual_cast = manual_cast
        comfy.model_management.unet_dtype = unet_dtype
