"""What the families on Flux-style double blocks share (Flux.1, Flux.2, Chroma, HunyuanVideo, LongCat-Image): the
block layout, the text stream's modules, text-then-image joint attention, forward_orig's returned-dict workaround,
text positions through the model's RoPE, and Flux.1's per-block modulation. Bases for those families, not a
family of its own."""

import torch
from comfy.ldm.flux.layers import timestep_embedding
from einops import rearrange
from torch import Tensor

from ...ca_core.stream import ImageAttention, TextStreamWeights
from .base import ModelCall, ModelFamily, table_rope


def modulation_rows(modulation, rows):
    """One ModulationOut (shift, scale, gate of [B, 1, C]) cut to the batch rows of the positive prompt."""
    return type(modulation)(shift=modulation.shift[rows], scale=modulation.scale[rows], gate=modulation.gate[rows])


def text_position_rope(diffusion_model, call: ModelCall, positions: list[int]):
    """Each concept at text position p on the axes the model gives its text tokens' positions (txt_ids_dims: Flux.2's
    last, LongCat-Image's rows and columns), zero on the others, through the model's own RoPE."""
    ids = torch.zeros(1, len(positions), len(diffusion_model.params.axes_dim), device=call.x.device)
    for axis in diffusion_model.params.txt_ids_dims:
        ids[0, :, axis] = torch.tensor(positions, dtype=ids.dtype, device=ids.device)
    return table_rope(diffusion_model.pe_embedder(ids).to(call.x.dtype))


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


class FluxBlockModulation(FluxDoubleBlocks):
    """Flux.1's modulation, which LongCat-Image keeps: each double block modulates its text from the timestep's (and
    guidance's) embedding plus the pooled vector's; the concepts' is the same with a zero pooled vector."""

    def concept_conditioning(self, call: ModelCall, rows) -> Tensor:
        """Timestep (+ guidance) embedding with a zero pooled text vector, as the paper's stream."""
        dm, x = call.diffusion_model, call.x[rows]
        guidance = call.get("guidance")
        vec = dm.time_in(timestep_embedding(call.timestep[rows], 256).to(x.dtype))
        if dm.params.guidance_embed and guidance is not None:
            vec = vec + dm.guidance_in(timestep_embedding(guidance[rows], 256).to(x.dtype))
        if getattr(dm, "vector_in", None) is not None:
            zero_pooled = torch.zeros((x.shape[0], dm.params.vec_in_dim), device=x.device, dtype=x.dtype)
            vec = vec + dm.vector_in(zero_pooled)
        return vec

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: Tensor, rows):
        return diffusion_model.double_blocks[index].txt_mod(conditioning)
