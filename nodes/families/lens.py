"""The Lens family (Microsoft's Lens), on ComfyUI's LensTransformer2DModel (ComfyUI 0.33 on; older hosts have no
Lens, and the family is left out there).

Its joint blocks are of Qwen-Image's kind (qwen_blocks.py: text and image with weights of their own, one joint
attention, the text's shift-scale-gate modulation from the timestep's embedding alone), with Lens's own layers:
- the prompt is four tapped GPT-OSS-20B layers side by side, each RMS-normed on its own (txt_norm), then projected
  together (txt_in); the concepts go the same way;
- each stream's q/k/v is one fused layer (txt_qkv), its MLP a SwiGLU (GateMLP), its norms RMSNorms;
- the joint attention holds the image first, then the text (its padding masked: the concepts attend over the image);
- no pooled vector and no guidance: the text's modulation, also the concepts', comes from the timestep alone, and
  its gates are plain (no tanh);
- one-cell tokens over Flux.2's 128-channel latent (the model does not patchify it), 16 pixels a token;
- text token j sits at RoPE position s + j on all three axes, s = max(rows // 2, columns // 2) of the token grid
  (the image's rows and columns centred on 0): each concept takes its own token's text position;
- the prompt is GPT-OSS's Harmony chat template, whose head the encoder drops (tokens.harmony_chat_prompt).
"""

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention, TextStreamWeights
from . import tokens
from .base import ModelCall
from .qwen_blocks import QwenBlocks, centred_text_rope

try:  # ComfyUI 0.33 on
    from comfy.ldm.lens.model import LensTransformer2DModel
except ImportError:
    LensTransformer2DModel = None


class LensFamily(QwenBlocks):
    """auto: the last four of the 48 joint blocks, as the paper's rule on Flux.1's (15-18 of 19)."""

    short_name = "Lens"
    since_comfyui = "0.33"
    available = LensTransformer2DModel is not None
    vae_scale = 16  # Flux.2's VAE
    token_alignment = staticmethod(tokens.harmony_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, LensTransformer2DModel)

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.transformer_blocks[index]
        attn = block.attn
        return TextStreamWeights(
            num_heads=attn.heads, norm1=block.txt_norm1, qkv=attn.txt_qkv,
            qk_norm=lambda q, k, v: (attn.norm_added_q(q), attn.norm_added_k(k)),
            proj=attn.to_add_out, norm2=block.txt_norm2, mlp=block.txt_mlp,
        )

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        """Each tapped layer's states through its own txt_norm, then txt_in over them all, as the prompt's."""
        dm = diffusion_model
        if dm.multi_layer_encoder_feature:
            layers = concept_context.chunk(len(dm.selected_layer_index), dim=-1)
            concept_context = torch.cat([norm(layer) for norm, layer in zip(dm.txt_norm, layers, strict=True)], dim=-1)
        else:
            concept_context = dm.txt_norm(concept_context)
        return dm.txt_in(concept_context)

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at (s + p, s + p, s + p), through the model's own RoPE table (float32, as the model keeps
        its own); p is the concept's index in the encoder output (the base's concept_position)."""
        return centred_text_rope(diffusion_model.pos_embed, call, self.token_grid(diffusion_model, call.x), positions)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, H, L, D], outputs [B, L, H * D] before to_out; the image first, the text after it."""
        image = slice(0, k.shape[2] - text_tokens)
        return ImageAttention(keys=k[:, :, image], values=v[:, :, image], outputs=out[:, image])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        return x.shape[-2], x.shape[-1]

    def token_pixels(self, model) -> int:
        return self.latent_pixels(model)
