"""The OmniGen2 family, on ComfyUI's OmniGen2Transformer2DModel. A single-stream model in Lumina 2's style: text
and image tokens share every weight of a joint layer.

How the prompt runs, and so the concepts:
- the caption is embedded (time_caption_embed's caption_embedder) and refined alone (context_refiner, no
  modulation); each concept is refined as a caption of its own one token, at the position a one-word prompt
  gives it: caption token j sits at RoPE position (j, j, j);
- the image (and each reference image, ReferenceLatent's) is embedded and refined alone; then
  `cat(caption, references, image)` runs through `layers`: one scale-only modulation from the timestep alone
  (no pooled vector, so the concepts' modulation is the tokens' own, read from each layer's own call), q/k/v
  with grouped key/value heads, q/k RMSNorm, RoPE, the output projection with its post-norm and a tanh gate,
  and a SwiGLU feed-forward with its post-norm;
- the concepts attend over [concept keys; the image stream's keys], references included; the maps cover the
  generated image only;
- the forward has no DIFFUSION_MODEL wrapper (the stream opens per APPLY_MODEL call) and calls its layers with
  no patches_replace entry: the stream reaches each through its attention call (BlockEntry.ATTENTION), the
  refiners' calls, which come first, counted out.
"""

import contextlib
import math

import torch
from comfy.ldm.omnigen.omnigen2 import OmniGen2Transformer2DModel
from torch import Tensor

from ...ca_core.stream import ImageAttention, TextStreamWeights
from . import tokens
from .base import (
    BlockEntry,
    Hook,
    ModelCall,
    ModelFamily,
    generated_image_first,
    keeping_outputs,
    patch_grid,
    refine_as_captions,
    repeat_kv_heads,
    scale_gate_modulations,
    table_rope,
    text_before_image,
)


class OmniGen2Family(ModelFamily):
    """auto: the last four joint layers, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "OmniGen2"
    hook = Hook.APPLY_MODEL
    block_entry = BlockEntry.ATTENTION
    token_alignment = staticmethod(tokens.chat_template_prompt)  # Qwen2.5-VL's template, kept whole by the encoder

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, OmniGen2Transformer2DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.layers

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """The timestep embedding of the chosen rows, how many image tokens the joint layers hold (references and
        the generated image), and how many attention calls the refiners make before the first joint layer."""
        dm, x = call.diffusion_model, call.x
        references = list(call.get("ref_latents") or [])
        refiners = len(dm.context_refiner) + len(dm.noise_refiner) + (len(dm.ref_image_refiner) if references else 0)
        return {"image_tokens": sum(self._image_tokens(dm, latent) for latent in [*references, x]),
                "refiner_calls": refiners, "rows": rows, "layer_outputs": {}}

    @staticmethod
    def _image_tokens(diffusion_model, latent: Tensor) -> int:
        return math.prod(patch_grid(latent, diffusion_model.patch_size))

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: dict) -> int | None:
        index = number - conditioning["refiner_calls"]
        return index if index >= 0 else None

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep each joint layer's modulation output of this call: the concepts' modulation is the tokens' own."""
        with keeping_outputs([layer.norm1.linear for layer in diffusion_model.layers], conditioning["layer_outputs"]):
            yield

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """The layer's (scale, tanh gate) for attention and feed-forward; the modulation has no shift."""
        output = conditioning["layer_outputs"][diffusion_model.layers[index].norm1.linear]  # made before its attention
        return scale_gate_modulations(output[conditioning["rows"]])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The layer's shared weights; the post-norms ride with the projection and the feed-forward they follow."""
        block = diffusion_model.layers[index]
        attn = block.attn

        def qkv(x: Tensor) -> Tensor:
            k, v = (repeat_kv_heads(layer(x), attn.kv_heads, attn.heads, attn.dim_head) for layer in (attn.to_k, attn.to_v))
            return torch.cat([attn.to_q(x), k, v], dim=-1)

        return TextStreamWeights(
            num_heads=attn.heads, norm1=block.norm1.norm, qkv=qkv,
            qk_norm=lambda q, k, v: (attn.norm_q(q), attn.norm_k(k)),
            proj=lambda out: block.norm2(attn.to_out[0](out)), norm2=block.ffn_norm1,
            mlp=lambda x: block.ffn_norm2(block.feed_forward(x)))

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
