"""Boots a real ComfyUI in-process with this extension, and builds full-width models of each family.

ComfyUI is driven by scripts/comfy_inprocess.py, as in the host tests and the demo: the extension
is loaded through ComfyUI's own loader, so the code measured is the code ComfyUI runs.
"""

import dataclasses
import importlib
import os
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "scripts"))
import comfy_inprocess  # noqa: E402

# Flux.1 dev's real geometry; only the depth is ever reduced. (A host before 0.8 has no txt_ids_dims: the
# params filter drops it there.)
FLUX1 = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2,
    "vec_in_dim": 768, "context_in_dim": 4096, "hidden_size": 3072, "mlp_ratio": 4.0,
    "num_heads": 24, "depth": 19, "depth_single_blocks": 38, "axes_dim": [16, 56, 56],
    "theta": 10000, "qkv_bias": True, "guidance_embed": True, "txt_ids_dims": [],
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


# Krea 2's real geometry (ComfyUI's SingleStreamDiT, whose sizes its model detection reads from the weights: 28
# single-stream blocks of 6144, 48 query heads over 12 key/value heads of 128, a SwiGLU of 16384; its txtfusion
# adapter over 12 tapped Qwen3-VL-4B layers of 2560, given side by side as a 30720-wide context); only the depth
# (layers) is reduced.
KREA2 = {
    "image_model": "krea2", "features": 6144, "tdim": 256, "txtdim": 2560, "heads": 48, "kvheads": 12,
    "multiplier": 4, "layers": 28, "patch": 2, "channels": 16, "theta": 1000, "txtlayers": 12, "txtheads": 20,
    "txtkvheads": 20,
    "hidden_size": 6144, "num_heads": 48, "mlp_ratio": 8.0 / 3.0,  # what the model derives; for describe() only
}

# Ideogram 4's real geometry (ComfyUI's Ideogram4 config: 18 heads of 256, a SwiGLU of 12288, 13 tapped Qwen3-VL-8B
# layers of 4096 concatenated, 53248 wide; Flux.2's 128-channel latent; 34 single-stream layers); only the depth
# (num_layers) is reduced.
IDEOGRAM4 = {
    "image_model": "ideogram4", "in_channels": 128, "num_layers": 34, "num_attention_heads": 18,
    "attention_head_dim": 256, "intermediate_size": 12288, "adaln_dim": 512, "llm_features_dim": 53248,
    "rope_theta": 5000000, "mrope_section": [24, 20, 20], "norm_eps": 1e-5,
    "hidden_size": 4608, "num_heads": 18, "mlp_ratio": 12288 / 4608,  # what the model derives; for describe() only
}

# OmniGen2's real geometry (ComfyUI's model detection: 32 joint layers of 2520, 21 query heads over 7 key/value heads
# of 120, Qwen2.5-VL-3B's 2048-wide context, 2 refiner layers); only the depth (num_layers) is reduced.
OMNIGEN2 = {
    "image_model": "omnigen2", "axes_dim_rope": [40, 40, 40], "axes_lens": [1024, 1664, 1664],
    "ffn_dim_multiplier": None, "hidden_size": 2520, "in_channels": 16, "multiple_of": 256, "norm_eps": 1e-05,
    "num_attention_heads": 21, "num_kv_heads": 7, "num_layers": 32, "num_refiner_layers": 2, "out_channels": None,
    "patch_size": 2, "text_feat_dim": 2048, "timestep_scale": 1000.0,
    "num_heads": 21, "mlp_ratio": 10240 / 2520,  # what the model derives; for describe() only
}

# Ernie-Image's real geometry (ComfyUI's ErnieImageModel, which its model detection builds as is: 36 single-stream
# layers of 4096, 32 heads of 128, a SwiGLU of 12288, Ministral 3 3B's 3072-wide context, Flux.2's 128-channel latent
# in 1 x 1 patches); only the depth (num_layers) is reduced.
ERNIE = {
    "image_model": "ernie", "hidden_size": 4096, "num_attention_heads": 32, "num_layers": 36,
    "ffn_hidden_size": 12288, "in_channels": 128, "out_channels": 128, "patch_size": 1, "text_in_dim": 3072,
    "rope_theta": 256, "rope_axes_dim": (32, 48, 48),
    "num_heads": 32, "mlp_ratio": 3.0,  # what the model derives; for describe() only
}

