"""The Qwen-Image family: Qwen-Image and Qwen-Image-Edit, on ComfyUI's QwenImageTransformer2DModel.

Each transformer block is a joint block with separate image and text streams:
- The text stream has its own q/k/v projections (add_q_proj, add_k_proj, add_v_proj), q/k norms
  (norm_added_q, norm_added_k), output projection (to_add_out), norms and MLP. The concepts reuse them:
  the modulation, output projection and MLP on the text's own casts (nodes/stream/shared_casts.py); the three
  q/k/v projections, which that sharing does not cover (it follows one fused layer), cast again.
- Qwen-Image has no pooled text vector: the text modulation txt_mod(temb) comes from the timestep alone,
  and it is also the concepts' modulation. Qwen-Image-Edit's "index_timestep_zero" doubles temb for the
  reference image's tokens; the text, and so the concepts, take its first half.
- Text tokens carry RoPE positions: prompt token j sits at (s + j, s + j, s + j), where
  s = max(token columns, token rows) // 2 of the generated image. Each concept gets the position its
  first own token would have in a one-word prompt: s + its index in the template-stripped encoder output
  (0 for a concept whose own tokens open the prompt, as they do).
- The chat template wraps every prompt, and ComfyUI's encoder drops the template's head, up to and
  including "<|im_start|>user\\n". The concept's own tokens run from there to the template's "<|im_end|>".
- Qwen-Image-Edit's reference image tokens follow the generated image's in the joint attention: the
  concepts attend over them, and the maps cover only the generated image's tokens.
"""

import torch
from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from . import tokens
from .base import ModelCall, ModelFamily, TypicalCfg, split_heads, table_rope


def mlp_layers(feed_forward) -> torch.nn.Sequential:
    """Qwen-Image's FeedForward (a GELU module holding the first projection, dropout, the second projection) as
    the sequence of its layers, so that the concepts reuse each projection's cast (nodes/stream/shared_casts.py)."""
    first, _, second = feed_forward.net
    return torch.nn.Sequential(first.proj, torch.nn.GELU(approximate=first.approximate), second)


class QwenImageFamily(ModelFamily):
    """auto: like Flux.1's 15-18 of 19 double blocks, the last four of the joint stack (Qwen-Image has 60, all
    joint). The forward rebinds its locals from each block's returned dict at once: nothing to release."""

    short_name = "Qwen-Image"
    also = ("Edit",)  # Qwen-Image-Edit
    typical_cfg = TypicalCfg("2.5")
    token_alignment = staticmethod(tokens.qwen_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, QwenImageTransformer2DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.transformer_blocks

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning, rows):
        """The text modulation of this block, from temb (its first half where Edit doubled it)."""
        temb = block_args["vec"]
        if temb.shape[0] != block_args["txt"].shape[0]:  # index_timestep_zero: [temb; temb at t = 0]
            temb = temb.chunk(2, dim=0)[0]
        chunks = [c[:, None] for c in diffusion_model.transformer_blocks[index].txt_mod(temb[rows]).chunk(6, dim=-1)]
        return Modulation(*chunks[:3]), Modulation(*chunks[3:])

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at (s + p, s + p, s + p), through the model's own RoPE table; p is the concept's index in
        the template-stripped encoder output (the base's concept_position)."""
        rows, columns = self.token_grid(diffusion_model, call.x)
        start = round(max(columns // 2, rows // 2))
        ids = torch.tensor([start + position for position in positions], device=call.x.device, dtype=torch.float32)
        pe = diffusion_model.pe_embedder(ids.reshape(1, -1, 1).repeat(1, 1, 3)).to(call.dtype)

        return table_rope(pe)

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.transformer_blocks[index]
        attn = block.attn

        def qkv(x: Tensor) -> Tensor:
            return torch.cat([attn.add_q_proj(x), attn.add_k_proj(x), attn.add_v_proj(x)], dim=-1)

        return TextStreamWeights(
            num_heads=attn.heads,
            norm1=block.txt_norm1,
            qkv=qkv,
            qk_norm=lambda q, k, v: (attn.norm_added_q(q), attn.norm_added_k(k)),
            proj=attn.to_add_out,
            norm2=block.txt_norm2,
            mlp=mlp_layers(block.txt_mlp),
        )

    def modulation_layers(self, diffusion_model, index: int) -> list:
        return [diffusion_model.transformer_blocks[index].txt_mod[1]]

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        return diffusion_model.txt_in(diffusion_model.txt_norm(concept_context))

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """Text first. ComfyUI 0.8 and newer pass q/k/v as [B, H, L, D]; 0.3.64 as [B, L, H*D]."""
        if q.ndim == 3:
            heads = diffusion_model.transformer_blocks[index].attn.heads
            k, v = split_heads(k, heads), split_heads(v, heads)
        image = slice(text_tokens, k.shape[2])
        return ImageAttention(keys=k[:, :, image], values=v[:, :, image], outputs=out[:, image])
