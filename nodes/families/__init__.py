"""The model families the concept stream supports: one module per family, each a ModelFamily (base.py)."""

from .aura_flow import AuraFlowFamily
from .boogu import BooguFamily
from .chroma import ChromaFamily
from .cogvideox import CogVideoXFamily
from .ernie import ErnieImageFamily
from .flux import FluxFamily
from .flux2 import Flux2Family
from .hidream import HiDreamFamily
from .hunyuan_video import HunyuanVideoFamily
from .ideogram4 import Ideogram4Family
from .joyimage import JoyImageFamily
from .krea2 import Krea2Family
from .lens import LensFamily
from .longcat_image import LongCatImageFamily
from .mage_flow import MageFlowFamily
from .mochi import MochiFamily
from .omnigen2 import OmniGen2Family
from .pixeldit import PixelDiTFamily
from .qwen_image import QwenImageFamily
from .sd3 import SD3Family
from .user_text import supported
from .z_image import ZImageFamily

# Every family the extension supports on the newest host, in the order users read them (the help pages and
# translations list these, whatever host wrote them); FAMILIES: those this host has (CogVideoX, Krea 2, Ideogram 4,
# Ernie-Image, LongCat-Image, Mage-Flow, Lens, JoyImage, PixelDiT, Boogu: ComfyUI 0.33 on).
ALL_FAMILIES = (FluxFamily, Flux2Family, ZImageFamily, ChromaFamily, SD3Family, HiDreamFamily, AuraFlowFamily,
                QwenImageFamily, LongCatImageFamily, MageFlowFamily, LensFamily, JoyImageFamily, PixelDiTFamily,
                HunyuanVideoFamily, CogVideoXFamily, MochiFamily, Krea2Family, Ideogram4Family, ErnieImageFamily,
                OmniGen2Family, BooguFamily)
FAMILIES = tuple(family() for family in ALL_FAMILIES if family.available)

# What users call the models ComfyUI loads, by the name of its model config class (comfy.supported_models),
# longest prefix first; and why they have no concept stream here.
NO_JOINT_ATTENTION = "its text enters by cross-attention only"
NOT_YET = "not yet supported"
ONE_WAY = ("its attention runs one way: the text never sees the image, so no text path carries concepts through "
           "the image")
SUPPORTED = ""
MODEL_NAMES = (
    ("Flux", "Flux.1", SUPPORTED), ("Flux2", "Flux.2", SUPPORTED), ("Chroma", "Chroma", SUPPORTED),
    ("SD15", "SD1.5", NO_JOINT_ATTENTION), ("SD2", "SD2.x", NO_JOINT_ATTENTION),
    ("SDXL", "SDXL", NO_JOINT_ATTENTION), ("SSD1B", "SDXL (SSD-1B)", NO_JOINT_ATTENTION),
    ("Segmind_Vega", "SDXL (Segmind Vega)", NO_JOINT_ATTENTION), ("KOALA", "SDXL (KOALA)", NO_JOINT_ATTENTION),
    ("SVD", "Stable Video Diffusion", NO_JOINT_ATTENTION), ("SV3D", "SV3D", NO_JOINT_ATTENTION),
    ("Stable_Zero123", "Stable Zero123", NO_JOINT_ATTENTION), ("SD_X4", "SD x4 upscaler", NO_JOINT_ATTENTION),
    ("Stable_Cascade", "Stable Cascade", NO_JOINT_ATTENTION), ("PixArt", "PixArt", NO_JOINT_ATTENTION),
    ("HunyuanDiT", "HunyuanDiT", NO_JOINT_ATTENTION), ("LTX", "LTX-Video", NO_JOINT_ATTENTION),
    ("Cosmos", "Cosmos", NO_JOINT_ATTENTION), ("WAN", "Wan", NO_JOINT_ATTENTION),
    ("Kandinsky5", "Kandinsky 5", NO_JOINT_ATTENTION),
    ("Lumina2", "Lumina 2", SUPPORTED), ("ZImage", "Z-Image", SUPPORTED), ("Omnigen2", "OmniGen2", SUPPORTED),
    ("Krea2", "Krea 2", SUPPORTED), ("LongCatImage", "LongCat-Image", SUPPORTED),
    ("ErnieImage", "Ernie-Image", SUPPORTED), ("MageFlow", "Mage-Flow", SUPPORTED), ("Lens", "Lens", SUPPORTED),
    ("Ideogram4", "Ideogram 4", SUPPORTED), ("JoyImage", "JoyImage", SUPPORTED), ("Boogu", "Boogu", SUPPORTED),
    ("PixelDiTT2I", "PixelDiT", SUPPORTED), ("PiD", "PiD", SUPPORTED),
    ("Anima", "Anima", NO_JOINT_ATTENTION),
    ("SD3", "SD3 / SD3.5", SUPPORTED), ("QwenImage", "Qwen-Image", SUPPORTED),
    ("HunyuanVideo15", "HunyuanVideo 1.5", SUPPORTED),
    ("HunyuanVideo", "HunyuanVideo", SUPPORTED), ("HunyuanImage21", "HunyuanImage 2.1", SUPPORTED),
    ("CogVideoX", "CogVideoX", SUPPORTED), ("AuraFlow", "AuraFlow", SUPPORTED), ("GenmoMochi", "Mochi", SUPPORTED),
    ("HiDream", "HiDream", SUPPORTED), ("HiDreamO1", "HiDream-O1", ONE_WAY),
    ("StableAudio", "Stable Audio (an audio model)", NOT_YET),
    ("ACEStep", "ACE-Step (an audio model)", NOT_YET),
)