# LongCat-Image's real geometry (ComfyUI's Flux with LongCat-Image's detection: 10 double + 20 single blocks of 3072,
# 24 heads, Qwen2.5-VL-7B's 3584-wide context, no pooled vector or guidance, text positions on rows and columns);
# only the depth is reduced.
LONGCAT_IMAGE = {
    "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2, "vec_in_dim": None,
    "context_in_dim": 3584, "hidden_size": 3072, "mlp_ratio": 4.0, "num_heads": 24, "depth": 10,
    "depth_single_blocks": 20, "axes_dim": [16, 56, 56], "theta": 10000, "qkv_bias": True, "guidance_embed": False,
    "txt_ids_dims": [1, 2], "yak_mlp": False, "txt_norm": False,
}

# Mage-Flow's real geometry (12 of Qwen-Image's joint blocks, 24 heads of 128, Qwen3-VL-4B's 2560-wide context,
# one-cell tokens over Flux.2's 128-channel latent); only the depth (num_layers) is reduced.
MAGE_FLOW = {
    "image_model": "mage_flow", "in_channels": 128, "out_channels": 128, "num_layers": 12, "attention_head_dim": 128,
    "num_attention_heads": 24, "joint_attention_dim": 2560, "axes_dims_rope": (16, 56, 56),
    "hidden_size": 3072, "num_heads": 24, "mlp_ratio": 4.0,  # what the model derives; for describe() only
}

# AuraFlow v0.3's real geometry (4 double + 32 single layers of 3072, 12 heads of 256, Pile-T5's 2048-wide context,
# SDXL's 4-channel latent, learnt positions over a 96 x 96 grid); only the depth is reduced: n_layers counts both
# kinds, so it follows (aura_flow_layers). Its config has no image_model: MMDiT takes no other keys.
AURA_FLOW = {
    "in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 3072, "n_layers": 36, "n_double_layers": 4,
    "n_heads": 12, "global_conddim": 3072, "cond_seq_dim": 2048, "max_seq": 96 * 96,
    "hidden_size": 3072, "num_heads": 12, "mlp_ratio": 8192 / 3072,  # what the model derives; for describe() only
}

# Lens's real geometry (LensTransformer2DModel: 48 joint blocks of 1536, 24 heads of 64, 4 tapped GPT-OSS-20B layers
# of 2880 side by side, 11520 wide; Flux.2's 128-channel latent, one token a cell); only the depth is reduced.
LENS = {
    "image_model": "lens", "patch_size": 2, "in_channels": 128, "out_channels": 32, "num_layers": 48,
    "attention_head_dim": 64, "num_attention_heads": 24, "enc_hidden_dim": 2880, "axes_dims_rope": (8, 28, 28),
    "multi_layer_encoder_feature": True, "selected_layer_index": (0, 1, 2, 3),
    "hidden_size": 1536, "num_heads": 24, "mlp_ratio": 4096 / 1536,  # what the model derives; for describe() only
}

# JoyAI-Image-Edit's real geometry (40 double blocks of 4096, 32 heads of 128, Qwen3-VL-8B's 4096-wide context,
# 1 x 2 x 2 patches of Wan 2.1's 16-channel latent); only the depth (num_layers) is reduced.
JOYIMAGE = {
    "image_model": "joyimage", "in_channels": 16, "hidden_size": 4096, "patch_size": [1, 2, 2], "num_layers": 40,
    "num_attention_heads": 32, "text_dim": 4096, "theta": 10000, "rope_dim_list": [16, 56, 56],
    "num_heads": 32, "mlp_ratio": 4.0,  # what the model derives; for describe() only
}

