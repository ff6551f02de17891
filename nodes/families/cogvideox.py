"""The CogVideoX family: CogVideoX 1.0 (2B, 5B) and 1.5 (5B), text-to-video, image-to-video and the Fun
inpainting models, on ComfyUI's CogVideoXTransformer3DModel (ComfyUI 0.33 on; older hosts have no CogVideoX,
and the family is left out there).

Every CogVideoXBlock is joint: text and video tokens share one q/k/v, q/k LayerNorm, output projection and
feed-forward, and differ only in their modulation: CogVideoXLayerNormZero gives the video tokens
(shift, scale, gate) and the text tokens (enc_shift, enc_scale, enc_gate), from temb. The concepts take the
text's side, as the paper authors' CogVideoX code does:
- their modulation is the text's enc_shift/enc_scale/enc_gate of norm1 and norm2; temb comes from the
  timestep (plus the ofs embedding of 1.5 image-to-video) alone: CogVideoX has no pooled text vector, so
  the concepts' modulation is exactly the text tokens', read from the modulation layers' own outputs;
- they are embedded by patch_embed.text_proj, as the prompt; text tokens get no positional embedding (1.0's
  sincos or learned embedding is zero on them) and no RoPE (5B, 1.5 rotate the video tokens only), so the
  concepts have no positions either.
- ComfyUI's CogVideoX forward calls its blocks directly, with no patches_replace entry: the concept stream
  reaches each block through its joint attention call (BlockEntry.ATTENTION, nodes/stream/), whose
  transformer_options carry the override. The concepts' q/k/v, projection and feed-forward layers run on the
  casts of the text's own calls (nodes/stream/shared_casts.py).
- Image-to-video's image latent and the inpainting models' mask and masked video are concatenated to the
  noise along the channels (model_base.CogVideoX.concat_cond): they are channels of the same tokens, so the
  maps cover the generated frames, one token grid per token frame.
- Token frames: 1.0 patches each latent frame alone; 1.5 pairs latent frames (patch_size_t 2, the last one
  padded as the forward pads it). The VAE makes 4 video frames per latent frame after a first frame alone.
"""

import contextlib
import functools

import torch
import torch.nn.functional as F
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from .base import (
    ALL_BLOCKS,
    BlockEntry,
    ModelCall,
    ModelFamily,
    TypicalCfg,
    causal_video_frame_tokens,
    keeping_outputs,
    split_heads,
)

try:  # ComfyUI 0.33 on
    from comfy.ldm.cogvideo.model import CogVideoXTransformer3DModel, get_timestep_embedding
except ImportError:
    CogVideoXTransformer3DModel = get_timestep_embedding = None


def embed_timestep(diffusion_model, timestep: Tensor, dtype: torch.dtype, ofs: Tensor | None = None) -> Tensor:
    """temb as CogVideoXTransformer3DModel._forward makes it: the timestep embedding, plus the ofs embedding
    where the model has one and the call passes ofs."""
    dm = diffusion_model
    t_emb = get_timestep_embedding(timestep, dm.time_proj_dim, dm.time_proj_flip, dm.time_proj_shift).to(dtype)
    emb = dm.time_embedding_linear_2(dm.time_embedding_act(dm.time_embedding_linear_1(t_emb)))
    if dm.ofs_embedding_linear_1 is not None and ofs is not None:
        ofs_emb = get_timestep_embedding(ofs, dm.ofs_proj_dim, dm.time_proj_flip, dm.time_proj_shift).to(dtype)
        emb = emb + dm.ofs_embedding_linear_2(dm.ofs_embedding_act(dm.ofs_embedding_linear_1(ofs_emb)))
    return emb


class TextModulation:
    """The concepts' (shift, scale, gate) from one CogVideoXLayerNormZero, resolved when first read: the text
    half of the layer's own output in this model call where it has run by then (watch_call kept it), else
    computed from temb (text_modulations). The concepts' modulation is the text tokens' own, since no pooled
    vector enters temb; reading it costs nothing, where computing it reads half the layer's weight again."""

    def __init__(self, norm, temb: Tensor, rows, outputs: dict):
        self._norm, self._temb, self._rows, self._outputs = norm, temb, rows, outputs

    @functools.cached_property
    def _chunks(self) -> Modulation:
        output = self._outputs.get(self._norm.linear)
        if output is None:
            return text_modulations(self._norm, self._temb)
        return text_half(output[self._rows])

    shift = property(lambda self: self._chunks.shift)
    scale = property(lambda self: self._chunks.scale)
    gate = property(lambda self: self._chunks.gate)


def text_half(layer_output: Tensor) -> Modulation:
    """The text tokens' (enc_shift, enc_scale, enc_gate), [B, 1, C] each, from a whole CogVideoXLayerNormZero
    linear output [B, 6C] (the video's three chunks come first)."""
    return Modulation(*(chunk[:, None] for chunk in layer_output.chunk(6, dim=1)[3:]))


