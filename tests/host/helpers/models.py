"""Tiny models, text encoders and VAEs of every supported family, built through ComfyUI's own classes (its model
detection only knows full-size widths), fp32, on the CPU, with drawn weights."""

import dataclasses
import inspect

import comfy.ldm.chroma.model
import comfy.ldm.chroma_radiance.model as chroma_radiance
import comfy.ldm.hunyuan_video.model
import comfy.ldm.wan.vae
import comfy.model_patcher
import comfy.sd
import comfy.sd1_clip
import comfy.supported_models
import comfy.supported_models_base
import comfy.text_encoders.aura_t5
import comfy.text_encoders.hidream
import comfy.text_encoders.hunyuan_video
import comfy.text_encoders.llama
import comfy.text_encoders.pixart_t5
import comfy.text_encoders.qwen_image
import comfy.text_encoders.sd3_clip
import comfy.text_encoders.t5
import torch
from comfy.ldm.flux.model import FluxParams
from comfy.text_encoders.flux import T5XXLTokenizer

CONTEXT_DIM = 32
POOLED_DIM = 16


# the tiny T5 every stand-in text encoder here is built on (its vocabulary the one its tokenizer needs)
TINY_T5_CONFIG = {"d_ff": 64, "d_kv": 8, "d_model": CONTEXT_DIM, "num_heads": 4, "num_layers": 2,
                  "dense_act_fn": "gelu_pytorch_tanh", "is_gated_act": True, "layer_norm_epsilon": 1e-6,
                  "model_type": "t5", "relative_attention_num_buckets": 32}


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


def tiny_model(config_class, config: dict, seed: int) -> comfy.model_patcher.ModelPatcher:
    """A model through ComfyUI's own config class, fp32, weights drawn (ComfyUI leaves them empty), on the CPU."""
    model_config = config_class(config)
    model_config.set_inference_dtype(torch.float32, None)
    model = model_config.get_model({})
    randomise(model.diffusion_model, seed)
    device = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=device, offload_device=device)


def randomise(module: torch.nn.Module, seed: int, std: float = 0.05) -> None:
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(module.named_parameters()):
            if p.ndim == 1 and "norm" in name or name.endswith(".scale"):
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=generator))
            else:
                p.copy_(std * torch.randn(p.shape, generator=generator))



def clip_of(tokenizer, text_model, seed: int) -> comfy.sd.CLIP:
    """A CLIP of ComfyUI's tokenizer class around a tiny text model, fp32, with drawn weights."""
    clip = comfy.sd.CLIP(target=comfy.supported_models_base.ClipTarget(tokenizer, text_model),
                         model_options={"dtype": torch.float32})
    randomise(clip.cond_stage_model, seed, std=0.5)
    return clip

def tiny_flux(seed: int = 0, guidance_embed: bool = True, **sizes) -> comfy.model_patcher.ModelPatcher:
    """A Flux model (dev-style with guidance, or schnell-style without) at a tiny width, fp32."""
    config_class = comfy.supported_models.Flux if guidance_embed else comfy.supported_models.FluxSchnell
    return tiny_model(config_class, flux_config(guidance_embed, **sizes), seed)