class UnsupportedModelError(ValueError):
    pass


def model_name(model) -> tuple[str, str]:
    """What users call a MODEL's family, from ComfyUI's model config (not an internal class), and why it
    has no concept stream here."""
    config = getattr(getattr(model, "model", None), "model_config", None)
    config_names = [kind.__name__ for kind in type(config).__mro__] if config is not None else []
    for config_name in config_names:
        matches = [(prefix, name, why) for prefix, name, why in MODEL_NAMES if config_name.startswith(prefix)]
        if matches:
            _, name, why = max(matches, key=lambda match: len(match[0]))
            return name, why
    shown = config_names[0] if config_names else type(model.get_model_object("diffusion_model")).__name__
    return f"this model ({shown})", NOT_YET


def foreign_pack(diffusion_model) -> str | None:
    """The node pack whose class the diffusion model is, where it is not ComfyUI's own (Nunchaku's SVDQuant
    models, for one, run their own transformer in place of ComfyUI's)."""
    module = type(diffusion_model).__module__ or ""
    if module.split(".")[0] in ("comfy", "torch"):
        return None
    return module.replace("\\", "/").split("/")[-1].split(".")[0]


def family_for(model):
    """The family of a ComfyUI MODEL, or an error that names the model's family, says why not and lists
    what is supported."""
    diffusion_model = model.get_model_object("diffusion_model")
    for family in FAMILIES:
        if family.matches(diffusion_model):
            return family
    name, why = model_name(model)
    pack = foreign_pack(diffusion_model)
    if pack is not None:
        raise UnsupportedModelError(
            f"ConceptAttention does not support this {name} model: it was loaded by the {pack!r} node pack, which "
            f"runs its own transformer ({type(diffusion_model).__name__}) in place of ComfyUI's, so the concept "
            "stream cannot reach its joint attention (SVDQuant / Nunchaku models run fused kernels). Load the same "
            "model with ComfyUI's Load Diffusion Model (bf16, fp8 or scaled fp8) or ComfyUI-GGUF's Unet Loader "
            f"(GGUF) instead. Supported: {supported(FAMILIES)}."
        )
    if why == NOT_YET:
        reason = f"ConceptAttention does not support {name} models yet"
    elif why == SUPPORTED:  # the config is a supported family's, the transformer a variant its adapter does not know
        reason = (f"ConceptAttention does not support this {name} model: its transformer is a variant the {name} "
                  "adapter does not know yet")
    else:
        reason = f"{name} has no joint text-image attention, which ConceptAttention reads its maps from: {why}"
    raise UnsupportedModelError(f"{reason}. Supported: {supported(FAMILIES)}. Load one of those (or the demo model).")
