"""Test-only ComfyUI nodes and builders: tiny Flux models, a tiny T5 CLIP and a random VAE,
all made through ComfyUI's own classes (its Flux detection only knows full-size widths)."""

import dataclasses
import inspect
import sys
import types

import comfy.ldm.chroma.model
import comfy.ldm.chroma_radiance.model as chroma_radiance
import comfy.ldm.hunyuan_video.model
import comfy.ldm.wan.vae
import comfy.model_management
import comfy.model_patcher
import comfy.patcher_extension
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.text_encoders.llama
import comfy.text_encoders.pixart_t5
import comfy.text_encoders.qwen_image
import comfy.text_encoders.sd3_clip
import comfy.text_encoders.t5
import torch
from comfy.ldm.flux.model import FluxParams
from comfy.text_encoders.flux import T5XXLTokenizer
from comfy_api.latest import ComfyExtension, io

CONTEXT_DIM = 32
POOLED_DIM = 16


def flux_config(guidance_embed: bool = True, depth: int = 3, single: int = 2, hidden: int = 64,
                heads: int = 4) -> dict:
    head_dim = hidden // heads
    axes = [head_dim - 2 * (head_dim * 3 // 8), head_dim * 3 // 8, head_dim * 3 // 8]
    config = {
        "image_model": "flux", "in_channels": 16, "out_channels": 16, "patch_size": 2,
        "vec_in_dim": POOLED_DIM, "context_in_dim": CONTEXT_DIM, "hidden_size": hidden, "mlp_ratio": 4.0,
        "num_heads": heads, "depth": depth, "depth_single_blocks": single, "axes_dim": axes,
        "theta": 10000, "qkv_bias": True, "guidance_embed": guidance_embed,
    }
    if "txt_ids_dims" in {f.name for f in dataclasses.fields(FluxParams)}:
        config["txt_ids_dims"] = []
    return config


def rms_norm_scale(norm: torch.nn.Module) -> torch.Tensor:
    """Flux's q/k RMSNorm scale: `.scale` before ComfyUI 0.33, a torch RMSNorm's `.weight` from 0.33 on."""
    return norm.scale if hasattr(norm, "scale") else norm.weight


def rms_norm_eps(norm: torch.nn.Module, dtype: torch.dtype) -> float:
    """The RMSNorm's epsilon: 1e-6 before 0.33; from 0.33 torch's default (None: the dtype's eps)."""
    if not hasattr(norm, "eps"):
        return 1e-6
    return norm.eps if norm.eps is not None else torch.finfo(dtype).eps


def _tiny_model(config_class, config: dict, seed: int) -> comfy.model_patcher.ModelPatcher:
    """A model through ComfyUI's own config class, fp32, weights drawn (ComfyUI leaves them empty), on the CPU."""
    model_config = config_class(config)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    _randomise(model.diffusion_model, seed)
    device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def _randomise(module: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if p.ndim == 1 and "norm" in name or name.endswith(".scale"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(std * torch.randn(p.shape, generator=generator))


def tiny_flux(seed: int = 0, guidance_embed: bool = True, **sizes) -> comfy.model_patcher.ModelPatcher:
    """A Flux model (dev-style with guidance, or schnell-style without) at a tiny width, fp32."""
    config_class = comfy.supported_models.Flux if guidance_embed else comfy.supported_models.FluxSchnell
    return _tiny_model(config_class, flux_config(guidance_embed, **sizes), seed)


class TinyT5(comfy.sd1_clip.SDClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        config = {"d_ff": 64, "d_kv": 8, "d_model": CONTEXT_DIM, "num_heads": 4, "num_layers": 2,
                  "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True, "layer_norm_epsilon": 1e-6,
                  "model_type": "t5", "relative_attention_num_buckets": 32, "vocab_size": 32128}
        super().__init__(device=device, layer="last", layer_idx=None, textmodel_json_config=config, dtype=dtype,
                         special_tokens={"end": 1, "pad": 0}, model_class=comfy.text_encoders.t5.T5,
                         model_options={**model_options, "model_name": "t5xxl"})


class TinyT5Model(comfy.sd1_clip.SD1ClipModel):
    """Like FluxClipModel: T5 states as the context plus a pooled vector (here from T5 itself)."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="t5xxl",
                         clip_model=TinyT5)

    def encode_token_weights(self, token_weight_pairs):
        out = super().encode_token_weights(token_weight_pairs)
        return (out[0], out[0].mean(dim=1)[:, :POOLED_DIM], *out[2:])


class TinyT5Tokenizer(comfy.sd1_clip.SD1Tokenizer):
    def __init__(self, embedding_directory=None, tokenizer_data={}):
        super().__init__(embedding_directory=embedding_directory, tokenizer_data=tokenizer_data,
                         clip_name="t5xxl", tokenizer=T5XXLTokenizer)


def tiny_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's CLIP around ComfyUI's T5 (real tokenizer) at a tiny width, fp32."""
    target = comfy.supported_models_base.ClipTarget(TinyT5Tokenizer, TinyT5Model)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def random_vae(seed: int = 2) -> comfy.sd.VAE:
    """ComfyUI's Flux-shaped VAE (16 latent channels, 8x) with random weights."""
    shapes = {"decoder.conv_in.weight": (512, 16, 3, 3), "encoder.down.2.downsample.conv.weight": (512, 512, 3, 3)}
    vae = comfy.sd.VAE(sd={key: torch.zeros(shape) for key, shape in shapes.items()})
    _randomise(vae.first_stage_model, seed, std=0.02)
    return vae


def tiny_chroma(seed: int = 0, radiance: bool = False, depth: int = 2) -> comfy.model_patcher.ModelPatcher:
    """A tiny Chroma (Flux blocks, modulations from the approximator), or Chroma Radiance (pixel space,
    16-pixel patches), through ComfyUI's own classes, fp32."""
    config = {"image_model": "chroma", "in_channels": 64, "out_channels": 64, "context_in_dim": CONTEXT_DIM,
              "hidden_size": 64, "mlp_ratio": 4.0, "num_heads": 4, "depth": depth, "depth_single_blocks": 1,
              "axes_dim": [4, 6, 6], "theta": 10000, "patch_size": 2, "qkv_bias": True,
              "in_dim": 64, "out_dim": 64, "hidden_dim": 64, "n_layers": 1}
    config_class = comfy.supported_models.Chroma
    params = comfy.ldm.chroma.model.ChromaParams
    if radiance:
        config.update({"image_model": "chroma_radiance", "in_channels": 3, "out_channels": 3, "patch_size": 16,
                       "nerf_hidden_size": 16, "nerf_mlp_ratio": 4, "nerf_depth": 2, "nerf_max_freqs": 8,
                       "nerf_tile_size": 512, "nerf_final_head_type": "conv", "nerf_embedder_dtype": torch.float32,
                       "use_x0": False, "use_sequential_txt_ids": False})
        config_class = comfy.supported_models.ChromaRadiance
        params = chroma_radiance.ChromaRadianceParams
    fields = {f.name for f in dataclasses.fields(params)}
    config.update({k: v for k, v in {"txt_ids_dims": [], "vec_in_dim": None}.items() if k in fields})
    config = {k: v for k, v in config.items() if k in fields or k == "image_model"}
    return _tiny_model(config_class, config, seed)


class TinyChromaT5Model(comfy.sd1_clip.SD1ClipModel):
    """Like Chroma's text model: T5 states only, no pooled vector."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="t5xxl",
                         clip_model=TinyT5)


def tiny_chroma_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's CLIP with Chroma's real tokenizer (PixArt's T5: no padding) around a tiny T5, fp32."""
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.pixart_t5.PixArtTokenizer, TinyChromaT5Model)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def tiny_flux2(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny Flux.2 (ComfyUI's Flux with global modulation, 128-channel latents, patch 1, 4 RoPE axes,
    text positions on axis 3) through ComfyUI's own classes, fp32. Hosts from 0.8 on."""
    config = {"image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
              "context_in_dim": CONTEXT_DIM, "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2, "depth": depth,
              "depth_single_blocks": 1, "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1, "qkv_bias": False,
              "guidance_embed": True, "txt_ids_dims": [3], "global_modulation": True, "mlp_silu_act": True,
              "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0}
    return _tiny_model(comfy.supported_models.Flux2, config, seed)


# Flux.2 klein's chat template (ComfyUI 0.33's KleinTokenizer), around the prompt.
KLEIN_TEMPLATE = "<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"


class StandInKleinTokenizer(comfy.sd1_clip.SD1Tokenizer):
    """Flux.2 klein's tokenizer for hosts that lack it (0.8): the Qwen3 tokenizer ComfyUI ships for
    Z-Image, Klein's template, one chunk, right-padded to 512 as klein's."""

    def __init__(self, embedding_directory=None, tokenizer_data={}):
        import comfy.text_encoders.z_image

        class Padded(comfy.text_encoders.z_image.Qwen3Tokenizer):
            def __init__(self, embedding_directory=None, tokenizer_data={}):
                super().__init__(embedding_directory=embedding_directory, tokenizer_data=tokenizer_data)
                self.min_length = 512

        super().__init__(embedding_directory=embedding_directory, tokenizer_data=tokenizer_data, name="qwen3_4b",
                         tokenizer=Padded)

    def tokenize_with_weights(self, text, return_word_ids=False, **kwargs):
        return super().tokenize_with_weights(KLEIN_TEMPLATE.format(text), return_word_ids=return_word_ids,
                                             disable_weights=True, **kwargs)


class TinyQwen3Stand(comfy.sd1_clip.SDClipModel):
    """A tiny stand-in for Flux.2's LLM text encoder (a small T5 over Qwen's vocabulary): real template
    and token ids, tiny width."""

    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        config = {"d_ff": 64, "d_kv": 8, "d_model": CONTEXT_DIM, "num_heads": 4, "num_layers": 2,
                  "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True, "layer_norm_epsilon": 1e-6,
                  "model_type": "t5", "relative_attention_num_buckets": 32, "vocab_size": 151936}
        super().__init__(device=device, layer="last", layer_idx=None, textmodel_json_config=config, dtype=dtype,
                         special_tokens={"pad": 151643}, model_class=comfy.text_encoders.t5.T5,
                         model_options={**model_options, "model_name": "qwen3_4b"})


class TinyFlux2TextModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="qwen3_4b",
                         clip_model=TinyQwen3Stand)


def flux2_tokenizer_class():
    """Klein's real tokenizer where the host has it (0.33), else the stand-in with the same template."""
    import comfy.text_encoders.flux

    return getattr(comfy.text_encoders.flux, "KleinTokenizer", StandInKleinTokenizer)


def tiny_flux2_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's CLIP with Flux.2 klein's tokenizer and chat template around a tiny encoder, fp32."""
    target = comfy.supported_models_base.ClipTarget(flux2_tokenizer_class(), TinyFlux2TextModel)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def random_flux2_vae(seed: int = 2) -> comfy.sd.VAE:
    """ComfyUI's Flux.2-shaped VAE (128 latent channels after its 2x2 batch-norm patching, 16x) with random weights."""
    shapes = {"decoder.conv_in.weight": (512, 32, 3, 3), "encoder.down.2.downsample.conv.weight": (512, 512, 3, 3),
              "post_quant_conv.weight": (32, 32, 1, 1), "bn.running_mean": (128,), "bn.running_var": (128,)}
    sd = {key: torch.zeros(shape) for key, shape in shapes.items()}
    sd["bn.running_var"] = torch.ones(128)
    vae = comfy.sd.VAE(sd=sd)
    _randomise(vae.first_stage_model, seed, std=0.02)
    return vae


def random_wan21_vae(seed: int = 2) -> comfy.sd.VAE:
    """ComfyUI's Wan 2.1 VAE, which Qwen-Image uses (a video VAE: 16 channels, 8x, a batch of images read as
    frames), with random weights: 8 channels wide where the host reads the width from the weights (0.8 on),
    Wan's own 96 before."""
    width = 8 if "decoder.head.0.gamma" in inspect.getsource(comfy.sd.VAE.__init__) else 96
    layout = comfy.ldm.wan.vae.WanVAE(dim=width, z_dim=16, dim_mult=[1, 2, 4, 4], num_res_blocks=2, attn_scales=[],
                                      temperal_downsample=[False, True, True])
    vae = comfy.sd.VAE(sd=layout.state_dict())
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # ComfyUI leaves the weights empty: unit RMS norms, zero biases, fan-in scaled kernels
        for name, p in sorted(vae.first_stage_model.named_parameters()):
            if name.endswith("gamma"):
                p.fill_(1.0)
            elif p.ndim == 1:
                p.zero_()
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)
    return vae

# The families under test: name -> (model, clip) builder at the same tiny geometry (3 double blocks).
FAMILY_MODELS = {
    "flux": lambda seed=3: (tiny_flux(seed), tiny_clip()),
    "chroma": lambda seed=3: (tiny_chroma(seed, depth=3), tiny_chroma_clip()),
    **({"flux2": lambda seed=3: (tiny_flux2(seed), tiny_flux2_clip())}
       if hasattr(comfy.supported_models, "Flux2") else {}),  # Flux.2 exists from ComfyUI 0.8 on
    "sd3": lambda seed=3: (tiny_sd3(seed), tiny_sd3_clip()),
    "qwen_image": lambda seed=3: (tiny_qwen_image(seed), tiny_qwen_image_clip()),
    "hunyuan_video": lambda seed=3: (tiny_hunyuan_video(seed), tiny_clip()),
}


def tiny_lumina2(seed: int = 0) -> comfy.model_patcher.ModelPatcher:
    """A tiny Lumina 2 (NextDiT: one stream of text and image tokens, no joint text-image attention)."""
    config = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 64, "cap_feat_dim": CONTEXT_DIM,
              "n_layers": 1, "n_heads": 4, "n_kv_heads": 2, "qk_norm": True, "axes_dims": [4, 6, 6],
              "axes_lens": [300, 512, 512]}
    return _tiny_model(comfy.supported_models.Lumina2, config, seed)


SD3_CLIP_WIDTH = 16  # each tiny CLIP's width: CLIP-L and CLIP-G side by side make SD3's pooled vector 32 wide
SD3_CONTEXT_DIM = 4096  # ComfyUI's SD3 text encoder pads CLIP-L/G's hidden states to T5-XXL's 4096 channels


def tiny_sd3(seed: int = 0, depth: int = 3, context_dim: int = SD3_CONTEXT_DIM, pooled_dim: int = 2 * SD3_CLIP_WIDTH,
             qk_norm: str | None = None, x_block_self_attn_layers: tuple[int, ...] = ()
             ) -> comfy.model_patcher.ModelPatcher:
    """A tiny SD3 (MMDiT): hidden 64 * depth, depth heads (ComfyUI's rule), the last context block pre_only.
    qk_norm "rms" and x_block_self_attn_layers as SD3.5 large / medium."""
    config = {"in_channels": 16, "patch_size": 2, "out_channels": 16, "depth": depth, "input_size": None,
              "adm_in_channels": pooled_dim, "num_patches": 64 * 64, "pos_embed_max_size": 64,
              "pos_embed_scaling_factor": None, "qk_norm": qk_norm,
              "x_block_self_attn_layers": list(x_block_self_attn_layers),
              "context_embedder_config": {"target": "torch.nn.Linear",
                                          "params": {"in_features": context_dim, "out_features": 64 * depth}}}
    model = _tiny_model(comfy.supported_models.SD3, config, seed)
    with torch.no_grad():  # a buffer, so not drawn with the weights; ComfyUI leaves it empty too
        dm = model.model.diffusion_model
        dm.pos_embed.copy_(0.05 * torch.randn(dm.pos_embed.shape, generator=torch.Generator().manual_seed(seed)))
    return model


def planted_sd3() -> comfy.model_patcher.ModelPatcher:
    """planted() for SD3: every weight zero (so every modulation is zero and streams pass through the blocks
    unchanged), patches embedded so a token's four cells of latent channel 0 are its first four channels,
    identity q/k/v (q four times sharper) and no position embedding."""
    patcher = tiny_sd3(0, depth=2, context_dim=CONTEXT_DIM, pooled_dim=POOLED_DIM)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        dm.pos_embed.zero_()
        for cell in range(4):
            dm.x_embedder.proj.weight[cell, 0, cell // 2, cell % 2] = 1.0
        dm.context_embedder.weight.copy_(torch.eye(hidden, CONTEXT_DIM))
        eye = torch.eye(hidden)
        for block in dm.joint_blocks:
            for stream in (block.context_block, block.x_block):
                stream.attn.qkv.weight.copy_(torch.cat([4.0 * eye, eye, eye]))
    return patcher


TINY_CLIP_CONFIG = {"num_hidden_layers": 3, "hidden_size": SD3_CLIP_WIDTH, "num_attention_heads": 2,
                    "intermediate_size": 32, "hidden_act": "quick_gelu", "max_position_embeddings": 77,
                    "eos_token_id": 49407, "projection_dim": SD3_CLIP_WIDTH, "vocab_size": 49408,
                    "layer_norm_eps": 1e-5, "bos_token_id": 0, "pad_token_id": 1}


class TinySD3Clip(comfy.text_encoders.sd3_clip.SD3ClipModel):
    """ComfyUI's SD3 text encoder (its own encode: CLIP-L/G side by side, padded to 4096, then T5) with tiny
    CLIP-L and CLIP-G built as ComfyUI builds them (penultimate layer, CLIP-G's projected pooled vector), and
    no T5: a 4096-wide T5 would weigh half a gigabyte. TinySD3T5Clip covers the T5 path."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(clip_l=False, clip_g=False, t5=False, device=device, dtype=dtype, model_options=model_options)
        self.clip_l = comfy.sd1_clip.SDClipModel(layer="hidden", layer_idx=-2, device=device, dtype=dtype,
                                                 textmodel_json_config=TINY_CLIP_CONFIG, layer_norm_hidden_state=False,
                                                 return_projected_pooled=False, model_options=model_options)
        self.clip_g = comfy.sd1_clip.SDClipModel(layer="hidden", layer_idx=-2, device=device, dtype=dtype,
                                                 textmodel_json_config=TINY_CLIP_CONFIG,
                                                 special_tokens={"start": 49406, "end": 49407, "pad": 0},
                                                 layer_norm_hidden_state=False, return_projected_pooled=True,
                                                 model_options={**model_options, "model_name": "clip_g"})
        self.dtypes.add(dtype)


class TinySD3T5Clip(comfy.text_encoders.sd3_clip.SD3ClipModel):
    """ComfyUI's SD3 text encoder with a tiny T5 alone (SD3 loaded with only its T5-XXL)."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(clip_l=False, clip_g=False, t5=False, device=device, dtype=dtype, model_options=model_options)
        self.t5xxl = TinyT5(device=device, dtype=dtype, model_options=model_options)
        self.t5_attention_mask = False
        self.dtypes.add(dtype)


def tiny_sd3_clip(seed: int = 1, t5_only: bool = False) -> comfy.sd.CLIP:
    """ComfyUI's SD3 tokenizer (real CLIP-L, CLIP-G and T5 vocabularies) around a tiny SD3 text encoder."""
    encoder = TinySD3T5Clip if t5_only else TinySD3Clip
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.sd3_clip.SD3Tokenizer, encoder)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def tiny_qwen_image(seed: int = 0, depth: int = 3, ref_method: str | None = None) -> comfy.model_patcher.ModelPatcher:
    """A tiny Qwen-Image through ComfyUI's own classes: 4 heads of 16 channels (RoPE axes 4 + 6 + 6), fp32.
    ref_method: Qwen-Image-Edit's reference method where the host knows it (e.g. index_timestep_zero)."""
    config = {"image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16,
              "num_layers": depth, "attention_head_dim": 16, "num_attention_heads": 4,
              "joint_attention_dim": CONTEXT_DIM, "axes_dims_rope": (4, 6, 6)}
    if ref_method is not None:
        config["default_ref_method"] = ref_method
    return _tiny_model(comfy.supported_models.QwenImage, config, seed)


class TinyQwen25VL(comfy.text_encoders.llama.Qwen25_7BVLI):
    """ComfyUI's Qwen2.5-VL language model (its Llama2_ with Qwen2.5's q/k/v biases, causal attention and
    multimodal RoPE) at a tiny width, without the vision tower, which a text prompt never runs (its
    fixed 1280-wide, 32-layer build alone would weigh 2.5 GB)."""

    def __init__(self, config_dict, dtype, device, operations):
        torch.nn.Module.__init__(self)
        config = comfy.text_encoders.llama.Qwen25_7BVLI_Config(
            hidden_size=CONTEXT_DIM, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
            num_key_value_heads=1)
        self.num_layers = config.num_hidden_layers
        self.model = comfy.text_encoders.llama.Llama2_(config, device=device, dtype=dtype, ops=operations)
        self.dtype = dtype


class TinyQwen25(comfy.sd1_clip.SDClipModel):
    """comfy.text_encoders.qwen_image.Qwen25_7BVLIModel's settings, around the tiny language model."""

    def __init__(self, device="cpu", layer="last", layer_idx=None, dtype=None, attention_mask=True,
                 model_options={}):
        super().__init__(device=device, layer=layer, layer_idx=layer_idx, textmodel_json_config={}, dtype=dtype,
                         special_tokens={"pad": 151643}, layer_norm_hidden_state=False, model_class=TinyQwen25VL,
                         enable_attention_masks=attention_mask, return_attention_masks=attention_mask,
                         model_options=model_options)


class TinyQwenImageTextModel(comfy.text_encoders.qwen_image.QwenImageTEModel):
    """ComfyUI's Qwen-Image text encoder (its own template stripping) around the tiny Qwen2.5."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        comfy.sd1_clip.SD1ClipModel.__init__(self, device=device, dtype=dtype, name="qwen25_7b",
                                             clip_model=TinyQwen25, model_options=model_options)


def tiny_qwen_image_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Qwen-Image tokenizer (the shipped Qwen2.5 vocabulary and chat template) and text encoder around
    a tiny Qwen2.5, fp32."""
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.qwen_image.QwenImageTokenizer,
                                                    TinyQwenImageTextModel)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def planted_qwen_image() -> comfy.model_patcher.ModelPatcher:
    """planted() for Qwen-Image. Its text tokens, and so the concepts, sit at RoPE positions s + j on every
    axis, which would turn a content in a fast-rotating channel pair; the contents therefore live in head
    0's channels 2-3, the slowest pair of the frame axis (image tokens at frame 0: no rotation; a concept
    at position p turns by 0.01 p rad). 'left' is e2 - e3 and 'right' e3 - e2: opposite, so each concept
    attends to its own tokens. Every other weight is zero, norm scales aside (q/k four times sharper)."""
    patcher = tiny_qwen_image(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.inner_dim
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        # a token's four cells of latent channel 0 are its features 0-3 (process_img: channel, row, column)
        dm.img_in.weight[2, 0], dm.img_in.weight[2, 2] = 1.0, -1.0
        dm.img_in.weight[3, 1], dm.img_in.weight[3, 3] = 1.0, -1.0
        dm.txt_in.weight[2, 0], dm.txt_in.weight[2, 2] = 1.0, -1.0  # concept 'left' (c0 - c1) -> e2 - e3
        dm.txt_in.weight[3, 1], dm.txt_in.weight[3, 3] = 1.0, -1.0
        dm.txt_norm.weight.fill_(1.0)
        eye = torch.eye(hidden)
        for block in dm.transformer_blocks:
            attn = block.attn
            for layer in (attn.to_q, attn.to_k, attn.to_v, attn.add_q_proj, attn.add_k_proj, attn.add_v_proj):
                layer.weight.copy_(eye)
            for norm in (attn.norm_q, attn.norm_k, attn.norm_added_q, attn.norm_added_k):
                if getattr(norm, "weight", None) is not None:
                    norm.weight.fill_(4.0)
    return patcher


def tiny_hunyuan_video(seed: int = 0, depth: int = 3, guidance_embed: bool = True, pooled: bool = True,
                       config_class=None, **params) -> comfy.model_patcher.ModelPatcher:
    """A tiny HunyuanVideo through ComfyUI's own classes: 4 heads of 16 channels (RoPE axes 4 + 6 + 6 over
    frame, row, column), 3-D patches 1 x 2 x 2, the tiny T5's context and pooled widths, fp32. pooled False:
    no pooled vector (as HunyuanVideo 1.5 and HunyuanImage 2.1); params: other HunyuanVideoParams."""
    config = {"image_model": "hunyuan_video", "in_channels": 16, "out_channels": 16,
              "vec_in_dim": POOLED_DIM if pooled else None, "context_in_dim": CONTEXT_DIM, "hidden_size": 64,
              "mlp_ratio": 4.0, "num_heads": 4, "depth": depth, "depth_single_blocks": 1, "axes_dim": [4, 6, 6],
              "theta": 256, "patch_size": [1, 2, 2], "qkv_bias": True, "guidance_embed": guidance_embed,
              "byt5": False, "meanflow": False, "use_cond_type_embedding": False, "vision_in_dim": None,
              "meanflow_sum": False, **params}
    fields = {f.name for f in dataclasses.fields(comfy.ldm.hunyuan_video.model.HunyuanVideoParams)}
    config = {key: value for key, value in config.items() if key in fields or key == "image_model"}
    return _tiny_model(config_class or comfy.supported_models.HunyuanVideo, config, seed)


def identity_attention(double_blocks, hidden: int) -> None:
    """Flux-style double blocks whose q, k and v are each token itself, q/k norms four times sharper: a token
    attends to the tokens most like it."""
    eye = torch.eye(hidden)
    for block in double_blocks:
        for attn in (block.img_attn, block.txt_attn):
            attn.qkv.weight.copy_(torch.cat([eye, eye, eye]))
            rms_norm_scale(attn.norm.query_norm).fill_(4.0)
            rms_norm_scale(attn.norm.key_norm).fill_(4.0)


def planted_hunyuan_video() -> comfy.model_patcher.ModelPatcher:
    """planted() for HunyuanVideo. Image tokens carry RoPE positions on the frame axis too, so the contents live
    in head 0's channels 2-3, the frame axis's slowest pair (a token of frame f turns by f / 16 rad): 'left' is
    e2 - e3, 'right' e3 - e2, opposite, so each concept attends to its own tokens. The token refiner's blocks
    are zero, so it passes its input projection through. Every other weight is zero, norm scales aside."""
    patcher = tiny_hunyuan_video(0, depth=2, guidance_embed=False)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        # Conv3d over a 1 x 2 x 2 patch of latent channel 0: e2 = c(0,0) - c(1,0), e3 = c(0,1) - c(1,1)
        dm.img_in.proj.weight[2, 0, 0, 0, 0], dm.img_in.proj.weight[2, 0, 0, 1, 0] = 1.0, -1.0
        dm.img_in.proj.weight[3, 0, 0, 0, 1], dm.img_in.proj.weight[3, 0, 0, 1, 1] = 1.0, -1.0
        embed = dm.txt_in.input_embedder.weight  # concept 'left' (c0 - c1) -> e2 - e3
        embed[2, 0], embed[2, 2], embed[3, 1], embed[3, 3] = 1.0, -1.0, 1.0, -1.0
        identity_attention(dm.double_blocks, hidden)
    return patcher


def first_forward_call(model, inputs: dict) -> tuple[tuple, dict]:
    """The arguments the diffusion model's forward receives at the first call of a plain 1-step sampler on
    `inputs` (a forward pre-hook: families whose forward skips the DIFFUSION_MODEL wrapper included)."""
    import nodes

    calls = []

    def record(module, args, kwargs):
        clone = lambda value: value.clone() if isinstance(value, torch.Tensor) else value  # noqa: E731
        calls.append((tuple(clone(a) for a in args), {k: clone(v) for k, v in kwargs.items()}))

    handle = model.get_model_object("diffusion_model").register_forward_pre_hook(record, with_kwargs=True)
    try:
        nodes.common_ksampler(model, inputs["seed"], 1, 1.0, "euler", "simple", inputs["positive"],
                              inputs["negative"], inputs["latent_image"])
    finally:
        handle.remove()
    return calls[0]


def planted_flux() -> comfy.model_patcher.ModelPatcher:
    return planted(tiny_flux(0, guidance_embed=False, depth=2, single=1))


def planted_chroma() -> comfy.model_patcher.ModelPatcher:
    return planted(tiny_chroma(0, depth=2))


def planted(patcher: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
    """A 2-block Flux-style model whose answer is known: image tokens attend only to tokens with the
    same content, and a concept equal to a content attends to exactly those tokens.

    Contents live in head 0's first four channels, which RoPE leaves alone for every token at
    index 0; all modulations are zero (Chroma's approximator too), so streams pass through the
    blocks unchanged.
    """
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        dm.img_in.weight.copy_(torch.eye(hidden, dm.img_in.weight.shape[1]))
        dm.txt_in.weight.copy_(torch.eye(hidden, dm.txt_in.weight.shape[1]))
        identity_attention(dm.double_blocks, hidden)
    return patcher


# CogVideoX's geometry per version: 1.0 2B (sincos positions), 1.0 5B (RoPE), 1.5 5B (RoPE, 2 latent frames per token)
COGVIDEOX_VERSIONS = {
    "1.0-2b": {"use_rotary_positional_embeddings": False},
    "1.0-5b": {"use_rotary_positional_embeddings": True},
    "1.5": {"use_rotary_positional_embeddings": True, "patch_size_t": 2},
}
# the ComfyUI config class (and so the channels the noise is concatenated with) per task
COGVIDEOX_TASKS = {"t2v": "CogVideoX_T2V", "i2v": "CogVideoX_I2V", "inpaint": "CogVideoX_Inpaint"}


def tiny_cogvideox(seed: int = 0, version: str = "1.0-5b", task: str = "t2v", depth: int = 3
                   ) -> comfy.model_patcher.ModelPatcher:
    """A tiny CogVideoX through ComfyUI's own config classes (ComfyUI 0.33 on): 6 heads of 16 channels (width 96:
    1.0's sincos embedding splits it in thirds, the RoPE axes take 4 + 6 + 6), the T5 context CONTEXT_DIM wide,
    fp32. 1.5 image-to-video has the ofs embedding."""
    config_class = getattr(comfy.supported_models, COGVIDEOX_TASKS[task])
    config = {"image_model": "cogvideox", "num_attention_heads": 6, "attention_head_dim": 16, "time_embed_dim": 32,
              "text_embed_dim": CONTEXT_DIM, "num_layers": depth, "patch_size": 2, "sample_height": 16,
              "sample_width": 16, "sample_frames": 17, "use_learned_positional_embeddings": False,
              **config_class.unet_config, **COGVIDEOX_VERSIONS[version]}
    if version == "1.5" and task == "i2v":
        config["ofs_embed_dim"] = 32
    return _tiny_model(config_class, config, seed)


def tiny_cogvideox_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's CogVideoX tokenizer (T5's, padded to 226 tokens) around a tiny T5, fp32."""
    import comfy.text_encoders.cogvideo

    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.cogvideo.CogVideoXTokenizer,
                                                    TinyChromaT5Model)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32})
    _randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


class TinyFluxLoader(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestTinyFlux",
            category="testing",
            inputs=[io.Int.Input("seed", default=0), io.Boolean.Input("guidance_embed", default=True)],
            outputs=[io.Model.Output(), io.Clip.Output(), io.Vae.Output()],
        )

    @classmethod
    def execute(cls, seed, guidance_embed) -> io.NodeOutput:
        return io.NodeOutput(tiny_flux(seed, guidance_embed), tiny_clip(seed + 1), random_vae(seed + 2))


# What CATestKeep received in the prompts run so far, by key; tests clear it. ComfyUI loads this folder
# as a module of its own, apart from the tests' import of it: both share one dict through sys.modules.
KEPT: dict[str, dict] = sys.modules.setdefault("ca_test_kept", types.ModuleType("ca_test_kept")).__dict__.setdefault(
    "kept", {})


class Keep(io.ComfyNode):
    """An output node that keeps what it is given (maps, latents, models, recorders) for the test to read."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestKeep",
            category="testing",
            inputs=[io.String.Input("key"),
                    io.Custom("CONCEPT_MAPS").Input("concept_maps", optional=True),
                    io.Latent.Input("latent", optional=True),
                    io.Model.Input("model", optional=True),
                    io.Custom("CONCEPT_RECORDER").Input("recorder", optional=True)],
            outputs=[],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, key, **kept) -> io.NodeOutput:
        KEPT[key] = kept
        return io.NodeOutput()


class InterruptAtCall(io.ComfyNode):
    """MODEL -> MODEL clone that presses ComfyUI's interrupt on its n-th model call (counted per prompt)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestInterruptAtCall",
            category="testing",
            inputs=[io.Model.Input("model"), io.Int.Input("call", default=2)],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, call) -> io.NodeOutput:
        calls = []

        def interrupting(executor, *args, **kwargs):
            calls.append(1)
            if len(calls) == call:
                comfy.model_management.interrupt_current_processing(True)
                comfy.model_management.throw_exception_if_processing_interrupted()
            return executor(*args, **kwargs)

        patched = model.clone()
        patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "ca_test_interrupt",
                                     interrupting)
        return io.NodeOutput(patched)


class CachedBlock(torch.nn.Module):
    """A Flux block behind a step cache: on a skipped step it returns its input plus the residual it added
    the last time it ran, without running (First Block Cache and TeaCache reuse residuals this way)."""

    def __init__(self, block: torch.nn.Module, cache: "StepCache"):
        super().__init__()
        self.block, self.cache = block, cache
        self.residuals = None

    def __getattr__(self, name):  # transparent: the block's own modules and settings (txt_attn, num_heads, ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("block"), name)

    def forward(self, *args, **kwargs):
        double = "img" in kwargs and "txt" in kwargs
        inputs = (kwargs["img"], kwargs["txt"]) if double else (args[0] if args else kwargs["img"],)
        if self.cache.skipping and self.residuals is not None:
            outputs = tuple(x + r for x, r in zip(inputs, self.residuals, strict=True))
            return outputs if double else outputs[0]
        result = self.block(*args, **kwargs)
        outputs = result if double else (result,)
        self.residuals = tuple(out - x for out, x in zip(outputs, inputs, strict=True))
        return result


class StepCache:
    """Which step the model is on, and whether the cache skips it."""

    def __init__(self, skip_steps: set[int], model_sampling):
        self.skip_steps, self.model_sampling = skip_steps, model_sampling
        self.skipping = False
        self.last_output = None

    def step(self, timestep: torch.Tensor, transformer_options: dict) -> int:
        sigmas = transformer_options.get("sample_sigmas")
        if sigmas is None:
            return 0
        schedule = self.model_sampling.timestep(sigmas).float()
        return int((schedule - float(timestep.flatten()[0])).abs().argmin())


def block_cache(model, skip_steps: set[int], mode: str = "after_first_block"):
    """A clone of a Flux MODEL that skips blocks on the chosen steps, as step-skipping cache packs do:
    after_first_block: block 0 runs, every later double and single block reuses its cached residual
    (First Block Cache); whole_model: the diffusion model is not run at all and the previous step's output
    is returned (TeaCache-style caches at their most aggressive)."""
    patched = model.clone()
    cache = StepCache(set(skip_steps), patched.get_model_object("model_sampling"))

    def wrapper(executor, *args, **kwargs):
        timestep = args[1]
        options = kwargs.get("transformer_options") or next((a for a in args if isinstance(a, dict)), {})
        cache.skipping = cache.step(timestep, options) in cache.skip_steps
        if mode == "whole_model" and cache.skipping and cache.last_output is not None:
            return cache.last_output.clone()
        cache.last_output = executor(*args, **kwargs)
        return cache.last_output

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "ca_test_block_cache", wrapper)
    if mode == "after_first_block":
        dm = patched.get_model_object("diffusion_model")
        for name in ("double_blocks", "single_blocks"):
            for index, block in enumerate(getattr(dm, name)):
                if name == "double_blocks" and index == 0:
                    continue
                patched.add_object_patch(f"diffusion_model.{name}.{index}", CachedBlock(block, cache))
    return patched


class BlockCacheNode(io.ComfyNode):
    """MODEL -> MODEL that skips the blocks on chosen steps (a stand-in for step-skipping cache packs)."""

    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="CATestBlockCache",
            category="testing",
            inputs=[io.Model.Input("model"), io.String.Input("skip_steps", default="1"),
                    io.Combo.Input("mode", options=["after_first_block", "whole_model"])],
            outputs=[io.Model.Output()],
        )

    @classmethod
    def execute(cls, model, skip_steps, mode) -> io.NodeOutput:
        steps = {int(step) for step in skip_steps.split(",") if step.strip()}
        return io.NodeOutput(block_cache(model, steps, mode))


class TestNodes(ComfyExtension):
    async def get_node_list(self):
        return [TinyFluxLoader, Keep, InterruptAtCall, BlockCacheNode]


async def comfy_entrypoint():
    return TestNodes()