class TinyT5(comfy.sd1_clip.SDClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        config = {**TINY_T5_CONFIG, "vocab_size": 32128}
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
    return clip_of(TinyT5Tokenizer, TinyT5Model, seed)


def random_vae(seed: int = 2, channels: int = 16) -> comfy.sd.VAE:
    """ComfyUI's Flux-shaped VAE (16 latent channels, 8x) with random weights; channels=4: SDXL's (AuraFlow's)."""
    shapes = {"decoder.conv_in.weight": (512, channels, 3, 3),
              "encoder.down.2.downsample.conv.weight": (512, 512, 3, 3)}
    vae = comfy.sd.VAE(sd={key: torch.zeros(shape) for key, shape in shapes.items()})
    randomise(vae.first_stage_model, seed, std=0.02)
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
    return tiny_model(config_class, config, seed)


class TinyChromaT5Model(comfy.sd1_clip.SD1ClipModel):
    """Like Chroma's text model: T5 states only, no pooled vector."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="t5xxl",
                         clip_model=TinyT5)


def tiny_chroma_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's CLIP with Chroma's real tokenizer (PixArt's T5: no padding) around a tiny T5, fp32."""
    return clip_of(comfy.text_encoders.pixart_t5.PixArtTokenizer, TinyChromaT5Model, seed)


def tiny_flux2(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny Flux.2 (ComfyUI's Flux with global modulation, 128-channel latents, patch 1, 4 RoPE axes,
    text positions on axis 3) through ComfyUI's own classes, fp32. Hosts from 0.8 on."""
    config = {"image_model": "flux2", "in_channels": 128, "out_channels": 128, "vec_in_dim": None,
              "context_in_dim": CONTEXT_DIM, "hidden_size": 64, "mlp_ratio": 3.0, "num_heads": 2, "depth": depth,
              "depth_single_blocks": 1, "axes_dim": [8, 8, 8, 8], "theta": 2000, "patch_size": 1, "qkv_bias": False,
              "guidance_embed": True, "txt_ids_dims": [3], "global_modulation": True, "mlp_silu_act": True,
              "ops_bias": False, "default_ref_method": "index", "ref_index_scale": 10.0}
    return tiny_model(comfy.supported_models.Flux2, config, seed)


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
        config = {**TINY_T5_CONFIG, "vocab_size": 151936}
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
    randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def random_flux2_vae(seed: int = 2) -> comfy.sd.VAE:
    """ComfyUI's Flux.2-shaped VAE (128 latent channels after its 2x2 batch-norm patching, 16x) with random weights."""
    shapes = {"decoder.conv_in.weight": (512, 32, 3, 3), "encoder.down.2.downsample.conv.weight": (512, 512, 3, 3),
              "post_quant_conv.weight": (32, 32, 1, 1), "bn.running_mean": (128,), "bn.running_var": (128,)}
    sd = {key: torch.zeros(shape) for key, shape in shapes.items()}
    sd["bn.running_var"] = torch.ones(128)
    vae = comfy.sd.VAE(sd=sd)
    randomise(vae.first_stage_model, seed, std=0.02)
    return vae


def pixel_space_vae() -> comfy.sd.VAE:
    """ComfyUI's pixel-space VAE (what Chroma Radiance loads): the latent is the image."""
    return comfy.sd.VAE(sd={"pixel_space_vae": torch.tensor(1.0)})


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

def next_dit_config(config: dict) -> dict:
    """A NextDiT config with only the settings this host's NextDiT takes (rope_theta, Z-Image's settings: 0.8 on)."""
    import comfy.ldm.lumina.model

    taken = inspect.signature(comfy.ldm.lumina.model.NextDiT.__init__).parameters
    return {key: value for key, value in config.items() if key in taken or key == "image_model"}


def tiny_lumina2(seed: int = 0, depth: int = 3, clip_text_dim: int | None = None) -> comfy.model_patcher.ModelPatcher:
    """A tiny Lumina 2 (NextDiT: one stream of text and image tokens with shared weights) through ComfyUI's own
    classes: 4 query heads over 2 grouped key/value heads of 16 channels (RoPE axes 4 + 6 + 6), fp32. clip_text_dim:
    NewBie's pooled CLIP vector in the modulation (ComfyUI 0.8 on)."""
    config = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 64, "cap_feat_dim": CONTEXT_DIM,
              "n_layers": depth, "n_heads": 4, "n_kv_heads": 2, "qk_norm": True, "axes_dims": [4, 6, 6],
              "axes_lens": [300, 512, 512], "rope_theta": 10000.0, "ffn_dim_multiplier": 4.0, "multiple_of": 16,
              "clip_text_dim": clip_text_dim}
    return tiny_model(comfy.supported_models.Lumina2, next_dit_config(config), seed)


Z_IMAGE_VERSIONS = ("turbo", "pixel-space")


def tiny_z_image(seed: int = 0, depth: int = 3, version: str = "turbo", rope_theta: float = 256.0
                 ) -> comfy.model_patcher.ModelPatcher:
    """A tiny Z-Image (ComfyUI 0.8 on; Turbo and Base share one architecture) through ComfyUI's own classes: 8 heads
    of 32 channels (its modulation is 256 wide, so the model is too; RoPE axes 8 + 12 + 12), captions and images
    padded to multiples of 32 tokens with learned pad tokens, fp32. "pixel-space": Z-Image's pixel-space variant
    (ComfyUI 0.33 on), 3-channel images in 16-pixel patches through a small decoder."""
    config = {"image_model": "lumina2", "patch_size": 2, "in_channels": 16, "dim": 256, "cap_feat_dim": CONTEXT_DIM,
              "n_layers": depth, "n_heads": 8, "n_kv_heads": 8, "qk_norm": True, "axes_dims": [8, 12, 12],
              "axes_lens": [1536, 512, 512], "rope_theta": rope_theta, "ffn_dim_multiplier": 8.0 / 3.0,
              "multiple_of": 32, "z_image_modulation": True, "time_scale": 1000.0, "pad_tokens_multiple": 32}
    config_class = comfy.supported_models.ZImage
    if version == "pixel-space":
        config.update({"image_model": "zimage_pixel", "patch_size": 16, "in_channels": 3,
                       "decoder_hidden_size": 32, "decoder_num_res_blocks": 1, "decoder_in_channels": 16 * 16 * 3})
        config_class = comfy.supported_models.ZImagePixelSpace
        return tiny_model(config_class, config, seed)
    return tiny_model(config_class, next_dit_config(config), seed)


def tiny_z_image_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Z-Image tokenizer (the shipped Qwen3 vocabulary and Z-Image's chat template) around a tiny
    encoder over Qwen's vocabulary (the one Flux.2 klein's tests use), fp32."""
    import comfy.text_encoders.z_image

    return clip_of(comfy.text_encoders.z_image.ZImageTokenizer, TinyFlux2TextModel, seed)


class TinyGemmaStand(comfy.sd1_clip.SDClipModel):
    """A tiny T5 standing in for Lumina 2's Gemma 2 encoder: Gemma's start and pad tokens, its attention mask (ComfyUI
    before 0.8 takes the caption's length from it)."""

    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        config = {**TINY_T5_CONFIG, "vocab_size": 256}
        super().__init__(device=device, layer="last", layer_idx=None, textmodel_json_config=config, dtype=dtype,
                         special_tokens={"start": 2, "pad": 0}, model_class=comfy.text_encoders.t5.T5,
                         enable_attention_masks=True, return_attention_masks=True,
                         model_options={**model_options, "model_name": "gemma2_2b"})


class TinyLumina2TextModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="gemma2_2b",
                         clip_model=TinyGemmaStand)


# the words the Lumina 2 stand-in's tokenizer knows, one piece each
GEMMA_STAND_IN_WORDS = ("a red dog on green grass blurry traffic light sky cat sofa window background left right x "
                        "the").split()


def gemma_stand_in_tokenizer(words: tuple[str, ...] | list[str] = GEMMA_STAND_IN_WORDS) -> bytes:
    """A SentencePiece model in Gemma's layout (pad 0, end 1, start 2, unknown 3), trained here on a few words:
    ComfyUI's Lumina 2 tokenizer reads Gemma 2's own model from the checkpoint's weights, which are not at hand."""
    import io

    import sentencepiece

    words = list(dict.fromkeys(words))
    lines = [" ".join(words[i:] + words[:i]) for i in range(len(words))]
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(sentence_iterator=iter(lines * 20), model_writer=model,
                                             vocab_size=len(words) + 4, model_type="word", pad_id=0,
                                             eos_id=1, bos_id=2, unk_id=3, minloglevel=2)
    return model.getvalue()


def tiny_lumina2_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Lumina 2 tokenizer (its Gemma 2 tokenizer class: the start token, no end token, no padding) over a
    stand-in SentencePiece model, around a tiny encoder, fp32."""
    import comfy.text_encoders.lumina2

    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.lumina2.LuminaTokenizer, TinyLumina2TextModel)
    clip = comfy.sd.CLIP(target=target, tokenizer_data={"spiece_model": gemma_stand_in_tokenizer()},
                         model_options={"dtype": torch.float32})
    randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def tiny_krea2(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny Krea 2 (ComfyUI 0.33 on) through ComfyUI's own classes: 4 query heads over 2 grouped key/value heads of
    16 channels (RoPE axes 4 + 6 + 6), a text adapter over 2 tapped layers of 16 channels (the real model taps 12 of
    2560: the tiny context is CONTEXT_DIM = 2 x 16 wide), fp32."""
    config = {"image_model": "krea2", "features": 64, "tdim": 32, "txtdim": CONTEXT_DIM // 2, "heads": 4,
              "kvheads": 2, "multiplier": 2, "layers": depth, "patch": 2, "channels": 16, "theta": 1000,
              "txtlayers": 2, "txtheads": 2, "txtkvheads": 2}
    return tiny_model(comfy.supported_models.Krea2, config, seed)


class TinyKrea2Stand(TinyQwen3Stand):
    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        super().__init__(device=device, dtype=dtype, model_options=model_options)


class TinyKrea2TextModel(comfy.sd1_clip.SD1ClipModel):
    """Krea 2's text encoder around the tiny encoder over Qwen's vocabulary: the template's head (system prompt and
    "<|im_start|>user\n") dropped as ComfyUI's Krea2TEModel drops it."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="qwen3vl_4b",
                         clip_model=TinyKrea2Stand)

    def encode_token_weights(self, token_weight_pairs):
        out, pooled, *extra = super().encode_token_weights(token_weight_pairs)
        ids = [t[0] for t in token_weight_pairs["qwen3vl_4b"][0]]
        starts = [i for i, token in enumerate(ids) if token == 151644][:2]
        head = starts[-1] + 3 if len(starts) == 2 and ids[starts[-1] + 1:starts[-1] + 3] == [872, 198] else 0
        return (out[:, head:], pooled, *extra)


def tiny_krea2_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Krea 2 tokenizer (the shipped Qwen vocabulary and Krea 2's template) around the tiny encoder, fp32."""
    import comfy.text_encoders.krea2

    return clip_of(comfy.text_encoders.krea2.Krea2Tokenizer, TinyKrea2TextModel, seed)


def tiny_ideogram4(seed: int = 0, depth: int = 3, rope_theta: float = 10000.0) -> comfy.model_patcher.ModelPatcher:
    """A tiny Ideogram 4 (ComfyUI 0.33 on) through ComfyUI's own classes: 4 heads of 16 channels, Qwen3-VL's
    interleaved multimodal RoPE over 4 + 2 + 2 pairs, the tiny context CONTEXT_DIM wide (the real model
    concatenates 13 tapped layers of 4096), Flux.2's 128-channel latent, fp32."""
    config = {"image_model": "ideogram4", "in_channels": 128, "num_layers": depth, "num_attention_heads": 4,
              "attention_head_dim": 16, "intermediate_size": 128, "adaln_dim": 32, "llm_features_dim": CONTEXT_DIM,
              "rope_theta": rope_theta, "mrope_section": [4, 2, 2], "norm_eps": 1e-5}

    class TinyIdeogram4(comfy.supported_models.Ideogram4):
        unet_extra_config = {}  # the real model's sizes, which ComfyUI's config class would put over the tiny ones

    return tiny_model(TinyIdeogram4, config, seed)


class TinyIdeogram4Stand(TinyQwen3Stand):
    pass


class TinyIdeogram4TextModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="qwen3vl_8b",
                         clip_model=TinyIdeogram4Stand)


