"""Boots a real ComfyUI in-process with this extension, and builds full-width models of each family.

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


# Chroma's real geometry (Flux.1's blocks, modulations from the approximator); only the depth is reduced.
CHROMA = {
    "image_model": "chroma", "in_channels": 64, "out_channels": 64, "patch_size": 2, "context_in_dim": 4096,
    "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 19, "depth_single_blocks": 38,
    "axes_dim": [16, 56, 56], "theta": 10000, "qkv_bias": True, "in_dim": 64, "out_dim": 3072,
    "hidden_dim": 5120, "n_layers": 5, "txt_ids_dims": [], "vec_in_dim": None,
}

# Flux.2 dev's real geometry (ComfyUI's model detection); only the depth is reduced.
FLUX2 = {
    "image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None, "context_in_dim": 15360,
    "hidden_size": 6144, "mlp_ratio": 3.0, "num_heads": 48, "depth": 8, "depth_single_blocks": 48,
    "axes_dim": [32, 32, 32, 32], "theta": 2000, "patch_size": 1, "qkv_bias": False, "guidance_embed": True,
    "txt_ids_dims": [3], "global_modulation": True, "mlp_silu_act": True, "ops_bias": False,
    "default_ref_method": "index", "ref_index_scale": 10.0,
}

# SD3.5 large's real geometry (ComfyUI's model detection: 38 joint blocks, so hidden 64 * 38 and 38 heads);
# MMDiT ties its width to `depth`, so the depth is reduced through `num_blocks`.
SD35_LARGE = {
    "in_channels": 16, "out_channels": 16, "patch_size": 2, "depth": 38, "input_size": None,
    "adm_in_channels": 2048, "pos_embed_max_size": 192, "num_patches": 36864, "pos_embed_scaling_factor": None,
    "qk_norm": "rms", "x_block_self_attn_layers": [],
    "context_embedder_config": {"target": "torch.nn.Linear", "params": {"in_features": 4096, "out_features": 2432}},
    "hidden_size": 2432, "num_heads": 38, "mlp_ratio": 4.0,  # what MMDiT derives; for describe() only
}

# Qwen-Image's real geometry (60 joint blocks, 24 heads of 128, Qwen2.5-VL-7B's 3584-wide context); only the
# depth (num_layers) is reduced.
QWEN_IMAGE = {
    "image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16, "num_layers": 60,
    "attention_head_dim": 128, "num_attention_heads": 24, "joint_attention_dim": 3584, "axes_dims_rope": (16, 56, 56),
    "hidden_size": 3072, "num_heads": 24, "mlp_ratio": 4.0,  # what the model derives; for describe() only
}

# HunyuanVideo T2V's real geometry (ComfyUI's model detection: 20 double + 40 single blocks, 24 heads of 128,
# 1 x 2 x 2 patches, Llama's 4096-wide context, CLIP-L's 768-wide pooled vector, guidance); only the depth is reduced.
HUNYUAN_VIDEO = {
    "image_model": "hunyuan_video", "in_channels": 16, "out_channels": 16, "vec_in_dim": 768, "context_in_dim": 4096,
    "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 20, "depth_single_blocks": 40,
    "axes_dim": [16, 56, 56], "theta": 256, "patch_size": [1, 2, 2], "qkv_bias": True, "guidance_embed": True,
    "byt5": False, "meanflow": False, "use_cond_type_embedding": False, "vision_in_dim": None, "meanflow_sum": False,
}

# CogVideoX 1.0 5B's real geometry (ComfyUI's model detection: 42 joint blocks, 48 heads of 64, time embedding 512,
# T5-XXL's 4096-wide context, 2 x 2 patches of each latent frame, RoPE); only the depth (num_layers) is reduced.
COGVIDEOX_5B = {
    "image_model": "cogvideox", "in_channels": 16, "out_channels": 16, "num_attention_heads": 48,
    "attention_head_dim": 64, "time_embed_dim": 512, "text_embed_dim": 4096, "num_layers": 42, "patch_size": 2,
    "use_rotary_positional_embeddings": True, "use_learned_positional_embeddings": False,
    "hidden_size": 3072, "num_heads": 48, "mlp_ratio": 4.0,  # what the model derives; for describe() only
}

# Z-Image's real geometry (ComfyUI's model detection: 30 single-stream layers of 3840, 30 heads of 128, Qwen3-4B's
# 2560-wide context, captions and images padded to 32 tokens, 2 + 2 refiner layers); only the depth (n_layers) is
# reduced.
Z_IMAGE = {
    "image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 3840, "cap_feat_dim": 2560, "n_layers": 30,
    "n_heads": 30, "n_kv_heads": 30, "qk_norm": True, "axes_dims": [32, 48, 48], "axes_lens": [1536, 512, 512],
    "rope_theta": 256.0, "ffn_dim_multiplier": 8.0 / 3.0, "z_image_modulation": True, "time_scale": 1000.0,
    "pad_tokens_multiple": 32,
    "hidden_size": 3840, "num_heads": 30, "mlp_ratio": 8.0 / 3.0,  # what the model derives; for describe() only
}


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family at its real width: ComfyUI's config class and unet_config, and its inputs' shapes."""

    label: str
    config_class: str  # in comfy.supported_models
    config: dict
    latent_channels: int
    vae_scale: int  # pixels per latent cell
    context_dim: int
    pooled_dim: int | None  # None: no pooled text vector
    frame_stride: int = 0  # video: video frames per latent frame after the first (causal VAE); 0: an image model

    def latent_frames(self, frames: int) -> int:
        """Latent frames of a clip of `frames` video frames: the first alone, then one per frame_stride."""
        return (frames - 1) // self.frame_stride + 1

    def describe(self) -> str:
        c = self.config
        return (f"{self.label} width (hidden {c['hidden_size']}, {c['num_heads']} heads, mlp {c['mlp_ratio']:g}, "
                f"context {self.context_dim}{f', vec {self.pooled_dim}' if self.pooled_dim else ''})")


