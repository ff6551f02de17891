"""What the families on OmniGen2's transformer share (OmniGen2; Boogu, which puts double-stream blocks before
OmniGen2's layers): the caption's path, the refiners' attention calls before the joint blocks, and joint attention
over [caption; references; image] with grouped key/value heads. A base, not a family.

- the caption is embedded (time_caption_embed's caption_embedder) and refined alone (context_refiner, no
  modulation); each concept is refined as a caption of its own one token, at the position a one-word prompt
  gives it: caption token j sits at RoPE position (j, j, j), in the refiner and the joint attention alike;
- the image (and each reference image, ReferenceLatent's) is embedded and refined alone first (noise_refiner,
  ref_image_refiner): those attention calls come before the first joint block's, and are counted out;
- the concepts attend over [concept keys; the image stream's keys], references included; the maps cover the
  generated image only;
- the forward has no DIFFUSION_MODEL wrapper (the stream opens per APPLY_MODEL call) and calls its blocks with no
  patches_replace entry: the stream reaches each through its joint attention call (BlockEntry.ATTENTION).
"""

import math

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention
from .base import (
    BlockEntry,
    Hook,
    ModelCall,
    ModelFamily,
    generated_image_first,
    patch_grid,
    refine_as_captions,
    table_rope,
    text_before_image,
)


class OmniGen2Blocks(ModelFamily):
    """Joint blocks over OmniGen2's caption and image streams."""

    hook = Hook.APPLY_MODEL
    block_entry = BlockEntry.ATTENTION

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """How many image tokens the joint attentions hold (references and the generated image), how many attention
        calls the refiners make before the first joint block, the chosen rows, and room for the joint blocks'
        modulation outputs of this call (watch_call)."""
        dm, x = call.diffusion_model, call.x
        references = list(call.get("ref_latents") or [])
        refiners = len(dm.context_refiner) + len(dm.noise_refiner) + (len(dm.ref_image_refiner) if references else 0)
        return {"image_tokens": sum(math.prod(patch_grid(latent, dm.patch_size)) for latent in [*references, x]),
                "refiner_calls": refiners, "rows": rows, "layer_outputs": {}}

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        """Each concept as a one-token caption: caption_embedder, then context_refiner at its own RoPE position."""
        dm = diffusion_model
        return refine_as_captions(dm.context_refiner, dm.time_caption_embed.caption_embedder(concept_context),
                                  rope_table(dm, positions, concept_context.device))

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at its caption position (p, p, p), through the model's own RoPE table."""
        return table_rope(rope_table(diffusion_model, positions, call.x.device).movedim(0, 2))  # [1, 1, K, D/2, 2, 2]

    text_tokens = staticmethod(text_before_image)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q [B, H, L, D], k/v [B, KV, L, D] (the attention repeats the grouped heads itself), outputs [B, L, H * D];
        the image stream after the caption: references, then the generated image, rolled to come first."""
        repeat = q.shape[1] // k.shape[1]
        keys, values = (t[:, :, text_tokens:].repeat_interleave(repeat, dim=1) for t in (k, v))
        return generated_image_first(keys, values, out[:, text_tokens:], image_tokens)

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        return patch_grid(x, diffusion_model.patch_size)


def rope_table(diffusion_model, positions: list[int], device) -> Tensor:
    """The model's RoPE table for captions of one token at (p, p, p): [K, 1, 1, D / 2, 2, 2]."""
    ids = torch.tensor(positions, device=device, dtype=torch.float32).view(-1, 1, 1).expand(-1, 1, 3)
    return diffusion_model.rope_embedder.rope_embedder(ids).movedim(1, 2)
