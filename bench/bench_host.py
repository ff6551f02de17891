"""Boots a real ComfyUI in-process with this extension, and builds full-width Flux models.

ComfyUI is driven by scripts/comfy_inprocess.py, as in the host tests and the demo: the extension
is loaded through ComfyUI's own loader, so the code measured is the code ComfyUI runs.
"""

import dataclasses
import os
import sys
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import comfy_inprocess  # noqa: E402

# Flux.1 dev's real geometry; only the depth is ever reduced.
FLUX1 = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2,
    "vec_in_dim": 768, "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0,
    "num_heads": 24, "depth": 19, "depth_single_blocks": 38, "axes_dim": [16, 56, 56],
    "theta": 10000, "qkv_bias": True, "guidance_embed": True,
}


@dataclasses.dataclass
class Host:
    """What the benchmark needs from the booted ComfyUI and the loaded extension."""

    pack: ModuleType  # the extension as ComfyUI's loader imported it
    patch_module: ModuleType  # <pack>.nodes.patch
    flux_module: ModuleType  # <pack>.nodes.flux
    segment_module: ModuleType  # <pack>.nodes.segment_node
    comfyui_dir: str
    comfyui_version: str


def boot(device: str) -> Host:
    """Start ComfyUI from $CA_COMFYUI_DIR (cpu: --cpu) and load the extension through its loader."""
    comfyui_dir = os.environ.get("CA_COMFYUI_DIR")
    if not comfyui_dir:
        raise SystemExit("bench: set CA_COMFYUI_DIR to a ComfyUI work tree (see scripts/host_env.sh 0.8.0)")
    pack = comfy_inprocess.boot(comfyui_dir, cpu=device == "cpu")
    import comfyui_version

    return Host(
        pack=pack,
        patch_module=sys.modules[f"{pack.__name__}.nodes.patch"],
        flux_module=sys.modules[f"{pack.__name__}.nodes.flux"],
        segment_module=sys.modules[f"{pack.__name__}.nodes.segment_node"],
        comfyui_dir=comfyui_dir,
        comfyui_version=comfyui_version.__version__,
    )


def flux_config(depth: int, single: int) -> dict:
    from comfy.ldm.flux.model import FluxParams

    config = {**FLUX1, "depth": depth, "depth_single_blocks": single}
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        config["txt_ids_dims"] = []
    return config


def build_flux(depth: int, single: int, device: str, dtype, seed: int = 0, std: float = 0.02):
    """A Flux.1-width model through ComfyUI's own classes, random weights, wrapped in a ModelPatcher.

    ComfyUI builds Flux with uninitialised weights (it expects a state dict), so every parameter
    is drawn here: N(0, std) for weights and 1 + N(0, 0.1) for norm scales. The weights are
    created directly on the target device, so the GPU run never holds a CPU copy.
    """
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    model_config = comfy.supported_models.Flux(flux_config(depth, single))
    model_config.set_inference_dtype(dtype, None)
    # ComfyUI's own devices (cuda:0 and its offload device), as its model loaders use them
    target = comfy.model_management.get_torch_device() if device == "cuda" else torch.device("cpu")
    offload = comfy.model_management.unet_offload_device() if device == "cuda" else target
    model = model_config.get_model({}, device=target)
    model.diffusion_model.to(target)
    generator = torch.Generator(device=target).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            if name.endswith((".scale", "query_norm.weight", "key_norm.weight")):  # q/k RMSNorm, renamed in 0.33
                p.normal_(1.0, 0.1, generator=generator)
            else:
                p.normal_(0.0, std, generator=generator)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=target, offload_device=offload)