FAMILIES = {
    "flux1": Family("Flux.1", "Flux", FLUX1, 16, 8, 4096, 768),
    "chroma": Family("Chroma", "Chroma", CHROMA, 16, 8, 4096, None),
    "flux2": Family("Flux.2", "Flux2", FLUX2, 128, 16, 15360, None),
    "sd3": Family("SD3.5 large", "SD3", SD35_LARGE, 16, 8, 4096, 2048),
    "qwen_image": Family("Qwen-Image", "QwenImage", QWEN_IMAGE, 16, 8, 3584, None),
    "hunyuan_video": Family("HunyuanVideo", "HunyuanVideo", HUNYUAN_VIDEO, 16, 8, 4096, 768, frame_stride=4),
    "cogvideox": Family("CogVideoX 5B", "CogVideoX_T2V", COGVIDEOX_5B, 16, 8, 4096, None, frame_stride=4),
    "z_image": Family("Z-Image", "ZImage", Z_IMAGE, 16, 8, 2560, None),
}


@dataclasses.dataclass
class Host:
    """What the benchmark needs from the booted ComfyUI and the loaded extension."""

    pack: ModuleType  # the extension as ComfyUI's loader imported it
    install_module: ModuleType  # <pack>.nodes.stream.install
    step_module: ModuleType  # <pack>.nodes.stream.step
    flux_module: ModuleType  # <pack>.nodes.families.flux
    segment_module: ModuleType  # <pack>.nodes.segment_node
    comfyui_dir: str
    comfyui_version: str


def boot(device: str, gguf: bool = False) -> Host:
    """Start ComfyUI from $CA_COMFYUI_DIR (cpu: --cpu) and load the extension through its loader; with gguf,
    ComfyUI-GGUF from $CA_GGUF_DIR too (scripts/third_party_env.sh gguf exports it)."""
    comfyui_dir = os.environ.get("CA_COMFYUI_DIR")
    if not comfyui_dir:
        raise SystemExit("bench: set CA_COMFYUI_DIR to a ComfyUI work tree (see scripts/host_env.sh 0.8.0)")
    extra = {}
    if gguf:
        pack_dir = os.environ.get("CA_GGUF_DIR")
        if not pack_dir or not Path(pack_dir, "__init__.py").is_file():
            raise SystemExit("bench: GGUF weights need ComfyUI-GGUF: set CA_GGUF_DIR "
                             "(scripts/third_party_env.sh gguf prints it)")
        extra["ComfyUI-GGUF"] = Path(pack_dir)
    pack = comfy_inprocess.boot(comfyui_dir, cpu=device == "cpu", extra_custom_nodes=extra)
    import comfyui_version

    return Host(
        pack=pack,
        install_module=sys.modules[f"{pack.__name__}.nodes.stream.install"],
        step_module=sys.modules[f"{pack.__name__}.nodes.stream.step"],
        flux_module=sys.modules[f"{pack.__name__}.nodes.families.flux"],
        segment_module=sys.modules[f"{pack.__name__}.nodes.segment_node"],
        comfyui_dir=comfyui_dir,
        comfyui_version=comfyui_version.__version__,
    )


def flux_config(depth: int, single: int, base: dict = FLUX1) -> dict:
    from comfy.ldm.flux.model import FluxParams

    config = {**base, "depth": depth, "depth_single_blocks": single}
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        config["txt_ids_dims"] = []
    return config