def text_modulations(norm, temb: Tensor) -> Modulation:
    """The text tokens' (enc_shift, enc_scale, enc_gate) of a CogVideoXLayerNormZero, [B, 1, C] each.

    They are the last half of norm.linear's outputs: where its weight is a plain tensor used as is, only
    those rows are computed (the video's half would be half the layer read for nothing). A layer that casts
    or patches its weight as it runs (fp8, GGUF, LoRA on the fly, offloading) runs whole."""
    layer, x = norm.linear, norm.silu(temb)
    weight, bias = layer.weight, layer.bias
    if (type(weight) in (Tensor, torch.nn.Parameter) and (bias is None or type(bias) in (Tensor, torch.nn.Parameter))
            and not getattr(layer, "comfy_cast_weights", False) and not getattr(layer, "weight_function", None)
            and not getattr(layer, "bias_function", None) and weight.dtype == x.dtype and weight.device == x.device):
        text_rows = slice(weight.shape[0] // 2, None)
        chunks = F.linear(x, weight[text_rows], None if bias is None else bias[text_rows]).chunk(3, dim=1)
        return Modulation(*(chunk[:, None] for chunk in chunks))
    return text_half(layer(x))


class CogVideoXFamily(ModelFamily):
    short_name = "CogVideoX"  # 1.0 2B/5B, 1.5 5B; text-to-video, image-to-video, Fun inpainting
    since_comfyui = "0.33"
    typical_cfg = TypicalCfg("6")
    available = CogVideoXTransformer3DModel is not None
    # `layers = auto` averages every block: the authors' CogVideoX example averages blocks 0-29, all of the
    # 2B's 30 and the first 30 of the 5B's 42; auto can name only the last blocks, so it takes them all (type
    # 0-29 for their choice on the 5B). The concepts' step costs K tokens per block, next to the video's.
    default_layers = ALL_BLOCKS
    block_entry = BlockEntry.ATTENTION
    video = True

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, CogVideoXTransformer3DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """temb of the chosen rows, as the forward makes it, and the prompt's length (the joint attention holds
        the text tokens first)."""
        ofs = call.get("ofs")
        temb = embed_timestep(call.diffusion_model, call.timestep[rows], call.x.dtype,
                              None if ofs is None else ofs[rows])
        return {"temb": temb, "text_tokens": call.get("context").shape[1], "layer_outputs": {}}

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        block, temb, outputs = diffusion_model.blocks[index], conditioning["temb"], conditioning["layer_outputs"]
        return TextModulation(block.norm1, temb, rows, outputs), TextModulation(block.norm2, temb, rows, outputs)

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep each block's modulation layers' outputs of this call (TextModulation reads them)."""
        layers = [norm.linear for block in diffusion_model.blocks for norm in (block.norm1, block.norm2)]
        with keeping_outputs(layers, conditioning["layer_outputs"]):
            yield

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The block's shared layers; the text's own are only its modulations (concept_modulations)."""
        block = diffusion_model.blocks[index]

        def qkv(x: Tensor) -> Tensor:
            return torch.cat([block.q(x), block.k(x), block.v(x)], dim=-1)

        return TextStreamWeights(
            num_heads=block.num_heads,
            norm1=block.norm1.norm,
            qkv=qkv,
            qkv_layers=(block.q, block.k, block.v),
            qk_norm=lambda q, k, v: (block.norm_q(q), block.norm_k(k)),
            proj=block.attn_out,
            norm2=block.norm2.norm,
            mlp=torch.nn.Sequential(block.ff_proj, torch.nn.GELU(approximate="tanh"), block.ff_out),
        )

    def modulation_layers(self, diffusion_model, index: int) -> list:
        block = diffusion_model.blocks[index]
        return [block.norm1.linear, block.norm2.linear]

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        """As CogVideoXPatchEmbed embeds the prompt: text_proj in its own dtype, back to the input's."""
        text_proj = diffusion_model.patch_embed.text_proj
        return text_proj(concept_context.to(text_proj.weight.dtype)).to(concept_context.dtype)

    def text_tokens(self, block_args: dict) -> int:
        return block_args["conditioning"]["text_tokens"]

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """The joint attention takes [B, L, H*D] (heads flattened), text first; the video tokens' keys carry
        their RoPE (5B, 1.5)."""
        heads = diffusion_model.blocks[index].num_heads
        return ImageAttention(keys=split_heads(k[:, text_tokens:], heads), values=split_heads(v[:, text_tokens:], heads),
                              outputs=out[:, text_tokens:])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int, int]:
        """Token frames, rows and columns of latent x [B, C, frames, H, W], after the forward's padding to whole
        patches (patch_size_t latent frames per token frame on 1.5)."""
        p, p_t = diffusion_model.patch_size, diffusion_model.patch_size_t or 1
        return -(-x.shape[-3] // p_t), -(-x.shape[-2] // p), -(-x.shape[-1] // p)

    def video_frame_tokens(self, diffusion_model, latent_frames: int) -> tuple[int, ...]:
        """For each video frame the VAE decodes (the first alone, then 4 per latent frame), its token frame."""
        return causal_video_frame_tokens(latent_frames, diffusion_model.temporal_compression_ratio,
                                         diffusion_model.patch_size_t or 1)
