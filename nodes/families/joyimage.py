"""The JoyImage family (JoyAI-Image-Edit, which ComfyUI loads as JoyImage), on ComfyUI's JoyImageTransformer3DModel
(ComfyUI 0.33 on; older hosts have no JoyImage, and the family is left out there).

An image family on a 3-D latent: Wan 2.1's VAE gives one latent frame, patched 1 x 2 x 2, and the maps are of that
frame. Its blocks are double blocks of their own (text and image with weights of their own, one joint attention):
- the prompt is Qwen3-VL's chat template, whose system prompt the encoder drops, keeping "user\\n"
  (tokens.joyimage_chat_prompt); then condition_embedder.text_embedder (a linear, GELU, linear adapter), which the
  concepts take too;
- every modulation is a learnt table plus the timestep's embedding: no pooled vector, so the concepts' modulation is
  the text's own, the block's txt_mod of the block's vec;
- the text's fused qkv, per-head RMSNorms on q and k, output projection, LayerNorms (no affine) and GELU MLP;
- the image carries 3-D RoPE, the text none, so the concepts need no rotation;
- the joint attention runs over [image; text]; Edit's reference images follow the generated image, each at a frame
  position of its own: the concepts attend over them, and the maps cover the generated image only.
"""

from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from . import tokens
from .base import ModelFamily, split_heads

try:  # ComfyUI 0.33 on
    from comfy.ldm.joyimage.model import JoyImageTransformer3DModel
except ImportError:
    JoyImageTransformer3DModel = None


class JoyImageFamily(ModelFamily):
    """auto: the last four double blocks, as the paper's rule on Flux.1's (15-18 of 19). The forward rebinds its
    locals from each block's returned dict at once, so there is nothing to release."""

    short_name = "JoyImage"
    also = ("Edit",)
    since_comfyui = "0.33"
    available = JoyImageTransformer3DModel is not None
    token_alignment = staticmethod(tokens.joyimage_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, JoyImageTransformer3DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.double_blocks

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning, rows):
        chunks = [c[:, None] for c in diffusion_model.double_blocks[index].txt_mod(block_args["vec"][rows])]
        return Modulation(*chunks[:3]), Modulation(*chunks[3:])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.double_blocks[index]
        attn = block.attn
        return TextStreamWeights(
            num_heads=attn.num_attention_heads, norm1=block.txt_norm1, qkv=attn.txt_attn_qkv,
            qk_norm=lambda q, k, v: (attn.txt_attn_q_norm(q), attn.txt_attn_k_norm(k)),
            proj=attn.txt_attn_proj, norm2=block.txt_norm2, mlp=block.txt_mlp,
        )

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        return diffusion_model.condition_embedder.text_embedder(concept_context)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, L, H * D] as the block's attention takes them, outputs [B, L, H * D] before the projection; the
        image first (the generated image's tokens, then the references'), the text after."""
        heads = diffusion_model.double_blocks[index].attn.num_attention_heads
        image = slice(0, k.shape[1] - text_tokens)
        return ImageAttention(keys=split_heads(k[:, image], heads), values=split_heads(v[:, image], heads),
                              outputs=out[:, image])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        """Rows and columns of the generated frame's patches, padded to whole patches as the forward pads."""
        return tuple(-(-size // patch) for size, patch in zip(x.shape[-2:], diffusion_model.patch_size[-2:],
                                                               strict=True))

    def token_pixels(self, model) -> int:
        return model.get_model_object("diffusion_model").patch_size[-1] * self.latent_pixels(model)
