"""Which model families the concept stream supports: one ModelFamily (nodes/family.py) per family."""

from .chroma import ChromaFamily
from .flux import FluxFamily
from .flux2 import Flux2Family

FAMILIES = (FluxFamily(), Flux2Family(), ChromaFamily())

# Families ComfyUI loads that have no joint text-image attention, so no concept stream to add.
WITHOUT_JOINT_ATTENTION = {
    "WanModel": "Wan (its text enters by cross-attention only)",
    "NextDiT": "Lumina 2 / Z-Image (a single stream of text and image tokens)",
    "UNetModel": "SD1.5 / SDXL (a UNet with cross-attention)",
    "HunYuanDiT": "HunyuanDiT (cross-attention)",
}

# Joint-attention families whose adapter is not written yet, by the diffusion model's class name.
NOT_YET = {
    "OpenAISignatureMMDITWrapper": "SD3 / SD3.5",
    "QwenImageTransformer2DModel": "Qwen-Image",
    "HunyuanVideo": "HunyuanVideo",
    "CogVideoXTransformer3DModel": "CogVideoX",
}


class UnsupportedModelError(ValueError):
    pass


def family_for(model):
    """The family of a ComfyUI MODEL, or an error that says why not and lists what is supported."""
    diffusion_model = model.get_model_object("diffusion_model")
    for family in FAMILIES:
        if family.matches(diffusion_model):
            return family
    supported = "; ".join(family.name for family in FAMILIES)
    kind = type(diffusion_model).__name__
    if kind in WITHOUT_JOINT_ATTENTION:
        reason = (f"{WITHOUT_JOINT_ATTENTION[kind]} has no joint text-image attention, which ConceptAttention "
                  "reads its maps from")
    elif kind in NOT_YET:
        reason = f"ConceptAttention does not support {NOT_YET[kind]} models yet"
    else:
        reason = f"ConceptAttention does not support this model ({kind}) yet"
    raise UnsupportedModelError(f"{reason}. Supported: {supported}. Load one of those (or the demo model).")