# HiDream-I1's real geometry (ComfyUI's model detection: 16 double + 32 single blocks of 2560, 20 heads of 128, a
# mixture of 4 experts (2 active) on the image, T5-XXL's 4096-wide context, CLIP-L and CLIP-G's pooled vectors side by
# side (2048), and Llama 3.1 8B's 32 layers of 4096 in the conditioning, block b reading layer llama_layers[b]); only
# the depth is reduced, llama_layers with it (hidream_llama_layers).
HIDREAM_I1 = {
    "image_model": "hidream", "attention_head_dim": 128, "axes_dims_rope": [64, 32, 32],
    "caption_channels": [4096, 4096], "max_resolution": [128, 128], "in_channels": 16,
    "llama_layers": [*range(32), *[31] * 16], "num_attention_heads": 20, "num_routed_experts": 4,
    "num_activated_experts": 2, "num_layers": 16, "num_single_layers": 32, "out_channels": 16, "patch_size": 2,
    "text_emb_dim": 2048,
    "hidden_size": 2560, "num_heads": 20, "mlp_ratio": 6912 / 2560,  # what the model derives; for describe() only
}
HIDREAM_LLAMA_LAYERS = 32  # Llama 3.1 8B's layers, every one of which the text encoder gives

# Mochi 1 preview's real geometry (ComfyUI's model detection: 48 asymmetric joint blocks, a video stream of 3072 and a
# text stream of 1536, 24 heads of 128, T5-XXL's 4096-wide context, 2 x 2 patches of each of its 12-channel latent
# frames); only the depth is reduced.
MOCHI = {
    "image_model": "mochi_preview", "depth": 48, "patch_size": 2, "num_heads": 24, "hidden_size_x": 3072,
    "hidden_size_y": 1536, "mlp_ratio_x": 4.0, "mlp_ratio_y": 4.0, "learn_sigma": False, "in_channels": 12,
    "qk_norm": True, "qkv_bias": False, "out_bias": True, "attn_drop": 0.0, "patch_embed_bias": True,
    "posenc_preserve_area": True, "timestep_mlp_bias": True, "attend_to_padding": False, "timestep_scale": 1000.0,
    "use_t5": True, "t5_feat_dim": 4096, "t5_token_length": 256, "rope_theta": 10000.0,
    "hidden_size": 3072, "mlp_ratio": 8192 / 3072,  # what the model derives; for describe() only
}

# PixelDiT's real geometry (PixDiT_T2I, which ComfyUI's model detection builds as is: 14 patch blocks of 1536, 24
# heads of 64, then 2 pixel blocks; 16-pixel patches of the image itself, Gemma 2 2B's 2304-wide context); only the
# depth is reduced: `single` counts the pixel blocks.
PIXELDIT = {
    "image_model": "pixeldit_t2i", "in_channels": 3, "num_groups": 24, "hidden_size": 1536, "pixel_hidden_size": 16,
    "pixel_attn_hidden_size": 1152, "pixel_num_groups": 16, "patch_depth": 14, "pixel_depth": 2, "patch_size": 16,
    "txt_embed_dim": 2304, "txt_max_length": 300,
    "num_heads": 24, "mlp_ratio": 4096 / 1536,  # what the model derives; for describe() only
}

# Boogu-Image 0.1's real geometry (BooguTransformer2DModel: 8 double-stream blocks, then 32 OmniGen2 layers, of 3360;
# 28 query heads over 7 key/value heads of 120, Qwen3-VL-8B's 4096-wide context, 2 refiner layers); only the depth is
# reduced.
BOOGU = {
    "image_model": "boogu", "patch_size": 2, "in_channels": 16, "hidden_size": 3360, "num_layers": 32,
    "num_double_stream_layers": 8, "num_refiner_layers": 2, "num_attention_heads": 28, "num_kv_heads": 7,
    "multiple_of": 256, "ffn_dim_multiplier": None, "norm_eps": 1e-5, "axes_dim_rope": (40, 40, 40),
    "axes_lens": (2048, 1664, 1664), "instruction_feat_dim": 4096, "timestep_scale": 1000.0,
    "num_heads": 28, "mlp_ratio": 13568 / 3360,  # what the model derives; for describe() only
}

DERIVED = ("hidden_size", "num_heads", "mlp_ratio")  # describe()'s keys where the model takes none of them


def hidream_llama_layers(depth: int, single: int) -> dict:
    """Each kept block reads the Llama layer it reads in HiDream-I1 (one per block, the last layer beyond 31)."""
    layers = HIDREAM_I1["llama_layers"]
    return {"llama_layers": layers[:depth] + layers[HIDREAM_I1["num_layers"]:][:single]}


