"""What the families on Flux-style double blocks share (Flux.1, Flux.2, Chroma, HunyuanVideo): the block
layout, the text stream's modules, text-then-image joint attention, and forward_orig's returned-dict
workaround. A base for those families, not a family of its own."""

from einops import rearrange
from torch import Tensor

from ...ca_core.stream import ImageAttention, TextStreamWeights
from .base import ModelFamily


def modulation_rows(modulation, rows):
    """One ModulationOut (shift, scale, gate of [B, 1, C]) cut to the batch rows of the positive prompt."""
    return type(modulation)(shift=modulation.shift[rows], scale=modulation.scale[rows], gate=modulation.gate[rows])


class FluxDoubleBlocks(ModelFamily):
    """What Flux-style double blocks share."""

    def joint_blocks(self, diffusion_model):
        return diffusion_model.double_blocks

    def release_after_stream(self, diffusion_model, last: int) -> list[tuple[str, int]]:
        """forward_orig keeps the last replacement's returned dict in a local until the forward ends, and
        with it one extra copy of the image and text tokens through every single block
        (bench/memory_check.py measures it): the block after the stream's last one and the first single
        block empty it."""
        following = [("double_block", last + 1)] if last + 1 < len(diffusion_model.double_blocks) else []
        return following + ([("single_block", 0)] if len(diffusion_model.single_blocks) else [])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.double_blocks[index]
        return TextStreamWeights(
            num_heads=block.num_heads,
            norm1=block.txt_norm1,
            qkv=block.txt_attn.qkv,
            qk_norm=block.txt_attn.norm,
            proj=block.txt_attn.proj,
            norm2=block.txt_norm2,
            mlp=block.txt_mlp,
        )

    def modulation_layers(self, diffusion_model, index: int) -> list:
        modulation = getattr(diffusion_model.double_blocks[index], "txt_mod", None)  # Flux.2, Chroma: outside
        return [] if modulation is None else [modulation.lin]

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        """Project encoded concepts into the text stream, as Flux projects its prompt."""
        txt_norm = getattr(diffusion_model, "txt_norm", None)
        if txt_norm is not None:
            concept_context = txt_norm(concept_context)
        return diffusion_model.txt_in(concept_context)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """Cut the image tokens out of the block's joint attention (text first unless flipped)."""
        if out.ndim == 4:  # an override that skipped the output reshape
            out = rearrange(out, "B H L D -> B L (H D)")
        total = q.shape[2]
        # flipped_img_txt (image first) exists on hosts before 0.33; from 0.33 on the text always comes first
        image_first = getattr(diffusion_model.double_blocks[index], "flipped_img_txt", False)
        image = slice(0, total - text_tokens) if image_first else slice(text_tokens, total)
        return ImageAttention(keys=k[:, :, image], values=v[:, :, image], outputs=out[:, image])
