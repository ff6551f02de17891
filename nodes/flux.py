"""The Flux family adapter: Flux.1 dev/schnell, Flux.1 Kontext and models built on ComfyUI's Flux class.

Everything that knows ComfyUI's Flux internals lives here; the method itself is in ca_core.
"""

import dataclasses

import torch
from comfy.ldm.flux.layers import timestep_embedding
from comfy.ldm.flux.model import Flux, FluxParams
from einops import rearrange
from torch import Tensor

from ..ca_core.stream import ImageAttention, ModulationParams, TextStreamWeights


def flux_unet_config(**params) -> dict:
    """A unet_config for ComfyUI's Flux classes, plus the fields this host's FluxParams requires."""
    fields = {f.name for f in dataclasses.fields(FluxParams)}
    host_defaults = {"txt_ids_dims": []}  # required from ComfyUI 0.8 on, unknown before
    return {**{k: v for k, v in host_defaults.items() if k in fields}, **params}


class FluxAdapter:
    family = "Flux (Flux.1 dev, schnell, Kontext)"
    vae_scale = 8  # pixels per latent cell, as Flux's VAE

    @staticmethod
    def matches(diffusion_model) -> bool:
        return (
            type(diffusion_model) is Flux
            and not getattr(diffusion_model.params, "global_modulation", False)
        )

    @staticmethod
    def depth(diffusion_model) -> int:
        return len(diffusion_model.double_blocks)

    @staticmethod
    def single_depth(diffusion_model) -> int:
        return len(diffusion_model.single_blocks)

    @classmethod
    def token_pixels(cls, diffusion_model) -> int:
        return diffusion_model.patch_size * cls.vae_scale

    @staticmethod
    def token_grid(diffusion_model, x: Tensor) -> tuple[int, int]:
        """Rows and columns of the generated image's token grid, as Flux._forward computes them."""
        p = diffusion_model.patch_size
        return (x.shape[-2] + p // 2) // p, (x.shape[-1] + p // 2) // p

    @staticmethod
    def text_stream(block) -> TextStreamWeights:
        return TextStreamWeights(
            num_heads=block.num_heads,
            norm1=block.txt_norm1,
            qkv=block.txt_attn.qkv,
            qk_norm=block.txt_attn.norm,
            proj=block.txt_attn.proj,
            norm2=block.txt_norm2,
            mlp=block.txt_mlp,
        )

    @staticmethod
    def concept_vector(diffusion_model, x: Tensor, timestep: Tensor, guidance: Tensor | None) -> Tensor:
        """Timestep (+ guidance) embedding with a zero pooled text vector, as the paper's stream."""
        dm = diffusion_model
        vec = dm.time_in(timestep_embedding(timestep, 256).to(x.dtype))
        if dm.params.guidance_embed and guidance is not None:
            vec = vec + dm.guidance_in(timestep_embedding(guidance, 256).to(x.dtype))
        if getattr(dm, "vector_in", None) is not None:
            zero_pooled = torch.zeros((x.shape[0], dm.params.vec_in_dim), device=x.device, dtype=x.dtype)
            vec = vec + dm.vector_in(zero_pooled)
        return vec

    @staticmethod
    def segmentation_conditioning(diffusion_model) -> dict:
        """Caption conditioning extras as in the paper's encode path: zero pooled vector, guidance 0."""
        return {"pooled_output": torch.zeros((1, diffusion_model.params.vec_in_dim)), "guidance": 0.0}

    @staticmethod
    def concept_modulations(block, concept_vector: Tensor) -> tuple[ModulationParams, ModulationParams]:
        return block.txt_mod(concept_vector)

    @staticmethod
    def embed_concepts(diffusion_model, concept_context: Tensor) -> Tensor:
        """Project encoded concepts into the text stream, as Flux projects its prompt."""
        txt_norm = getattr(diffusion_model, "txt_norm", None)
        if txt_norm is not None:
            concept_context = txt_norm(concept_context)
        return diffusion_model.txt_in(concept_context)

    @staticmethod
    def image_attention(block, q: Tensor, k: Tensor, v: Tensor, out: Tensor, text_tokens: int) -> ImageAttention:
        """Cut the image tokens out of the block's joint attention (text first unless flipped)."""
        if out.ndim == 4:  # an override that skipped the output reshape
            out = rearrange(out, "B H L D -> B L (H D)")
        total = q.shape[2]
        # flipped_img_txt (image first) exists on hosts before 0.33; from 0.33 on the text always comes first
        image_first = getattr(block, "flipped_img_txt", False)
        image = slice(0, total - text_tokens) if image_first else slice(text_tokens, total)
        return ImageAttention(keys=k[:, :, image], values=v[:, :, image], outputs=out[:, image])
