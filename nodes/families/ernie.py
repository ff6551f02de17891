"""The Ernie-Image family, on ComfyUI's ErnieImageModel (ComfyUI 0.33 on; older hosts have no Ernie-Image, and the
family is left out there). A single-stream model: image and text tokens share every weight of a block.

How the prompt runs, and so the concepts:
- the prompt's encoder states go through text_proj (where the widths differ); each concept likewise;
- `cat(image, text)`, the image FIRST, runs through `layers`, shared AdaLN blocks: one (shift, scale, gate)
  modulation for attention and one for the SwiGLU MLP, made once per call from the timestep alone (no pooled
  vector, so the concepts' modulation is the tokens' own, read from the forward), RMSNorms, q/k/v, q/k RMSNorm,
  split-half RoPE;
- text token j sits at RoPE position (j, 0, 0), each concept at the position its first own token takes in a
  one-word prompt; the image at (text length, row, column);
- Ernie-Image's forward has no wrapper, no block entry and no transformer_options for its attention function:
  the stream opens per APPLY_MODEL call, and the clone's attention modules are replaced (object patches) by
  ErnieAttentionWithOptions, the same computation that hands the model call's transformer_options to the
  attention function, where the stream's override reaches each layer's joint attention (BlockEntry.ATTENTION).
"""

import contextlib
import copy

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from . import tokens
from .base import MODEL_CALL_OPTIONS, BlockEntry, Hook, ModelCall, ModelFamily, keeping_outputs, split_heads

try:  # ComfyUI 0.33 on
    import comfy.model_management
    import comfy.ops
    import comfy.quant_ops
    from comfy.ldm.ernie.model import ErnieImageAttention, ErnieImageModel
    from comfy.ldm.modules.attention import optimized_attention
except ImportError:
    ErnieImageModel = None


if ErnieImageModel is not None:
    class ErnieAttentionWithOptions(ErnieImageAttention):
        """ErnieImageAttention's forward, line for line, save that the attention function gets the model call's
        transformer_options (MODEL_CALL_OPTIONS). Made by with_call_options: a shallow copy of the model's own
        module, sharing its layers and weights (and so their keys: weight patches and LoRAs still find them)."""

        def forward(self, x: Tensor, attention_mask: Tensor = None, image_rotary_emb: Tensor = None) -> Tensor:
            B, S, _ = x.shape
            q_flat, k_flat, v_flat = self.to_q(x), self.to_k(x), self.to_v(x)
            query = q_flat.view(B, S, self.heads, self.head_dim)
            key = k_flat.view(B, S, self.heads, self.head_dim)
            if image_rotary_emb is not None and not comfy.model_management.in_training:
                q_scale, _, q_offload_stream = comfy.ops.cast_bias_weight(self.norm_q, query, offloadable=True)
                k_scale, _, k_offload_stream = comfy.ops.cast_bias_weight(self.norm_k, key, offloadable=True)
                query, key = comfy.quant_ops.ck.rms_rope_split_half(query, key, image_rotary_emb, q_scale, k_scale,
                                                                    self.norm_q.eps)
                comfy.ops.uncast_bias_weight(self.norm_q, q_scale, None, q_offload_stream)
                comfy.ops.uncast_bias_weight(self.norm_k, k_scale, None, k_offload_stream)
            else:
                query, key = self.norm_q(query), self.norm_k(key)
                if image_rotary_emb is not None:
                    query, key = comfy.quant_ops.ck.apply_rope_split_half(query, key, image_rotary_emb)
            # rebound as the host rebinds them: the projections' own outputs are freed before the attention's peak
            q_flat, k_flat = query.reshape(B, S, -1), key.reshape(B, S, -1)
            hidden_states = optimized_attention(q_flat, k_flat, v_flat, self.heads, mask=attention_mask,
                                                transformer_options=MODEL_CALL_OPTIONS.get() or {})
            return self.to_out[0](hidden_states)


def with_call_options(attention) -> "ErnieAttentionWithOptions":
    patched = copy.copy(attention)  # the same submodules (a shallow copy shares the module's own dicts)
    patched.__class__ = ErnieAttentionWithOptions
    return patched


class ErnieImageFamily(ModelFamily):
    """auto: the last four layers, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "Ernie-Image"
    since_comfyui = "0.33"
    available = ErnieImageModel is not None
    hook = Hook.APPLY_MODEL
    block_entry = BlockEntry.ATTENTION
    passes_attention_options = False  # another node's attention override never runs in Ernie-Image's attention
    vae_scale = 16
    token_alignment = staticmethod(tokens.chat_template_prompt)  # Ministral 3's start token, no template

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, ErnieImageModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.layers

    def object_patches(self, diffusion_model) -> dict:
        return {f"layers.{i}.self_attention": with_call_options(layer.self_attention)
                for i, layer in enumerate(diffusion_model.layers)}

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        dm, x = call.diffusion_model, call.x
        image_tokens = (x.shape[-2] // dm.patch_size) * (x.shape[-1] // dm.patch_size)
        return {"image_tokens": image_tokens, "rows": rows, "layer_outputs": {}}

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep the forward's one modulation output (every layer takes the same)."""
        with keeping_outputs([diffusion_model.adaLN_modulation], conditioning["layer_outputs"]):
            yield

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        output = conditioning["layer_outputs"][diffusion_model.adaLN_modulation][conditioning["rows"]]  # before the layers
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = (c[:, None] for c in output.chunk(6, dim=-1))
        return Modulation(shift_msa, scale_msa, gate_msa), Modulation(shift_mlp, scale_mlp, gate_mlp)

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.layers[index]
        attn = block.self_attention
        return TextStreamWeights(
            num_heads=attn.heads, norm1=block.adaLN_sa_ln,
            qkv=lambda x: torch.cat([attn.to_q(x), attn.to_k(x), attn.to_v(x)], dim=-1),
            qkv_layers=(attn.to_q, attn.to_k, attn.to_v),
            qk_norm=lambda q, k, v: (attn.norm_q(q), attn.norm_k(k)), proj=attn.to_out[0],
            norm2=block.adaLN_mlp_ln, mlp=block.mlp)

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        text_proj = diffusion_model.text_proj
        return concept_context if text_proj is None else text_proj(concept_context)

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at (p, 0, 0), through the model's own split-half RoPE."""
        ids = torch.zeros(1, len(positions), 3, device=call.x.device)
        ids[0, :, 0] = torch.tensor(positions, dtype=ids.dtype, device=ids.device)
        table = diffusion_model.pos_embed(ids)  # [1, K, 1, D / 2, 2, 2]: the [B, K, H, D] layout

        def rope(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
            q, k = comfy.quant_ops.ck.apply_rope_split_half(q.transpose(1, 2), k.transpose(1, 2), table)
            return q.transpose(1, 2).to(k.dtype), k.transpose(1, 2)

        return rope

    def text_tokens(self, block_args: dict) -> int:
        return block_args["q"].shape[1] - block_args["conditioning"]["image_tokens"]

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, L, H * D] (heads flattened), outputs [B, L, H * D]; the image FIRST, the text after."""
        heads = diffusion_model.num_heads
        return ImageAttention(keys=split_heads(k[:, :image_tokens], heads),
                              values=split_heads(v[:, :image_tokens], heads), outputs=out[:, :image_tokens])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        p = diffusion_model.patch_size
        return x.shape[-2] // p, x.shape[-1] // p

    def token_pixels(self, model) -> int:
        return model.get_model_object("diffusion_model").patch_size * self.latent_pixels(model)
