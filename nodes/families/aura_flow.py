"""The AuraFlow family (v0.1 to v0.3), on ComfyUI's AuraFlow MMDiT (comfy/ldm/aura/mmdit.py).

The model runs its double layers (MMDiTBlocks: text and image with weights of their own, one joint attention, text
first), then its single layers (DiTBlocks: [text; image] through ONE set of weights, bidirectional attention). The
concepts take the double layers' text weights and are scored there alone.
- The text is 8 learnt register tokens, then the Pile-T5 prompt through cond_seq_linear; the concepts take
  cond_seq_linear alone (they attend over the image only, never the register tokens).
- Every modulation comes from the timestep's embedding alone (AuraFlow has no pooled vector), so the concepts'
  is the text's own: the block's modC of the block's vec.
- Positions are a learnt embedding added to the image tokens; the text has none, so the concepts need no rotation.
- q, k and v are separate layers (qkv_layers: the concepts reuse their casts, as the modulation's and w1o's,
  nodes/stream/shared_casts.py), with a LayerNorm per head on q and k.
- The text's MLP input is the attention's residual, normalised by normC2, and the MLP's gated output adds to the
  block's input (mlp_adds_to_input): the attention reaches the next block through the MLP alone.
"""

import torch
from comfy.ldm.aura.mmdit import MMDiT
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from .base import ModelFamily, TypicalCfg


class AuraFlowFamily(ModelFamily):
    """auto: the last four double blocks, which on AuraFlow's four (v0.1 to v0.3) is all of them. The forward's locals
    hold the last double block's outputs through the single layers anyway, so the dict the stream's last block
    returns costs nothing to keep (no release_after_stream)."""

    short_name = "AuraFlow"
    typical_cfg = TypicalCfg("3.5")

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, MMDiT)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.double_layers

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning, rows):
        chunks = diffusion_model.double_layers[index].modC(block_args["vec"][rows]).chunk(6, dim=1)
        rows_of = [chunk[:, None] for chunk in chunks]
        return Modulation(*rows_of[:3]), Modulation(*rows_of[3:])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.double_layers[index]
        attn = block.attn

        def qkv(x: Tensor) -> Tensor:
            return torch.cat([attn.w1q(x), attn.w1k(x), attn.w1v(x)], dim=-1)

        return TextStreamWeights(
            num_heads=attn.n_heads, norm1=block.normC1, qkv=qkv, qkv_layers=(attn.w1q, attn.w1k, attn.w1v),
            qk_norm=lambda q, k, v: (attn.q_norm1(q), attn.k_norm1(k)),
            proj=attn.w1o, norm2=block.normC2, mlp=block.mlpC, mlp_adds_to_input=True,
        )

    def modulation_layers(self, diffusion_model, index: int) -> list:
        return [diffusion_model.double_layers[index].modC[1]]

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        return diffusion_model.cond_seq_linear(concept_context)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, H, L, D], outputs [B, L, H * D] before w2o; the register and prompt tokens first."""
        return ImageAttention(keys=k[:, :, text_tokens:], values=v[:, :, text_tokens:], outputs=out[:, text_tokens:])