def family_config(family: Family, depth: int, single: int) -> dict:
    """The family's unet_config at a reduced depth, with only the fields this host's params class knows."""
    import comfy.supported_models

    if not hasattr(comfy.supported_models, family.config_class):
        raise SystemExit(f"bench: ComfyUI here has no {family.label} ({family.config_class}); use a newer host")
    derived = ("hidden_size", "num_heads", "mlp_ratio")
    if family.config_class == "SD3":  # no single blocks; the width stays SD3.5 large's
        return {**{k: v for k, v in family.config.items() if k not in derived}, "num_blocks": depth}
    if family.config_class in ("QwenImage", "CogVideoX_T2V"):  # joint blocks only
        return {**{k: v for k, v in family.config.items() if k not in derived}, "num_layers": depth}
    if family.config_class == "ZImage":  # single-stream layers only
        return {**{k: v for k, v in family.config.items() if k not in derived}, "n_layers": depth}
    config = {**family.config, "depth": depth, "depth_single_blocks": single}
    if family.config_class == "Flux":
        return flux_config(depth, single, family.config)
    params = _params_class(family)
    fields = {f.name for f in dataclasses.fields(params)}
    return {k: v for k, v in config.items() if k in fields or k == "image_model"}


def _params_class(family: Family):
    if family.config_class == "HunyuanVideo":
        from comfy.ldm.hunyuan_video.model import HunyuanVideoParams

        return HunyuanVideoParams
    if family.config_class == "Chroma":
        from comfy.ldm.chroma.model import ChromaParams

        return ChromaParams
    from comfy.ldm.flux.model import FluxParams

    return FluxParams


def build_model(family: Family, depth: int, single: int, device: str, dtype, seed: int = 0, std: float = 0.02,
                weight_dtype=None):
    """A family's real-width model through ComfyUI's own classes, random weights, wrapped in a ModelPatcher.

    ComfyUI builds Flux with uninitialised weights (it expects a state dict), so every parameter
    is drawn here: N(0, std) for weights and 1 + N(0, 0.1) for norm scales. The weights are
    created directly on the target device, so the GPU run never holds a CPU copy.
    weight_dtype (e.g. torch.float8_e4m3fn): weights stored in it and computed in `dtype`, as ComfyUI
    loads an fp8 checkpoint (its manual-cast operations cast each weight as it is used).
    """
    import comfy.model_management
    import comfy.model_patcher
    import comfy.supported_models
    import torch

    model_config = getattr(comfy.supported_models, family.config_class)(family_config(family, depth, single))
    model_config.set_inference_dtype(weight_dtype or dtype, dtype if weight_dtype else None)
    # ComfyUI's own devices (cuda:0 and its offload device), as its model loaders use them
    target = comfy.model_management.get_torch_device() if device == "cuda" else torch.device("cpu")
    offload = comfy.model_management.unet_offload_device() if device == "cuda" else target
    model = model_config.get_model({}, device=target)
    model.diffusion_model.to(target)
    generator = torch.Generator(device=target).manual_seed(seed)
    with torch.no_grad():
        for name, p in model.diffusion_model.named_parameters():
            # RMSNorm scales (q/k norms, Chroma's approximator norms; `.scale` became `.weight` in 0.33)
            drawn = torch.empty(p.shape, device=target, dtype=torch.float32)  # fp8 cannot be drawn into
            scales = (".scale", "query_norm.weight", "key_norm.weight", "ln_q.weight", "ln_k.weight",  # SD3.5
                      "norm_q.weight", "norm_k.weight", "norm_added_q.weight", "norm_added_k.weight",  # Qwen
                      "txt_norm.weight",
                      "attention_norm1.weight", "attention_norm2.weight", "ffn_norm1.weight", "ffn_norm2.weight",
                      "q_norm.weight", "k_norm.weight", "cap_embedder.0.weight")  # NextDiT's (Z-Image)
            if name.endswith(scales) or ".norms." in name:
                drawn.normal_(1.0, 0.1, generator=generator)
            else:
                drawn.normal_(0.0, std, generator=generator)
            p.copy_(drawn)
        if getattr(model.diffusion_model, "pos_embed", None) is not None:  # SD3's position table: a buffer
            model.diffusion_model.pos_embed.normal_(0.0, std, generator=generator)
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=target, offload_device=offload)


def as_gguf(model, qtype_name: str, folder: Path):
    """The model written as a Flux GGUF file of qtype_name (as ComfyUI-GGUF's tools write one) and loaded
    back by ComfyUI-GGUF's Unet Loader (GGUF), as users load GGUF checkpoints; the fp32 model is released."""
    import folder_paths
    import gguf
    import nodes

    sys.path.insert(0, str(REPO / "tests" / "host"))
    from helpers.gguf_files import save_flux_gguf

    state_dict = {k: v.detach().float().cpu() for k, v in model.model.diffusion_model.state_dict().items()}
    del model
    folder.mkdir(parents=True, exist_ok=True)
    name = f"bench_flux_{qtype_name}.gguf"
    save_flux_gguf(state_dict, folder / name, getattr(gguf.GGMLQuantizationType, qtype_name))
    del state_dict
    folder_paths.add_model_folder_path("unet_gguf", str(folder))
    (loaded,) = nodes.NODE_CLASS_MAPPINGS["UnetLoaderGGUF"]().load_unet(name)
    return loaded