def hidream_llama_states(generator, text_tokens: int) -> dict:
    """The Llama states of every layer, [1, layers, tokens, 4096], as CLIPTextEncode passes HiDream's."""
    import torch

    return {"conditioning_llama3": torch.randn(1, HIDREAM_LLAMA_LAYERS, text_tokens, 4096, generator=generator)}


def aura_flow_layers(depth: int, single: int) -> dict:
    return {"n_layers": depth + single}  # AuraFlow counts its double layers within n_layers


def prompt_mask(generator, text_tokens: int) -> dict:
    """The prompt's attention mask, every token valid: the model takes the text's length from it (OmniGen2's and
    Boogu's num_tokens; Mochi's attention pool and its cut of the text)."""
    import torch

    return {"attention_mask": torch.ones(1, text_tokens, dtype=torch.long)}


@dataclasses.dataclass(frozen=True)
class Family:
    """A model family at its real width: ComfyUI's config class and unet_config, its inputs' shapes, and how its
    depth is reduced."""

    label: str
    config_class: str  # in comfy.supported_models
    config: dict
    latent_channels: int
    vae_scale: int  # pixels per latent cell
    context_dim: int
    pooled_dim: int | None  # None: no pooled text vector
    frame_stride: int = 0  # video: video frames per latent frame after the first (causal VAE); 0: an image model
    depth_key: str = "depth"  # the unet_config key of the joint (double) block count
    # the key of the single block count; None: no single blocks, or no key of their own (follows_depth's)
    single_key: str | None = "depth_single_blocks"
    # keys dropped from the unet_config: those describe() alone reads, where the model takes none of them
    derived: tuple[str, ...] = ()
    # "module:Class" whose fields are the unet_config keys this host knows (the others dropped); None: all kept
    params_class: str | None = None
    # (depth, single) -> unet_config keys that follow the block counts (AuraFlow's n_layers, HiDream's llama_layers)
    follows_depth: Callable[[int, int], dict] | None = None
    # (torch.Generator, text tokens) -> what the conditioning carries beside the text states and the pooled vector
    # (HiDream's Llama states, the prompt's attention mask), merged into both prompts' dicts; None: nothing
    conditioning: Callable[[object, int], dict] | None = None
    norm_centre: float = 1.0  # norm scales are drawn around it: 0 where the norm adds 1 itself (Krea 2's)
    # (joint, single) blocks of the family table (bench/run.py --all-families): one joint block, the single blocks
    # in the family's own proportion up to 2 (fewer single blocks only raise the stream's share)
    bench_depth: tuple[int, int] = (1, 0)

    def latent_frames(self, frames: int) -> int:
        """Latent frames of a clip of `frames` video frames: the first alone, then one per frame_stride."""
        return (frames - 1) // self.frame_stride + 1

    def extra_conditioning(self, generator, text_tokens: int) -> dict:
        """What both prompts carry beside the text states and the pooled vector (empty for most families)."""
        return self.conditioning(generator, text_tokens) if self.conditioning else {}

    def describe(self) -> str:
        c = self.config
        return (f"{self.label} width (hidden {c['hidden_size']}, {c['num_heads']} heads, mlp {c['mlp_ratio']:g}, "
                f"context {self.context_dim}{f', vec {self.pooled_dim}' if self.pooled_dim else ''})")


FLUX_PARAMS = "comfy.ldm.flux.model:FluxParams"
JOINT_ONLY = {"single_key": None, "derived": DERIVED}  # joint blocks alone; describe()'s keys dropped

