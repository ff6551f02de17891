"""The Z-Image family: Z-Image (Turbo, Base, and its pixel-space variant) and Lumina 2 (with NetaYume Lumina and
NewBie), on ComfyUI's NextDiT. A single-stream model: text and image tokens share every weight of a block.

How the prompt runs, and so the concepts:
- the caption is embedded (cap_embedder), refined by context_refiner (self-attention over the caption alone,
  no modulation), then `cat(caption, image)` runs through `layers`, JointTransformerBlocks with ONE set of
  weights for all tokens: attention_norm1, a scale-only modulation from adaLN_modulation, one qkv (grouped
  query heads on Lumina 2), q/k RMSNorm, RoPE, the output projection with its post-norm attention_norm2 and a
  tanh gate, then the same for the SwiGLU feed-forward (ffn_norm1, ffn_norm2);
- on a single-stream model the text's weights ARE the shared weights: the concepts take all of them, and the
  text's modulation, which comes from the timestep alone (NewBie's pooled CLIP vector enters it: zero for the
  concepts, as the model itself takes it when none is given);
- each concept is refined by context_refiner as a caption of its own one token, at the position a one-word
  prompt gives it: caption token j sits at RoPE position (j + 1, 0, 0) (ComfyUI 0.8 on; (j, 0, 0) before).
  Z-Image pads every caption to a multiple of 32 with a learned pad token, a length the model needs, not part
  of the prompt: the concept's one token is refined alone;
- in the joint layers the concepts attend over [concept keys; the image's keys]. The image's keys are the
  image stream's tokens as the block holds them: the generated image's, Z-Image's pad tokens after them, and
  the reference images' (Z-Image Omni's ReferenceLatent) before them; the maps cover the generated image only.
- NextDiT calls its blocks with no patches_replace entry, and its refiners call attention too: the stream
  reaches each joint block through its attention call (BlockEntry.ATTENTION), which ComfyUI 0.8 on names by
  transformer_options' block_index; before 0.8 the refiners' calls, which come first, are counted out.
"""

import contextlib
import inspect
import math

import torch
from comfy.ldm.lumina.model import NextDiT
from torch import Tensor

from ...ca_core.stream import ImageAttention, TextStreamWeights
from . import tokens
from .base import (
    BlockEntry,
    ModelCall,
    ModelFamily,
    TypicalCfg,
    generated_image_first,
    keeping_outputs,
    patch_grid,
    refine_as_captions,
    repeat_kv_heads,
    scale_gate_modulations,
    table_rope,
    text_before_image,
)

# Caption token j's RoPE position along the first axis: j + 1 from ComfyUI 0.8 on (which added Z-Image and its
# pad tokens), j before.
CAPTION_START = 1 if "pad_tokens_multiple" in inspect.signature(NextDiT.__init__).parameters else 0


def padding(tokens: int, multiple: int | None) -> int:
    """How many pad tokens Z-Image appends to `tokens` tokens (none where the model pads nothing)."""
    return (-tokens) % multiple if multiple else 0