def tiny_ideogram4_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Ideogram 4 tokenizer (the shipped Qwen vocabulary and its chat template, kept whole by the encoder)
    around the tiny encoder over Qwen's vocabulary, fp32."""
    import comfy.text_encoders.ideogram4

    return clip_of(comfy.text_encoders.ideogram4.Ideogram4Tokenizer, TinyIdeogram4TextModel, seed)


def tiny_omnigen2(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny OmniGen2 through ComfyUI's own classes: 4 query heads over 2 grouped key/value heads of 16 channels (RoPE
    axes 4 + 6 + 6), the tiny context CONTEXT_DIM wide, fp32."""
    config = {"image_model": "omnigen2", "patch_size": 2, "in_channels": 16, "hidden_size": 64, "num_layers": depth,
              "num_refiner_layers": 2, "num_attention_heads": 4, "num_kv_heads": 2, "multiple_of": 16,
              "axes_dim_rope": [4, 6, 6], "axes_lens": [300, 512, 512], "text_feat_dim": CONTEXT_DIM}
    return tiny_model(comfy.supported_models.Omnigen2, config, seed)


class TinyOmniGen2Stand(TinyQwen3Stand):
    """Returns its attention mask, as OmniGen2's Qwen2.5-VL encoder does (the model takes the caption's length
    from it)."""

    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        super().__init__(device=device, dtype=dtype, model_options=model_options)
        self.enable_attention_masks = self.return_attention_masks = True


class TinyOmniGen2TextModel(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="qwen25_3b",
                         clip_model=TinyOmniGen2Stand)


def tiny_omnigen2_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's OmniGen2 tokenizer (the shipped Qwen2.5 vocabulary and OmniGen2's chat template, kept whole by its
    encoder) around the tiny encoder over Qwen's vocabulary, fp32."""
    import comfy.text_encoders.omnigen2

    return clip_of(comfy.text_encoders.omnigen2.Omnigen2Tokenizer, TinyOmniGen2TextModel, seed)


def tiny_boogu(seed: int = 0, depth: int = 3, single: int = 1) -> comfy.model_patcher.ModelPatcher:
    """A tiny Boogu (ComfyUI 0.33 on) through ComfyUI's own classes: tiny_omnigen2's sizes, `depth` double-stream
    blocks, then `single` OmniGen2 layers, fp32."""
    config = {"image_model": "boogu", "patch_size": 2, "in_channels": 16, "hidden_size": 64, "num_layers": single,
              "num_double_stream_layers": depth, "num_refiner_layers": 2, "num_attention_heads": 4,
              "num_kv_heads": 2, "multiple_of": 16, "axes_dim_rope": [4, 6, 6], "axes_lens": [300, 512, 512],
              "instruction_feat_dim": CONTEXT_DIM}
    return tiny_model(comfy.supported_models.Boogu, config, seed)


