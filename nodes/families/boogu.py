"""The Boogu family (Boogu-Image), on ComfyUI's BooguTransformer2DModel (ComfyUI 0.33 on): OmniGen2's transformer
with double-stream blocks between its refiners and its single-stream layers.

How the prompt runs, and so the concepts: the caption's and the image's paths up to the joint blocks are
OmniGen2Blocks' (omnigen2_blocks.py), the caption from Qwen3-VL's last hidden state over Boogu's chat template,
kept whole; then every double-stream block runs one joint attention over [caption; references; image], each
stream with its own weights. The text's (instruct) weights, which the concepts reuse:
- two Lumina RMSNormZero modulations from the timestep alone (no pooled vector, so the concepts' modulation is the
  text tokens' own, read from each block's own call): instruct_norm1 gives the attention's scale and tanh gate and
  the MLP's scale and tanh gate; instruct_norm2 gives the MLP input's own norm, scale and shift;
- instruct_to_q/k/v (grouped key/value heads), the shared per-head q/k RMSNorms and RoPE (caption token j at
  (j, j, j)), instruct_out then the shared to_out, and the post-norm instruct_attn_norm;
- the MLP reads the block's INPUT, not the attention's residual: (1 + scale_mlp) (norm2(x) (1 + scale2)) + shift,
  then instruct_ffn_norm1, the SwiGLU instruct_feed_forward and instruct_ffn_norm2; its gated output adds to the
  attention's residual (TextStreamWeights.mlp_reads_input).
Each double block makes two attention calls, the joint one first, then the image's own self-attention (which the
concepts never enter); the stream counts the refiners' and the self-attentions' calls out.
Maps come from the double-stream blocks only: the single-stream layers after them are OmniGen2's, sharing every
weight between text and image, and are out of scope for this family.
"""

import contextlib

import torch
from torch import Tensor

from ...ca_core.stream import Modulation, TextStreamWeights
from . import tokens
from .base import keeping_outputs, repeat_kv_heads
from .omnigen2_blocks import OmniGen2Blocks

try:
    from comfy.ldm.boogu.model import BooguTransformer2DModel
except ImportError:
    BooguTransformer2DModel = None

CALLS_PER_BLOCK = 2  # a double block's joint attention, then the image's self-attention


class BooguFamily(OmniGen2Blocks):
    """auto: the last four double blocks, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "Boogu"
    since_comfyui = "0.33"
    available = BooguTransformer2DModel is not None
    token_alignment = staticmethod(tokens.whole_qwen_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, BooguTransformer2DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.double_stream_layers

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: dict) -> int | None:
        """After the refiners' calls, two per double block, the joint attention first; None past the double blocks."""
        call = number - conditioning["refiner_calls"]
        index, joint = divmod(call, CALLS_PER_BLOCK)
        return index if call >= 0 and joint == 0 and index < conditioning["double_blocks"] else None

    def concept_conditioning(self, call, rows) -> dict:
        return {**super().concept_conditioning(call, rows),
                "double_blocks": len(call.diffusion_model.double_stream_layers)}

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep each double block's text modulation outputs of this call: the concepts' modulation is the text's."""
        layers = [norm.linear for block in diffusion_model.double_stream_layers
                  for norm in (block.instruct_norm1, block.instruct_norm2)]
        with keeping_outputs(layers, conditioning["layer_outputs"]):
            yield

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """Attention: instruct_norm1's scale and tanh gate, no shift. MLP: the two scales in one (its input is
        (1 + scale_mlp) (1 + scale2) norm2(x) + shift), instruct_norm2's gate chunk as the shift, and a tanh gate."""
        block, outputs, chosen = diffusion_model.double_stream_layers[index], conditioning["layer_outputs"], \
            conditioning["rows"]
        scale_msa, gate_msa, scale_mlp, gate_mlp = outputs[block.instruct_norm1.linear][chosen, None].chunk(4, dim=-1)
        scale2, shift_mlp, _, _ = outputs[block.instruct_norm2.linear][chosen, None].chunk(4, dim=-1)
        return (Modulation(0.0, scale_msa, gate_msa.tanh()),
                Modulation(shift_mlp, (1 + scale_mlp) * (1 + scale2) - 1, gate_mlp.tanh()))

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The instruct stream's layers; the post-norms ride with the projection and the feed-forward they follow."""
        block = diffusion_model.double_stream_layers[index]
        attn = block.img_instruct_attn
        streams = attn.processor

        def qkv(x: Tensor) -> Tensor:
            k, v = (repeat_kv_heads(layer(x), attn.kv_heads, attn.heads, attn.dim_head)
                    for layer in (streams.instruct_to_k, streams.instruct_to_v))
            return torch.cat([streams.instruct_to_q(x), k, v], dim=-1)

        return TextStreamWeights(
            num_heads=attn.heads, norm1=block.instruct_norm1.norm, qkv=qkv,
            qk_norm=lambda q, k, v: (attn.norm_q(q), attn.norm_k(k)),
            qkv_layers=(streams.instruct_to_q, streams.instruct_to_k, streams.instruct_to_v),
            proj=lambda out: block.instruct_attn_norm(attn.to_out[0](streams.instruct_out(out))),
            proj_layers=(streams.instruct_out, attn.to_out[0]), norm2=block.instruct_norm2.norm,
            mlp=lambda x: block.instruct_ffn_norm2(block.instruct_feed_forward(block.instruct_ffn_norm1(x))),
            mlp_layers=(block.instruct_feed_forward,),
            mlp_reads_input=True)