FAMILIES = {
    "flux1": Family("Flux.1", "Flux", FLUX1, 16, 8, 4096, 768, params_class=FLUX_PARAMS, bench_depth=(1, 2)),
    "chroma": Family("Chroma", "Chroma", CHROMA, 16, 8, 4096, None, params_class="comfy.ldm.chroma.model:ChromaParams",
                     bench_depth=(1, 2)),
    "flux2": Family("Flux.2", "Flux2", FLUX2, 128, 16, 15360, None, params_class=FLUX_PARAMS, bench_depth=(1, 2)),
    "sd3": Family("SD3.5 large", "SD3", SD35_LARGE, 16, 8, 4096, 2048, depth_key="num_blocks", **JOINT_ONLY),
    "qwen_image": Family("Qwen-Image", "QwenImage", QWEN_IMAGE, 16, 8, 3584, None, depth_key="num_layers", **JOINT_ONLY),
    "hunyuan_video": Family("HunyuanVideo", "HunyuanVideo", HUNYUAN_VIDEO, 16, 8, 4096, 768, frame_stride=4,
                            params_class="comfy.ldm.hunyuan_video.model:HunyuanVideoParams", bench_depth=(1, 2)),
    "cogvideox": Family("CogVideoX 5B", "CogVideoX_T2V", COGVIDEOX_5B, 16, 8, 4096, None, frame_stride=4,
                        depth_key="num_layers", **JOINT_ONLY),
    "z_image": Family("Z-Image", "ZImage", Z_IMAGE, 16, 8, 2560, None, depth_key="n_layers", **JOINT_ONLY),
    "krea2": Family("Krea 2", "Krea2", KREA2, 16, 8, 12 * 2560, None, depth_key="layers", norm_centre=0.0,
                    **JOINT_ONLY),
    "ideogram4": Family("Ideogram 4", "Ideogram4", IDEOGRAM4, 128, 16, 13 * 4096, None, depth_key="num_layers",
                        **JOINT_ONLY),
    "omnigen2": Family("OmniGen2", "Omnigen2", OMNIGEN2, 16, 8, 2048, None, depth_key="num_layers", single_key=None,
                       derived=("num_heads", "mlp_ratio"), conditioning=prompt_mask),
    "ernie": Family("Ernie-Image", "ErnieImage", ERNIE, 128, 16, 3072, None, depth_key="num_layers", single_key=None,
                    derived=("num_heads", "mlp_ratio")),
    "longcat_image": Family("LongCat-Image", "LongCatImage", LONGCAT_IMAGE, 16, 8, 3584, None,
                            params_class=FLUX_PARAMS, bench_depth=(1, 2)),
    "mage_flow": Family("Mage-Flow", "MageFlow", MAGE_FLOW, 128, 16, 2560, None, depth_key="num_layers",
                        **JOINT_ONLY),
    "aura_flow": Family("AuraFlow v0.3", "AuraFlow", AURA_FLOW, 4, 8, 2048, None, depth_key="n_double_layers",
                        follows_depth=aura_flow_layers, **JOINT_ONLY, bench_depth=(1, 2)),
    "lens": Family("Lens", "Lens", LENS, 128, 16, 4 * 2880, None, depth_key="num_layers", **JOINT_ONLY),
    "joyimage": Family("JoyAI-Image-Edit", "JoyImage", JOYIMAGE, 16, 8, 4096, None, depth_key="num_layers",
                       single_key=None, derived=("num_heads", "mlp_ratio")),
    "hidream": Family("HiDream-I1", "HiDream", HIDREAM_I1, 16, 8, 4096, 2048, depth_key="num_layers",
                      single_key="num_single_layers", derived=DERIVED, follows_depth=hidream_llama_layers,
                      conditioning=hidream_llama_states, bench_depth=(1, 2)),
    "mochi": Family("Mochi 1", "GenmoMochi", MOCHI, 12, 8, 4096, None, frame_stride=6, single_key=None,
                    derived=("hidden_size", "mlp_ratio"), conditioning=prompt_mask),
    "pixeldit": Family("PixelDiT", "PixelDiTT2I", PIXELDIT, 3, 1, 2304, None, depth_key="patch_depth",
                       single_key="pixel_depth", derived=("num_heads", "mlp_ratio"), bench_depth=(1, 1)),
    "boogu": Family("Boogu-Image", "Boogu", BOOGU, 16, 8, 4096, None, depth_key="num_double_stream_layers",
                    single_key="num_layers", derived=("num_heads", "mlp_ratio"), conditioning=prompt_mask,
                    bench_depth=(1, 2)),
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


def family_config(family: Family, depth: int, single: int) -> dict:
    """The family's unet_config at a reduced depth, with only the fields this host's params class knows."""
    import comfy.supported_models

    if not hasattr(comfy.supported_models, family.config_class):
        raise SystemExit(f"bench: ComfyUI here has no {family.label} ({family.config_class}); use a newer host")
    config = {k: v for k, v in family.config.items() if k not in family.derived}
    config[family.depth_key] = depth
    if family.single_key is not None:
        config[family.single_key] = single
    if family.follows_depth is not None:
        config.update(family.follows_depth(depth, single))
    if family.params_class is None:
        return config
    module, name = family.params_class.split(":")
    fields = {f.name for f in dataclasses.fields(getattr(importlib.import_module(module), name))}
    return {k: v for k, v in config.items() if k in fields or k == "image_model"}


# norm scales named in the first families (q/k norms, Chroma's approximator norms; `.scale` became `.weight` in
# 0.33), NextDiT's caption RMSNorm (Z-Image's cap_embedder.0, OmniGen2's caption_embedder.0) and Ernie-Image's
# adaLN_*_ln RMSNorms, whose names say no "norm"
NORM_SCALE_NAMES = (".scale", "query_norm.weight", "key_norm.weight", "ln_q.weight", "ln_k.weight",  # SD3.5
                    "norm_q.weight", "norm_k.weight", "norm_added_q.weight", "norm_added_k.weight",  # Qwen
                    "txt_norm.weight",
                    "attention_norm1.weight", "attention_norm2.weight", "ffn_norm1.weight", "ffn_norm2.weight",
                    "q_norm.weight", "k_norm.weight", "cap_embedder.0.weight",  # NextDiT's (Z-Image)
                    "caption_embedder.0.weight", "_ln.weight")


def is_norm_scale(name: str, parameter) -> bool:
    """A norm's scale: a name in NORM_SCALE_NAMES, or any 1-D weight of a module named as a norm, as every RMSNorm
    and LayerNorm of the families is."""
    if name.endswith(NORM_SCALE_NAMES) or ".norms." in name:
        return True
    return parameter.ndim == 1 and "norm" in name and name.endswith(".weight")


def build_model(family: Family, depth: int, single: int, device: str, dtype, seed: int = 0, std: float = 0.02,
                weight_dtype=None):
    """A family's real-width model through ComfyUI's own classes, random weights, wrapped in a ModelPatcher.

    ComfyUI builds Flux with uninitialised weights (it expects a state dict), so every parameter
    is drawn here: N(0, std) for weights and 1 + N(0, 0.1) for norm scales (N(0, 0.1) where the
    norm adds the 1 itself). The weights are created directly on the target device, so the GPU
    run never holds a CPU copy.
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
            drawn = torch.empty(p.shape, device=target, dtype=torch.float32)  # fp8 cannot be drawn into
            if is_norm_scale(name, p):
                drawn.normal_(family.norm_centre, 0.1, generator=generator)
            else:
                drawn.normal_(0.0, std, generator=generator)
            p.copy_(drawn)
        pos_embed = getattr(model.diffusion_model, "pos_embed", None)
        if isinstance(pos_embed, torch.Tensor):  # SD3's position table: a buffer (Ernie's and Lens's are RoPE modules)
            pos_embed.copy_(torch.empty(pos_embed.shape, device=target).normal_(0.0, std, generator=generator))
    model.eval()
    return comfy.model_patcher.ModelPatcher(model, load_device=target, offload_device=offload)


def as_gguf(model, qtype_name: str, folder: Path, model_config=None):
    """The model written as a GGUF file of qtype_name (as ComfyUI-GGUF's tools write one) and loaded back by
    ComfyUI-GGUF's Unet Loader (GGUF), as users load GGUF checkpoints; the fp32 model is released. Every family's
    file says arch "flux": ComfyUI-GGUF only checks the name against its list of image models, and the rules of
    which tensors stay F16 are Flux's for every family. model_config: the family's own config at the benchmark's
    depth, which ComfyUI's detection from the keys is given as its answer (it cannot size every reduced model: a
    one-block SD3.5 large would be read as all 38 blocks, a one-block PixelDiT as no model)."""
    import comfy.model_detection
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
    detect = comfy.model_detection.model_config_from_unet
    if model_config is not None:
        comfy.model_detection.model_config_from_unet = lambda *args, **kwargs: model_config
    try:
        (loaded,) = nodes.NODE_CLASS_MAPPINGS["UnetLoaderGGUF"]().load_unet(name)
    finally:
        comfy.model_detection.model_config_from_unet = detect
    return loaded