def tiny_boogu_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Boogu tokenizer (the shipped Qwen vocabulary and Boogu's chat template, kept whole by its encoder)
    around the tiny encoder over Qwen's vocabulary, returning its attention mask as Boogu's Qwen3-VL does, fp32."""
    import comfy.text_encoders.boogu as boogu

    class TinyBooguTextModel(boogu.BooguTEModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            comfy.sd1_clip.SD1ClipModel.__init__(self, device=device, dtype=dtype, name="qwen3vl_8b",
                                                 clip_model=TinyOmniGen2Stand, model_options=model_options)

    return clip_of(boogu.BooguTokenizer, TinyBooguTextModel, seed)


def tiny_ernie(seed: int = 0, depth: int = 3, rope_theta: float = 256.0) -> comfy.model_patcher.ModelPatcher:
    """A tiny Ernie-Image (ComfyUI 0.33 on) through ComfyUI's own classes: 4 heads of 16 channels (RoPE axes
    4 + 6 + 6), Flux.2's 128-channel latent in 1 x 1 patches, the tiny context CONTEXT_DIM wide, fp32."""
    config = {"image_model": "ernie", "hidden_size": 64, "num_attention_heads": 4, "num_layers": depth,
              "ffn_hidden_size": 128, "in_channels": 128, "out_channels": 128, "patch_size": 1,
              "text_in_dim": CONTEXT_DIM, "rope_theta": rope_theta, "rope_axes_dim": (4, 6, 6)}
    return tiny_model(comfy.supported_models.ErnieImage, config, seed)


def tiny_wan(seed: int = 0) -> comfy.model_patcher.ModelPatcher:
    """A tiny Wan 2.1 text-to-video model (text by cross-attention only: no concept stream) through ComfyUI's own
    classes, fp32."""
    config = {"image_model": "wan2.1", "model_type": "t2v", "dim": 64, "ffn_dim": 128, "num_heads": 4,
              "num_layers": 1, "in_dim": 16, "out_dim": 16, "text_dim": CONTEXT_DIM, "freq_dim": 32}
    return tiny_model(comfy.supported_models.WAN21_T2V, config, seed)


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
    model = tiny_model(comfy.supported_models.SD3, config, seed)
    with torch.no_grad():  # a buffer, so not drawn with the weights; ComfyUI leaves it empty too
        dm = model.model.diffusion_model
        dm.pos_embed.copy_(0.05 * torch.randn(dm.pos_embed.shape, generator=torch.Generator().manual_seed(seed)))
    return model



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
    return clip_of(comfy.text_encoders.sd3_clip.SD3Tokenizer, encoder, seed)


def tiny_aura_flow(seed: int = 0, depth: int = 3, single: int = 2) -> comfy.model_patcher.ModelPatcher:
    """A tiny AuraFlow (MMDiT: `depth` double layers, then `single` single ones), 4 heads of 16 channels over SDXL's
    4-channel latent, its learnt positions on a 16 x 16 grid, fp32."""
    config = {"in_channels": 4, "out_channels": 4, "patch_size": 2, "dim": 64, "n_layers": depth + single,
              "n_double_layers": depth, "n_heads": 4, "global_conddim": 64, "cond_seq_dim": CONTEXT_DIM,
              "max_seq": 16 * 16}
    return tiny_model(comfy.supported_models.AuraFlow, config, seed)


class TinyPileT5(comfy.sd1_clip.SDClipModel):
    """AuraFlow's Pile-T5 encoder (PT5XlModel: UMT5 layers, end 2, pad 1, masked positions zeroed) at a tiny width."""

    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        config = {**TINY_T5_CONFIG, "vocab_size": 32128, "model_type": "umt5"}
        super().__init__(device=device, layer="last", layer_idx=None, textmodel_json_config=config, dtype=dtype,
                         special_tokens={"end": 2, "pad": 1}, model_class=comfy.text_encoders.t5.T5,
                         enable_attention_masks=True, zero_out_masked=True, model_options=model_options)


def tiny_aura_flow_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's AuraFlow tokenizer (the shipped Pile-T5 vocabulary, padded to 256 tokens) and text encoder, its
    Pile-T5 a tiny one, fp32."""
    target = comfy.supported_models_base.ClipTarget(comfy.text_encoders.aura_t5.AuraT5Tokenizer,
                                                    comfy.text_encoders.aura_t5.AuraT5Model)
    clip = comfy.sd.CLIP(target=target, model_options={"dtype": torch.float32, "pile_t5xl_class": TinyPileT5})
    randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def tiny_qwen_image(seed: int = 0, depth: int = 3, ref_method: str | None = None) -> comfy.model_patcher.ModelPatcher:
    """A tiny Qwen-Image through ComfyUI's own classes: 4 heads of 16 channels (RoPE axes 4 + 6 + 6), fp32.
    ref_method: Qwen-Image-Edit's reference method where the host knows it (e.g. index_timestep_zero)."""
    config = {"image_model": "qwen_image", "patch_size": 2, "in_channels": 64, "out_channels": 16,
              "num_layers": depth, "attention_head_dim": 16, "num_attention_heads": 4,
              "joint_attention_dim": CONTEXT_DIM, "axes_dims_rope": (4, 6, 6)}
    if ref_method is not None:
        config["default_ref_method"] = ref_method
    return tiny_model(comfy.supported_models.QwenImage, config, seed)


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
    return clip_of(comfy.text_encoders.qwen_image.QwenImageTokenizer, TinyQwenImageTextModel, seed)


