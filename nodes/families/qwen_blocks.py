"""What the families on Qwen-Image's transformer block share (Qwen-Image, Mage-Flow; Lens, which replaces the layers
and the order): the text stream's own q/k/v projections, q/k norms, output projection, norms and MLP (which the
concepts reuse), the text modulation from the timestep's embedding alone (no pooled vector), and text-then-image
joint attention. A base, not a family.

The q/k/v projections, output projection and MLP run on the text's own casts (nodes/stream/shared_casts.py);
the concepts' modulation is the text's own output of each block's txt_mod. Qwen-Image-Edit's
"index_timestep_zero" doubles temb for the reference image's tokens; the text, and so the concepts, take its first
half. Reference images' tokens follow the generated image's in the joint attention: the concepts attend over them,
and the maps cover only the generated image's tokens.
"""

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from .base import ModelCall, ModelFamily, keeping_outputs, split_heads, table_rope


def centred_text_rope(positional_embedding, call: ModelCall, grid: tuple[int, int], positions: list[int]):
    """Each concept at (s + p, s + p, s + p) through the model's RoPE table, where the text starts after an image grid
    centred on 0 (Qwen-Image, Lens): s = max(rows, columns) // 2 of the token grid, p the concept's text position."""
    rows, columns = grid
    start = max(columns // 2, rows // 2)
    ids = torch.tensor([start + position for position in positions], device=call.x.device, dtype=torch.float32)
    return table_rope(positional_embedding(ids.reshape(1, -1, 1).repeat(1, 1, 3)))


class QwenBlocks(ModelFamily):
    """Joint blocks of Qwen-Image's kind; the forward rebinds its locals from each block's returned dict at once,
    so there is nothing to release."""

    def joint_blocks(self, diffusion_model):
        return diffusion_model.transformer_blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """Each block's text modulation as the block's own call made it (watch_call), by layer."""
        return {}

    def watch_call(self, diffusion_model, conditioning: dict):
        """The concepts' modulation is the text's own (no pooled vector enters it): keep each block's txt_mod output
        as the block makes it, rather than run the layer again for the concepts' rows."""
        layers = [self.modulation_layers(diffusion_model, index)[0]
                  for index in range(len(self.joint_blocks(diffusion_model)))]
        return keeping_outputs(layers, conditioning)

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning, rows):
        """The text modulation of this block, from temb (its first half where Edit doubled it): the block's own
        output for the concepts' rows, where it has run in this call."""
        block = diffusion_model.transformer_blocks[index]
        output = (conditioning or {}).pop(self.modulation_layers(diffusion_model, index)[0], None)
        if output is None:
            temb = block_args["vec"]
            if temb.shape[0] != block_args["txt"].shape[0]:  # index_timestep_zero: [temb; temb at t = 0]
                temb = temb.chunk(2, dim=0)[0]
            output = block.txt_mod(temb[rows])
        else:
            output = output[rows]
        chunks = [c[:, None] for c in output.chunk(6, dim=-1)]
        return Modulation(*chunks[:3]), Modulation(*chunks[3:])

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
            qkv_layers=(attn.add_q_proj, attn.add_k_proj, attn.add_v_proj),
            proj=attn.to_add_out,
            norm2=block.txt_norm2,
            mlp=block.txt_mlp,
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