class ZImageFamily(ModelFamily):
    """auto: the last four joint layers, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "Z-Image"
    variants = ("Turbo", "Base")
    also = ("Lumina 2",)
    typical_cfg = TypicalCfg("1.0")  # Turbo; Base and Lumina 2 sample at about 4
    block_entry = BlockEntry.ATTENTION
    token_alignment = staticmethod(tokens.chat_template_prompt)  # Qwen3's template (Z-Image), Gemma's <bos> (Lumina 2)

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, NextDiT)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.layers

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """The concepts' modulation input (the timestep embedding; NewBie's pooled vector zero), how many image
        tokens the joint attention holds, and how many attention calls the refiners make before the first joint
        layer."""
        dm, x = call.diffusion_model, call.x
        # without a pooled vector the concepts' modulation is the tokens' own: read from each layer's own call
        # (watch_call) rather than computed again; NewBie's takes the model's input without one
        adaln = None
        if getattr(dm, "clip_text_pooled_proj", None) is not None:
            adaln = dm.t_embedder((1.0 - call.timestep[rows]) * getattr(dm, "time_scale", 1.0), dtype=x.dtype)
            adaln = dm.time_text_embed(torch.cat((adaln, adaln.new_zeros(adaln.shape[0], dm.clip_text_dim)), dim=-1))
        references = list(call.get("ref_latents") or [])
        image_tokens = sum(self._image_tokens(dm, latent) for latent in [*references, x])
        refiners = len(dm.context_refiner) + len(dm.noise_refiner)
        if references and getattr(dm, "siglip_refiner", None) is not None:  # Z-Image Omni's SigLIP tokens
            refiners += len(dm.siglip_refiner)
        return {"adaln": adaln, "image_tokens": image_tokens, "refiner_calls": refiners,
                "layer_outputs": {} if adaln is None else None, "rows": rows, "batch": x.shape[0]}

    @staticmethod
    def _image_tokens(diffusion_model, latent: Tensor) -> int:
        """An image's tokens in the joint attention: its patches, then Z-Image's pad tokens."""
        patches = math.prod(patch_grid(latent, diffusion_model.patch_size))
        return patches + padding(patches, getattr(diffusion_model, "pad_tokens_multiple", None))

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: dict) -> int | None:
        options = attention_kwargs.get("transformer_options") or {}
        if "block_index" in options:  # ComfyUI 0.8 on names the joint layer; the refiners run before it does
            return options["block_index"] if options.get("block_type") == "double" else None
        index = number - conditioning["refiner_calls"]
        return index if index >= 0 else None

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep each joint layer's modulation output of this call, where the concepts' modulation is the tokens'."""
        outputs = conditioning["layer_outputs"]
        if outputs is None:
            yield
            return
        with keeping_outputs([layer.adaLN_modulation for layer in diffusion_model.layers], outputs):
            yield

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """The layer's (scale, tanh gate) for attention and feed-forward; NextDiT's modulation has no shift."""
        modulation = diffusion_model.layers[index].adaLN_modulation
        if conditioning["adaln"] is not None:  # NewBie's: computed for the concepts' rows
            return scale_gate_modulations(modulation(conditioning["adaln"]))
        # the layer's own output, made before its attention: Omni's t = 0 rows come first, the call's after
        output = conditioning["layer_outputs"][modulation]
        return scale_gate_modulations(output[output.shape[0] - conditioning["batch"]:][conditioning["rows"]])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The layer's shared weights; the post-norms ride with the projection and the feed-forward they follow."""
        block = diffusion_model.layers[index]
        attention = block.attention
        return TextStreamWeights(
            num_heads=attention.n_local_heads,
            norm1=block.attention_norm1,
            qkv=lambda x: grouped_qkv(attention, x), qkv_layers=(attention.qkv,),
            qk_norm=lambda q, k, v: (attention.q_norm(q), attention.k_norm(k)),
            proj=lambda out: block.attention_norm2(fp16_clamped(attention.out(out))), proj_layers=(attention.out,),
            norm2=block.ffn_norm1,
            mlp=lambda x: block.ffn_norm2(fp16_clamped(block.feed_forward(x))), mlp_layers=(block.feed_forward,),
        )

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        """Each concept as a one-token caption: cap_embedder, then context_refiner at its own RoPE position."""
        dm = diffusion_model
        return refine_as_captions(dm.context_refiner, dm.cap_embedder(concept_context),
                                  rope_table(dm, positions, concept_context.device))

    def concept_position(self, index: int, length: int) -> int:
        return index + CAPTION_START

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at its caption position (p, 0, 0), through the model's own RoPE table."""
        return table_rope(rope_table(diffusion_model, positions, call.x.device).movedim(0, 2))  # [1, 1, K, D/2, 2, 2]

    text_tokens = staticmethod(text_before_image)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, H, L, D] (grouped heads already repeated), outputs [B, L, H * D]; the image stream after the
        caption: reference images, then the generated image and its pad tokens; rolled so the generated image's
        tokens come first."""
        generated = image_tokens + padding(image_tokens, getattr(diffusion_model, "pad_tokens_multiple", None))
        return generated_image_first(k[:, :, text_tokens:], v[:, :, text_tokens:], out[:, text_tokens:], generated)

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        return patch_grid(x, diffusion_model.patch_size)


def rope_table(diffusion_model, positions: list[int], device) -> Tensor:
    """The model's RoPE table for captions of one token at `positions` (p, 0, 0): [K, 1, 1, D / 2, 2, 2], the
    layout NextDiT's attention takes for K one-token captions."""
    ids = torch.zeros(len(positions), 1, 3, device=device)
    ids[:, 0, 0] = torch.tensor(positions, dtype=ids.dtype, device=device)
    return diffusion_model.rope_embedder(ids).movedim(1, 2)


def fp16_clamped(x: Tensor) -> Tensor:
    """As NextDiT clamps its attention and feed-forward outputs in fp16 (ComfyUI 0.8 on; before, fp16 overflowed
    alike for the prompt)."""
    if x.dtype == torch.float16:
        return torch.nan_to_num(x, nan=0.0, posinf=65504, neginf=-65504)
    return x


def grouped_qkv(attention, x: Tensor) -> Tensor:
    """[B, L, 3 * H * D]: queries, then keys and values with each grouped head repeated for the query heads it
    serves, as JointAttention repeats them."""
    heads, kv_heads, dim = attention.n_local_heads, attention.n_local_kv_heads, attention.head_dim
    q, k, v = attention.qkv(x).split([heads * dim, kv_heads * dim, kv_heads * dim], dim=-1)
    k, v = (repeat_kv_heads(t, kv_heads, heads, dim) for t in (k, v))
    return torch.cat([q, k, v], dim=-1)
