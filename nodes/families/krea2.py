"""The Krea 2 family, on ComfyUI's SingleStreamDiT (ComfyUI 0.33 on; older hosts have no Krea 2, and the family is
left out there). A single-stream model: text and image tokens share every weight of a block.

How the prompt runs, and so the concepts:
- the prompt's 12 tapped Qwen3-VL layers go through txtfusion (per token, attention over its own layer states;
  a projection to one state; then refiner blocks over the prompt), then txtmlp. Each concept goes the same way
  as a prompt of its own one token;
- then `cat(text, image)` runs through `blocks`, SingleStreamBlocks with ONE set of weights for all tokens: a
  shift-scale-gate modulation from the timestep alone (Krea 2 has no pooled vector, so the concepts' modulation
  is the tokens' own, read from the forward), q/k/v with grouped key/value heads, per-head RMSNorm, RoPE, a
  sigmoid gate from the block's input on the attention output before the output projection, and a SwiGLU MLP;
- text tokens sit at RoPE position (0, 0, 0), so the concepts need no rotation;
- the scores use the attention outputs before the sigmoid gate and the projection; the concepts' gate comes
  from their own input, as each token's does;
- reference images (Krea 2's editing) follow the generated image in the joint sequence: the concepts attend
  over them, and the maps cover the generated image only;
- the forward calls its blocks with no patches_replace entry, and txtfusion attends too: the stream reaches each
  block through its attention call (BlockEntry.ATTENTION), named by transformer_options' block_index.
"""

import contextlib
import math

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from . import tokens
from .base import BlockEntry, ModelCall, ModelFamily, keeping_outputs, patch_grid, repeat_kv_heads, text_before_image

try:  # ComfyUI 0.33 on
    from comfy.ldm.krea2.model import SingleStreamDiT
except ImportError:
    SingleStreamDiT = None


class Krea2Family(ModelFamily):
    """auto: the last four blocks, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "Krea 2"
    variants = ("Turbo", "Raw")
    since_comfyui = "0.33"
    available = SingleStreamDiT is not None
    block_entry = BlockEntry.ATTENTION
    token_alignment = staticmethod(tokens.qwen_chat_prompt)  # Qwen-Image's template, its head dropped likewise

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, SingleStreamDiT)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """How many image tokens the joint attention holds (the generated image's, then the references'), and the
        timestep's modulation vector, kept from the forward's own call (watch_call) or made for these rows."""
        dm, x = call.diffusion_model, call.x
        image_tokens = sum(self._image_tokens(dm, latent) for latent in [x, *(call.get("ref_latents") or [])])
        return {"image_tokens": image_tokens, "rows": rows, "batch": x.shape[0], "layer_outputs": {}}

    @staticmethod
    def _image_tokens(diffusion_model, latent: Tensor) -> int:
        return math.prod(patch_grid(latent, diffusion_model.patch))

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep the forward's timestep modulation vector (tproj's first output: the call's timesteps; a second call
        makes index_timestep_zero's reference rows)."""
        with keeping_outputs([diffusion_model.tproj], conditioning["layer_outputs"]):
            yield

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: dict) -> int | None:
        options = attention_kwargs.get("transformer_options") or {}
        return options.get("block_index") if options.get("block_type") == "single" else None

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        dm = diffusion_model
        tvec = conditioning["layer_outputs"][dm.tproj][:conditioning["batch"]][conditioning["rows"]]  # before the blocks
        prescale, preshift, pregate, postscale, postshift, postgate = dm.blocks[index].mod(tvec)
        return Modulation(preshift, prescale, pregate), Modulation(postshift, postscale, postgate)

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The block's shared weights. The attention output's sigmoid gate comes from the concepts' own modulated
        input, as the block makes it beside q, k and v (so it shares their casts); qkv keeps it for the projection of
        the same block."""
        block = diffusion_model.blocks[index]
        attn = block.attn
        gated = {}

        def qkv(x: Tensor) -> Tensor:
            gated["gate"] = torch.sigmoid(attn.gate(x))
            k, v = (repeat_kv_heads(layer(x), attn.kvheads, attn.heads, attn.headdim) for layer in (attn.wk, attn.wv))
            return torch.cat([attn.wq(x), k, v], dim=-1)

        def proj(out: Tensor) -> Tensor:
            return attn.wo(out * gated["gate"])

        return TextStreamWeights(num_heads=attn.heads, norm1=block.prenorm, qkv=qkv,
                                 qkv_layers=(attn.wq, attn.wk, attn.wv, attn.gate),
                                 qk_norm=lambda q, k, v: attn.qknorm(q, k), proj=proj, proj_layers=(attn.wo,),
                                 norm2=block.postnorm, mlp=block.mlp)

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        """Each concept as a one-token prompt through txtfusion and txtmlp."""
        dm = diffusion_model
        batch, concepts, _ = concept_context.shape
        stacked = dm._unpack_context(concept_context.reshape(batch * concepts, 1, -1))
        return dm.txtmlp(dm.txtfusion(stacked, mask=None)).reshape(batch, concepts, -1)

    text_tokens = staticmethod(text_before_image)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, H, L, D] (grouped heads repeated), outputs [B, L, H * D] before the gate; the generated image's
        tokens first, references after."""
        return ImageAttention(keys=k[:, :, text_tokens:], values=v[:, :, text_tokens:], outputs=out[:, text_tokens:])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        return patch_grid(x, diffusion_model.patch)

    def token_pixels(self, model) -> int:
        return model.get_model_object("diffusion_model").patch * self.latent_pixels(model)
