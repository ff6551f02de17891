"""The PixelDiT family: PixelDiT (text to image) and PiD (its super-resolution sibling), on ComfyUI's PixDiT_T2I and
PidNet (ComfyUI 0.33 on; older hosts have neither, and the family is left out there). Pixel space: no VAE.

The model runs its patch blocks (MMDiTBlockT2I: text and image with weights of their own, one joint attention, text
first), then pixel blocks over the image alone. The concepts take the patch blocks' text weights and are scored there.
- The prompt is Gemma 2 2B's states of PixelDiT's instruction template (chi prompt) then the prompt, padded; the
  encoder keeps its start token and the last 299 positions, so the template's head is dropped. y_embedder (a
  projection and an RMSNorm), then a learnt position embedding per text position (y_pos_embedding), then 1-D RoPE at
  the same positions: each concept takes both at its own token's position in its one-word encoding.
- Every modulation is adaLN of SiLU(timestep embedding) alone (no pooled vector): the concepts' is the text's own,
  adaLN_modulation_txt's six chunks (shift, scale, gate for the attention and the MLP).
- The text's own layers: norm_y1, qkv_y with per-head RMSNorms q_norm_y / k_norm_y, proj_y, norm_y2, the SwiGLU
  mlp_y.
- The forward calls its blocks with no patches_replace entry: the stream reaches each patch block through its joint
  attention call (BlockEntry.ATTENTION), the call's first patch-depth calls; the pixel blocks attend after them. The
  joint attention returns its output heads unmerged ([B, H, L, D]).
- PiD adds a low-resolution image's features to the image tokens before some blocks: the text path is PixelDiT's.
"""

import math

import torch
from comfy.ldm.flux.math import rope
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from . import tokens
from .base import BlockEntry, ModelCall, ModelFamily, patch_grid, table_rope, text_before_image

try:  # ComfyUI 0.33 on
    from comfy.ldm.pixeldit.model import PixDiT_T2I
    from comfy.text_encoders.pixeldit import _PIXELDIT_CHI_PROMPT as CHI_PROMPT
except ImportError:
    PixDiT_T2I, CHI_PROMPT = None, None


def chi_prompt_tokens(clip, name: str, tokens_of_name: dict, length: int) -> list[int]:
    """PixelDiT's Gemma 2 tokens: its tokenizer puts the chi prompt before the concept and pads the whole to the chi
    prompt's length + 298; the encoder keeps the start token and the last 299 positions. The concept's own tokens
    follow what it shares with the chi prompt alone (the chi prompt's last piece may merge with the concept's first:
    the tokenizer's own ids say), up to the padding; counted in the positions the encoder keeps."""
    (key, batches), = tokens_of_name.items()
    ids, words = tokens.token_ids(batches), tokens.word_ids(tokens_of_name)[key]
    head = getattr(clip.tokenizer, key).tokenizer(CHI_PROMPT)["input_ids"]
    start = 0
    while start < min(len(ids), len(head)) and ids[start] == head[start]:
        start += 1
    kept = list(range(len(ids))) if len(ids) <= length else [0, *range(len(ids) - length + 1, len(ids))]
    own = [i for i in range(start, len(ids)) if words[i] > 0]
    if len(kept) != length or not set(own) <= set(kept):
        raise tokens.unaligned(name, f"{len(ids)} tokens, the chi prompt's {start}", length,
                               "load PixelDiT's own text encoder (gemma 2 2b) with CLIPLoader type pixeldit")
    return [kept.index(i) for i in own]


class PixelDiTFamily(ModelFamily):
    """auto: the last four patch blocks, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "PixelDiT"
    also = ("PiD",)
    since_comfyui = "0.33"
    available = PixDiT_T2I is not None
    block_entry = BlockEntry.ATTENTION
    token_alignment = staticmethod(chi_prompt_tokens)

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, PixDiT_T2I)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.patch_blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """The modulation input of these rows (SiLU of the timestep embedding, as the forward's `condition`), and
        how many image tokens and patch blocks there are."""
        dm, x = call.diffusion_model, call.x
        timesteps = call.timestep[rows].reshape(-1)
        t_emb = dm.t_embedder(timesteps, x.dtype).view(timesteps.shape[0], -1, dm.hidden_size)
        return {"condition": torch.nn.functional.silu(t_emb), "image_tokens": math.prod(self.token_grid(dm, x)),
                "blocks": len(dm.patch_blocks)}

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: dict) -> int | None:
        """The patch blocks' joint attentions are the call's first; the pixel blocks' come after them."""
        return number if number < conditioning["blocks"] else None

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        chunks = diffusion_model.patch_blocks[index].adaLN_modulation_txt(conditioning["condition"]).chunk(6, dim=-1)
        return Modulation(*chunks[:3]), Modulation(*chunks[3:])

    def modulation_layers(self, diffusion_model, index: int) -> list:
        return [diffusion_model.patch_blocks[index].adaLN_modulation_txt[0]]

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.patch_blocks[index]
        attn = block.attn
        return TextStreamWeights(
            num_heads=attn.num_heads, norm1=block.norm_y1, qkv=attn.qkv_y,
            qk_norm=lambda q, k, v: (attn.q_norm_y(q), attn.k_norm_y(k)),
            proj=attn.proj_y, norm2=block.norm_y2, mlp=block.mlp_y,
        )

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        """y_embedder, then the learnt position embedding of each concept's own text position."""
        dm = diffusion_model
        positions = positions or [0] * concept_context.shape[1]
        if max(positions) >= dm.txt_max_length:
            raise ValueError(f"a concept's token sits at text position {max(positions)}, past the {dm.txt_max_length} "
                             "this PixelDiT model reads: use PixelDiT's own text encoder (CLIPLoader type pixeldit)")
        embedded = dm.y_embedder(concept_context)
        return embedded + dm.y_pos_embedding[:, positions].to(embedded)

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at its own token's text position, through the model's own 1-D RoPE; none where the model
        turns no text (use_text_rope off)."""
        dm = diffusion_model
        if not dm.use_text_rope:
            return None
        ids = torch.tensor(positions, dtype=torch.float32, device=call.x.device).reshape(1, -1)
        return table_rope(rope(ids, dm.hidden_size // dm.num_groups, dm.text_rope_theta)[:, None].to(call.dtype))

    text_tokens = staticmethod(text_before_image)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v and outputs [B, H, L, D] (the joint attention returns its heads unmerged), the text first."""
        return ImageAttention(keys=k[:, :, text_tokens:], values=v[:, :, text_tokens:],
                              outputs=out[:, :, text_tokens:].transpose(1, 2).flatten(2))

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        """The forward pads the image to whole patches."""
        return patch_grid(x, diffusion_model.patch_size)