def tiny_mage_flow(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny Mage-Flow (ComfyUI 0.33 on): Qwen-Image's blocks, 4 heads of 16 channels (RoPE axes 4 + 6 + 6), one-cell
    tokens over Flux.2's 128 latent channels, fp32."""
    config = {"image_model": "mage_flow", "in_channels": 128, "out_channels": 128, "num_layers": depth,
              "attention_head_dim": 16, "num_attention_heads": 4, "joint_attention_dim": CONTEXT_DIM,
              "axes_dims_rope": (4, 6, 6)}
    return tiny_model(comfy.supported_models.MageFlow, config, seed)


def tiny_mage_flow_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Mage-Flow tokenizer (the shipped Qwen vocabulary and Mage's chat template) around the tiny encoder
    that drops the template's head as Mage-Flow's does, fp32."""
    import comfy.text_encoders.mage_flow

    return clip_of(comfy.text_encoders.mage_flow.MageFlowTokenizer, TinyKrea2TextModel, seed)


def tiny_joyimage(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny JoyImage (ComfyUI 0.33 on) through ComfyUI's own classes: 4 heads of 16 channels (3-D RoPE axes 4 + 6 + 6
    over frame, row, column, theta 10000 as the real model's), 1 x 2 x 2 patches over Wan 2.1's 16 latent channels,
    the tiny context CONTEXT_DIM wide, fp32."""
    config = {"image_model": "joyimage", "in_channels": 16, "hidden_size": 64, "patch_size": [1, 2, 2],
              "num_layers": depth, "num_attention_heads": 4, "text_dim": CONTEXT_DIM, "theta": 10000,
              "rope_dim_list": [4, 6, 6]}

    class TinyJoyImage(comfy.supported_models.JoyImage):
        unet_extra_config = {}  # the real model's RoPE axes, which ComfyUI's config class would put over the tiny ones

    return tiny_model(TinyJoyImage, config, seed)


def tiny_joyimage_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's JoyImage tokenizer (the shipped Qwen vocabulary and JoyImage's chat template) and text encoder (its own
    cut of the template's system prompt) around the tiny encoder over Qwen's vocabulary, fp32."""
    import comfy.text_encoders.joyimage as joyimage

    class TinyJoyImageStand(comfy.sd1_clip.SDClipModel):
        """TinyQwen3Stand returning its attention mask, as JoyImage's encoder does (its encode cuts the mask too)."""

        def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
            super().__init__(device=device, layer="last", layer_idx=None, dtype=dtype, special_tokens={"pad": 151643},
                             textmodel_json_config={**TINY_T5_CONFIG, "vocab_size": 151936},
                             model_class=comfy.text_encoders.t5.T5, enable_attention_masks=True,
                             return_attention_masks=True, model_options=model_options)

    class TinyJoyImageTextModel(joyimage.JoyImageTEModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            comfy.sd1_clip.SD1ClipModel.__init__(self, device=device, dtype=dtype, name="qwen3vl_8b",
                                                 clip_model=TinyJoyImageStand, model_options=model_options)

    return clip_of(joyimage.JoyImageTokenizer, TinyJoyImageTextModel, seed)


def tiny_lens(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny Lens (ComfyUI 0.33 on) through ComfyUI's own classes: 4 heads of 16 channels (RoPE axes 4 + 6 + 6),
    one-cell tokens over Flux.2's 128 latent channels, a context of 2 tapped layers of 16 channels (the real model
    taps 4 of GPT-OSS's 2880: the tiny context is CONTEXT_DIM = 2 x 16 wide), fp32."""
    config = {"image_model": "lens", "patch_size": 2, "in_channels": 128, "out_channels": 32, "num_layers": depth,
              "attention_head_dim": 16, "num_attention_heads": 4, "enc_hidden_dim": CONTEXT_DIM // 2,
              "axes_dims_rope": (4, 6, 6), "selected_layer_index": (0, 1)}
    return tiny_model(comfy.supported_models.Lens, config, seed)


# GPT-OSS's Harmony special tokens at their own ids (o200k_harmony)
HARMONY_SPECIAL_TOKENS = {"<|endoftext|>": 199999, "<|return|>": 200002, "<|constrain|>": 200003,
                          "<|channel|>": 200005, "<|start|>": 200006, "<|end|>": 200007, "<|message|>": 200008,
                          "<|call|>": 200012}


def harmony_stand_in_tokenizer() -> tuple[bytes, int]:
    """A word-level tokenizer.json with Harmony's special tokens at their own ids, its words those of Lens's chat
    template and the tests' prompts (ComfyUI's Lens tokenizer reads GPT-OSS's own tokenizer from the checkpoint's
    weights, which are not at hand); and how many tokens the template's head takes in it (the real tokenizer's 97,
    LENS_TXT_OFFSET, the tiny encoder drops instead)."""
    import json

    import comfy.text_encoders.gpt_oss as gpt_oss
    from tokenizers import Tokenizer, models, pre_tokenizers

    words = pre_tokenizers.Whitespace()
    template = gpt_oss._lens_render_chat("x")
    for special in HARMONY_SPECIAL_TOKENS:
        template = template.replace(special, " ")
    vocab = {"<unk>": 0}
    for word in [*GEMMA_STAND_IN_WORDS, ",", *(piece for piece, _ in words.pre_tokenize_str(template))]:
        vocab.setdefault(word, len(vocab))
    tokenizer = Tokenizer(models.WordLevel({**vocab, **HARMONY_SPECIAL_TOKENS}, unk_token="<unk>"))
    tokenizer.pre_tokenizer = words
    layout = json.loads(tokenizer.to_str())
    layout["added_tokens"] = [{"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                               "normalized": False, "special": True} for token, i in HARMONY_SPECIAL_TOKENS.items()]
    data = json.dumps(layout).encode()
    ids = Tokenizer.from_str(data.decode()).encode(gpt_oss._lens_render_chat("x"), add_special_tokens=False).ids
    head = [i for i, token in enumerate(ids) if token == HARMONY_SPECIAL_TOKENS["<|message|>"]][2] + 1
    return data, head


def tiny_lens_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Lens tokenizer (its Harmony chat template) over the stand-in vocabulary, and ComfyUI's Lens text
    encoder (its own head drop and layer taps) around a tiny GPT-OSS tapped at both its layers, fp32."""
    import comfy.text_encoders.gpt_oss as gpt_oss

    data, head = harmony_stand_in_tokenizer()
    config = {"vocab_size": 201088, "hidden_size": CONTEXT_DIM // 2, "intermediate_size": 16, "num_hidden_layers": 2,
              "num_attention_heads": 2, "num_key_value_heads": 1, "head_dim": 8, "num_local_experts": 2,
              "num_experts_per_tok": 1}

    class TinyLensTextModel(gpt_oss.LensTEModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            options = {**model_options, "gpt_oss_config": config, "selected_layers": (0, 1), "txt_offset": head}
            super().__init__(device=device, dtype=dtype, model_options=options)
            # its layers take their weights from a checkpoint (ComfyUI's mixed-precision ops): load an empty one
            self.load_sd({f"{name}.weight": torch.zeros(layer._orig_shape)
                          for name, layer in self.gpt_oss.transformer.named_modules() if hasattr(layer, "_orig_shape")})

    target = comfy.supported_models_base.ClipTarget(gpt_oss.LensTokenizer, TinyLensTextModel)
    clip = comfy.sd.CLIP(target=target, tokenizer_data={"tokenizer_json": data},
                         model_options={"dtype": torch.float32})
    randomise(clip.cond_stage_model, seed, std=0.5)
    return clip


def tiny_longcat_image(seed: int = 0, depth: int = 3, single: int = 2) -> comfy.model_patcher.ModelPatcher:
    """A tiny LongCat-Image (ComfyUI 0.33 on): Flux's class without a pooled vector or guidance embedding, its text
    tokens at RoPE positions on rows and columns (txt_ids_dims), fp32."""
    config = {**flux_config(False, depth=depth, single=single), "vec_in_dim": None, "txt_ids_dims": [1, 2]}
    return tiny_model(comfy.supported_models.LongCatImage, config, seed)


def tiny_longcat_image_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's LongCat-Image tokenizer (the shipped Qwen2.5 vocabulary, its chat template and padding to 512
    tokens) and text encoder (its own template stripping) around a tiny Qwen2.5, fp32."""
    import comfy.text_encoders.longcat_image as longcat_image

    class TinyLongCatImageTextModel(longcat_image.LongCatImageTEModel):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            comfy.sd1_clip.SD1ClipModel.__init__(self, device=device, dtype=dtype, name="qwen25_7b",
                                                 clip_model=TinyQwen25, model_options=model_options)

    return clip_of(longcat_image.LongCatImageTokenizer, TinyLongCatImageTextModel, seed)


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
    return tiny_model(config_class or comfy.supported_models.HunyuanVideo, config, seed)


def tiny_hunyuan_video_15(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny HunyuanVideo 1.5 (ComfyUI 0.8 on): no pooled vector or guidance embedding, text-type embeddings,
    32 latent channels plus the image-to-video condition's 32 and its mask."""
    return tiny_hunyuan_video(seed, depth, pooled=False, guidance_embed=False, use_cond_type_embedding=True,
                              in_channels=65, out_channels=32, config_class=comfy.supported_models.HunyuanVideo15)


def tiny_hunyuan_image_21(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny HunyuanImage 2.1 (ComfyUI 0.8 on): HunyuanVideo's class with 2-D 1 x 1 patches over 64 latent
    channels (32 pixels per cell), RoPE over rows and columns only, no pooled vector or guidance embedding."""
    return tiny_hunyuan_video(seed, depth, pooled=False, guidance_embed=False, patch_size=[1, 1], axes_dim=[8, 8],
                              in_channels=64, out_channels=64, config_class=comfy.supported_models.HunyuanImage21)



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
    return tiny_model(config_class, config, seed)


def tiny_cogvideox_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's CogVideoX tokenizer (T5's, padded to 226 tokens) around a tiny T5, fp32."""
    import comfy.text_encoders.cogvideo

    return clip_of(comfy.text_encoders.cogvideo.CogVideoXTokenizer, TinyChromaT5Model, seed)



def tiny_mochi(seed: int = 0, depth: int = 3) -> comfy.model_patcher.ModelPatcher:
    """A tiny Mochi (AsymmDiTJoint) through ComfyUI's own classes: 4 heads of 16 channels, a video stream 64 wide and
    a text stream 32 wide (Mochi's are 3072 and 1536), 2 x 2 patches over its 12 latent channels, the tiny T5's
    context, fp32. AsymmetricJointBlock asserts the video MLP's width is Mochi's own (1536 * 8): a ratio of 192 gives
    it at width 64."""
    config = {"image_model": "mochi_preview", "depth": depth, "patch_size": 2, "num_heads": 4, "hidden_size_x": 64,
              "hidden_size_y": 32, "mlp_ratio_x": 1536 * 8 / 64, "mlp_ratio_y": 4.0, "learn_sigma": False,
              "in_channels": 12, "qk_norm": True, "qkv_bias": False, "out_bias": True, "attn_drop": 0.0,
              "patch_embed_bias": True, "posenc_preserve_area": True, "timestep_mlp_bias": True,
              "attend_to_padding": False, "timestep_scale": 1000.0, "use_t5": True, "t5_feat_dim": CONTEXT_DIM,
              "t5_token_length": 256, "rope_theta": 10000.0}
    return tiny_model(comfy.supported_models.GenmoMochi, config, seed)


class TinyMochiT5(comfy.sd1_clip.SDClipModel):
    """Mochi's T5 (comfy.text_encoders.genmo.T5XXLModel: the padding masked, the mask returned) at a tiny width."""

    def __init__(self, device="cpu", dtype=None, model_options={}, **kwargs):
        config = {**TINY_T5_CONFIG, "vocab_size": 32128}
        super().__init__(device=device, layer="last", layer_idx=None, textmodel_json_config=config, dtype=dtype,
                         special_tokens={"end": 1, "pad": 0}, model_class=comfy.text_encoders.t5.T5,
                         enable_attention_masks=True, return_attention_masks=True,
                         model_options={**model_options, "model_name": "t5xxl"})


class TinyMochiT5Model(comfy.sd1_clip.SD1ClipModel):
    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(device=device, dtype=dtype, model_options=model_options, clip_name="t5xxl",
                         clip_model=TinyMochiT5)


def tiny_mochi_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's Mochi tokenizer (T5's, padded to 256 tokens) around a tiny T5 that returns its attention mask, fp32."""
    import comfy.text_encoders.genmo

    return clip_of(comfy.text_encoders.genmo.MochiT5Tokenizer, TinyMochiT5Model, seed)


def random_mochi_vae(seed: int = 2) -> comfy.sd.VAE:
    """ComfyUI's Mochi VAE (12 channels, 8x, the first frame alone then 6 frames per latent frame) with random weights,
    its encoder and decoder 32 to 128 channels wide with one residual block a level and no attention: ComfyUI builds
    Mochi's own (460M parameters) whatever the weights, so its class is swapped for the build alone."""
    from unittest import mock

    import comfy.ldm.genmo.vae.model as mochi_vae

    class TinyVideoVAE(mochi_vae.VideoVAE):
        def __init__(self):
            torch.nn.Module.__init__(self)
            levels = {"base_channels": 32, "channel_multipliers": [1, 2, 3, 4], "num_res_blocks": [1] * 5,
                      "latent_dim": 12, "padding_mode": "replicate"}
            self.encoder = mochi_vae.Encoder(in_channels=15, temporal_reductions=[1, 2, 3], spatial_reductions=[2, 2, 2],
                                             prune_bottlenecks=[False] * 5, has_attentions=[False] * 5, affine=True,
                                             bias=True, input_is_conv_1x1=True, **levels)
            self.decoder = mochi_vae.Decoder(out_channels=3, temporal_expansions=[1, 2, 3], spatial_expansions=[2, 2, 2],
                                             has_attention=[False] * 5, output_norm=False, nonlinearity="silu",
                                             output_nonlinearity="silu", causal=True, **levels)

    keys = ("encoder.layers.4.layers.1.attn_block.attn.qkv.weight", "decoder.blocks.2.blocks.3.stack.5.weight")
    with mock.patch.object(mochi_vae, "VideoVAE", TinyVideoVAE):
        vae = comfy.sd.VAE(sd={key: torch.zeros(1) for key in keys})
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():  # ComfyUI leaves the weights empty: unit norm scales, zero biases, fan-in scaled kernels
        for name, p in sorted(vae.first_stage_model.named_parameters()):
            if p.ndim == 1:
                p.fill_(1.0) if name.endswith("weight") else p.zero_()  # norm scales; biases
            else:
                p.copy_(torch.randn(p.shape, generator=generator) / p[0].numel() ** 0.5)
    return vae


HIDREAM_LLAMA_WIDTH = 24  # the tiny Llama's width, apart from T5's so that a mix-up shows
HIDREAM_LLAMA_LAYERS = 4
HIDREAM_POOLED_DIM = 2 * SD3_CLIP_WIDTH  # CLIP-L's and CLIP-G's pooled vectors side by side


def hidream_llama_layers(blocks: int) -> list[int]:
    """The Llama layer each block reads, as ComfyUI's HiDream config: block b reads layer b, the last layer beyond."""
    return [min(block, HIDREAM_LLAMA_LAYERS - 1) for block in range(blocks)]


def tiny_hidream(seed: int = 0, depth: int = 3, single: int = 2) -> comfy.model_patcher.ModelPatcher:
    """A tiny HiDream-I1 through ComfyUI's own classes: `depth` double-stream blocks, then `single` single-stream ones,
    4 heads of 16 channels (RoPE axes 8 + 4 + 4), a mixture of 2 experts (1 active) on the image, the tiny T5 and
    Llama widths, fp32."""
    config = {"image_model": "hidream", "patch_size": 2, "in_channels": 16, "out_channels": 16, "num_layers": depth,
              "num_single_layers": single, "attention_head_dim": 16, "num_attention_heads": 4,
              "caption_channels": [CONTEXT_DIM, HIDREAM_LLAMA_WIDTH], "text_emb_dim": HIDREAM_POOLED_DIM,
              "num_routed_experts": 2, "num_activated_experts": 1, "axes_dims_rope": [8, 4, 4],
              "max_resolution": [128, 128], "llama_layers": hidream_llama_layers(depth + single)}
    return tiny_model(comfy.supported_models.HiDream, config, seed)


class TinyHiDreamLlama(comfy.sd1_clip.SDClipModel):
    """comfy.text_encoders.hunyuan_video.LLAMAModel as HiDream builds it (every layer's states, start 128000, pad
    128009) around a tiny Llama 3 (Llama 3's vocabulary, for the real tokenizer)."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        config = {"vocab_size": 128256, "hidden_size": HIDREAM_LLAMA_WIDTH, "intermediate_size": 48,
                  "num_hidden_layers": HIDREAM_LLAMA_LAYERS, "num_attention_heads": 2, "num_key_value_heads": 1}
        super().__init__(device=device, layer="all", layer_idx=None, textmodel_json_config=config, dtype=dtype,
                         special_tokens={"start": 128000, "pad": 128009}, layer_norm_hidden_state=False,
                         model_class=comfy.text_encoders.llama.Llama2, enable_attention_masks=True,
                         return_attention_masks=True, model_options={**model_options, "model_name": "llama"})


class TinyHiDreamTextModel(comfy.text_encoders.hidream.HiDreamTEModel):
    """ComfyUI's HiDream text encoder (its own encode: CLIP-L/G's pooled vectors, T5's states as the context, the
    Llama's states of every layer as conditioning_llama3) around tiny CLIP-L, CLIP-G, T5 and Llama."""

    def __init__(self, device="cpu", dtype=None, model_options={}):
        super().__init__(clip_l=False, clip_g=False, t5=False, llama=False, device=device, dtype=dtype,
                         model_options=model_options)
        self.clip_l = comfy.sd1_clip.SDClipModel(device=device, dtype=dtype, textmodel_json_config=TINY_CLIP_CONFIG,
                                                 return_projected_pooled=True, model_options=model_options)
        self.clip_g = comfy.sd1_clip.SDClipModel(layer="hidden", layer_idx=-2, device=device, dtype=dtype,
                                                 textmodel_json_config=TINY_CLIP_CONFIG,
                                                 special_tokens={"start": 49406, "end": 49407, "pad": 0},
                                                 layer_norm_hidden_state=False, return_projected_pooled=True,
                                                 model_options={**model_options, "model_name": "clip_g"})
        self.t5xxl = TinyT5(device=device, dtype=dtype, model_options=model_options)
        self.llama = TinyHiDreamLlama(device=device, dtype=dtype, model_options=model_options)
        self.dtypes.add(dtype)


LLAMA3_BEGIN, LLAMA3_EOT = 128000, 128009  # Llama 3's <|begin_of_text|> and <|eot_id|> (HiDream's padding)


LLAMA3_SPLIT = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
                r"\s*[\r\n]+|\s+(?!\S)|\s+")  # Llama 3's pre-tokenizer split


LLAMA3_STAND_IN_FOLDER = []  # the process's one folder of the stand-in Llama 3 tokenizer


def llama3_stand_in_tokenizer() -> str:
    """A folder with a byte-level BPE tokenizer.json in Llama 3's layout (its split, <|begin_of_text|> first, at their
    own ids), whose merges make whole words of GEMMA_STAND_IN_WORDS (ComfyUI's Llama 3 tokenizer folder ships without
    its tokenizer.json); written once per process, into a temporary folder removed when the process ends."""
    import json
    import os
    import tempfile

    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    if LLAMA3_STAND_IN_FOLDER:
        return LLAMA3_STAND_IN_FOLDER[0].name
    LLAMA3_STAND_IN_FOLDER.append(tempfile.TemporaryDirectory(prefix="ca-llama3-stand-in-"))  # removed at exit
    folder = LLAMA3_STAND_IN_FOLDER[0].name
    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tokenizer.decoder = decoders.ByteLevel()
    words = [*GEMMA_STAND_IN_WORDS, ","]
    tokenizer.train_from_iterator([" ".join(words)] * 4 + [f" {word}" for word in words] + words, trainers.BpeTrainer(
        vocab_size=4000, min_frequency=1, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    specials = {"<|begin_of_text|>": LLAMA3_BEGIN, "<|eot_id|>": LLAMA3_EOT}
    tokenizer.post_processor = processors.TemplateProcessing(
        single="<|begin_of_text|> $A", special_tokens=[("<|begin_of_text|>", LLAMA3_BEGIN)])
    layout = json.loads(tokenizer.to_str())
    layout["model"]["merges"] = [merge if isinstance(merge, str) else " ".join(merge)  # Llama 3's "a b" form
                                 for merge in layout["model"]["merges"]]
    layout["added_tokens"] = [{"id": i, "content": token, "single_word": False, "lstrip": False, "rstrip": False,
                               "normalized": False, "special": True} for token, i in specials.items()]
    with open(os.path.join(folder, "tokenizer.json"), "w") as f:
        json.dump(layout, f)
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"bos_token": "<|begin_of_text|>", "eos_token": "<|eot_id|>", "add_bos_token": True,
                   "add_eos_token": False, "tokenizer_class": "PreTrainedTokenizerFast"}, f)
    return folder


class StandInLlama3Tokenizer(comfy.sd1_clip.SDTokenizer):
    """comfy.text_encoders.hunyuan_video.LLAMA3Tokenizer's settings (a start token, no end token, padded to
    min_length with pad_token) over the stand-in vocabulary."""

    def __init__(self, embedding_directory=None, tokenizer_data={}, min_length=256, pad_token=128258):
        super().__init__(llama3_stand_in_tokenizer(), embedding_directory=embedding_directory, pad_with_end=False,
                         embedding_size=HIDREAM_LLAMA_WIDTH, embedding_key="llama",
                         tokenizer_class=comfy.text_encoders.hunyuan_video.LlamaTokenizerFast, has_start_token=True,
                         has_end_token=False, pad_to_max_length=False, max_length=99999999, pad_token=pad_token,
                         min_length=min_length, tokenizer_data=tokenizer_data)


class StandInHiDreamTokenizer(comfy.text_encoders.hidream.HiDreamTokenizer):
    """ComfyUI's HiDream tokenizer (real CLIP-L, CLIP-G and T5 vocabularies), its Llama 3 tokenizer as HiDream sets
    it up (min_length 128, padded with <|eot_id|>) over the stand-in vocabulary."""

    def __init__(self, embedding_directory=None, tokenizer_data={}):
        from unittest import mock

        with mock.patch.object(comfy.text_encoders.hidream.hunyuan_video, "LLAMA3Tokenizer", StandInLlama3Tokenizer):
            super().__init__(embedding_directory=embedding_directory, tokenizer_data=tokenizer_data)


def tiny_hidream_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's HiDream tokenizer (real CLIP-L, CLIP-G and T5 vocabularies, Llama 3's over a stand-in one) around
    the tiny encoders."""
    return clip_of(StandInHiDreamTokenizer, TinyHiDreamTextModel, seed)


def tiny_pixeldit(seed: int = 0, depth: int = 3, pid: bool = False) -> comfy.model_patcher.ModelPatcher:
    """A tiny PixelDiT (ComfyUI 0.33 on) through ComfyUI's own classes: pixel space, 16-pixel patches, 4 heads of 16
    channels in the patch blocks, one pixel block, the tiny context CONTEXT_DIM wide, 300 text positions, fp32. pid:
    PiD, which also reads a 16-channel latent of a 4 times smaller image (8 pixels a cell) before every other block."""
    config = {"image_model": "pixeldit_t2i", "num_groups": 4, "hidden_size": 64, "pixel_hidden_size": 8,
              "pixel_attn_hidden_size": 32, "pixel_num_groups": 2, "patch_depth": depth, "pixel_depth": 1,
              "patch_size": 16, "txt_embed_dim": CONTEXT_DIM, "txt_max_length": 300}
    if pid:
        config.update({"image_model": "pid", "lq_latent_channels": 16, "lq_hidden_dim": 8, "lq_num_res_blocks": 1})
    return tiny_model(comfy.supported_models.PiD if pid else comfy.supported_models.PixelDiTT2I, config, seed)


def tiny_pixeldit_clip(seed: int = 1) -> comfy.sd.CLIP:
    """ComfyUI's PixelDiT tokenizer (its chi prompt before the prompt, padded) over a Gemma stand-in vocabulary that
    knows the chi prompt's words, and ComfyUI's PixelDiT text encoder (its cut to the start token and the last 299
    positions) around the tiny Gemma stand-in, fp32."""
    import comfy.text_encoders.pixeldit as pixeldit

    class TinyPixelDiTTextModel(pixeldit.PixelDiTGemma2TE):
        def __init__(self, device="cpu", dtype=None, model_options={}):
            comfy.sd1_clip.SD1ClipModel.__init__(self, device=device, dtype=dtype, name="gemma2_2b",
                                                 clip_model=TinyGemmaStand, model_options=model_options)

    words = [*GEMMA_STAND_IN_WORDS, *pixeldit._PIXELDIT_CHI_PROMPT.split()]
    target = comfy.supported_models_base.ClipTarget(pixeldit.PixelDiTGemma2Tokenizer, TinyPixelDiTTextModel)
    clip = comfy.sd.CLIP(target=target, tokenizer_data={"spiece_model": gemma_stand_in_tokenizer(words)},
                         model_options={"dtype": torch.float32})
    randomise(clip.cond_stage_model, seed, std=0.5)
    return clip
