"""The OmniGen2 family, on ComfyUI's OmniGen2Transformer2DModel. A single-stream model in Lumina 2's style: text
and image tokens share every weight of a joint layer.

How the prompt runs, and so the concepts: the caption's and the image's paths up to the joint layers are
OmniGen2Blocks' (omnigen2_blocks.py); then `cat(caption, references, image)` runs through `layers`: one scale-only
modulation from the timestep alone (no pooled vector, so the concepts' modulation is the tokens' own, read from
each layer's own call), q/k/v with grouped key/value heads, q/k RMSNorm, RoPE, the output projection with its
post-norm and a tanh gate, and a SwiGLU feed-forward with its post-norm.
"""

import contextlib

import torch
from comfy.ldm.omnigen.omnigen2 import OmniGen2Transformer2DModel
from torch import Tensor

from ...ca_core.stream import TextStreamWeights
from . import tokens
from .base import keeping_outputs, repeat_kv_heads, scale_gate_modulations
from .omnigen2_blocks import OmniGen2Blocks


class OmniGen2Family(OmniGen2Blocks):
    """auto: the last four joint layers, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "OmniGen2"
    token_alignment = staticmethod(tokens.chat_template_prompt)  # Qwen2.5-VL's template, kept whole by the encoder

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, OmniGen2Transformer2DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.layers

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
            qkv_layers=(attn.to_q, attn.to_k, attn.to_v),
            proj=lambda out: block.norm2(attn.to_out[0](out)), proj_layers=(attn.to_out[0],), norm2=block.ffn_norm1,
            mlp=lambda x: block.ffn_norm2(block.feed_forward(x)), mlp_layers=(block.feed_forward,))
