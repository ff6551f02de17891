"""The Ideogram 4 family, on ComfyUI's Ideogram4Transformer2DModel (ComfyUI 0.33 on; older hosts have no
Ideogram 4, and the family is left out there). A single-stream model in NextDiT's style: text and image tokens
share every weight of a block.

How the prompt runs, and so the concepts:
- the prompt's 13 tapped Qwen3-VL layers, concatenated per token, are embedded by llm_cond_norm and llm_cond_proj,
  plus the "not an image token" indicator embedding; each concept is embedded the same way;
- `[text, image]` runs through `layers`: one scale-only modulation from the timestep alone (no pooled vector, so
  the concepts' modulation is the tokens' own, read from each layer's own call), one qkv, q/k RMSNorm,
  Qwen3-VL's interleaved multimodal RoPE (split-half pairs), the output projection with its post-norm and a
  tanh gate, and a SwiGLU feed-forward with its post-norm;
- text token j sits at RoPE position (j, j, j) of the encoded chat template; each concept at the position its
  first own token takes in a one-word prompt;
- a padded prompt's pad tokens attend only among themselves (block-diagonal segments); the concepts attend over
  [concept keys; image keys] only;
- the forward calls its layers with no patches_replace entry and nothing else attends before them: the
  stream reaches layer i through the model call's i-th attention call (BlockEntry.ATTENTION).
- Each image token is one latent cell (the 128 latent channels are a 2 x 2 patch of 32), 16 pixels wide.
"""

import contextlib

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention, TextStreamWeights
from . import tokens
from .base import BlockEntry, ModelCall, ModelFamily, keeping_outputs, scale_gate_modulations

try:  # ComfyUI 0.33 on
    import comfy.ldm.ideogram4.model as ideogram4
    from comfy.text_encoders.llama import precompute_freqs_cis
except ImportError:
    ideogram4 = None


class Ideogram4Family(ModelFamily):
    """auto: the last four layers, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "Ideogram 4"
    since_comfyui = "0.33"
    available = ideogram4 is not None
    block_entry = BlockEntry.ATTENTION
    vae_scale = 16
    token_alignment = staticmethod(tokens.chat_template_prompt)  # Qwen3-VL's template, kept whole by the encoder

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, ideogram4.Ideogram4Transformer2DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.layers

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        context = call.get("context")
        return {"text_tokens": 0 if context is None else context.shape[1], "rows": rows, "layer_outputs": {}}

    @contextlib.contextmanager
    def watch_call(self, diffusion_model, conditioning: dict):
        """Keep each layer's modulation output of this call: the concepts' modulation is the tokens' own."""
        with keeping_outputs([layer.adaln_modulation for layer in diffusion_model.layers], conditioning["layer_outputs"]):
            yield

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """The layer's (scale, tanh gate) for attention and feed-forward; the modulation has no shift."""
        output = conditioning["layer_outputs"][diffusion_model.layers[index].adaln_modulation]  # made before its attention
        return scale_gate_modulations(output[conditioning["rows"]])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The layer's shared weights; the post-norms ride with the projection and the feed-forward they follow."""
        block = diffusion_model.layers[index]
        attention = block.attention
        return TextStreamWeights(
            num_heads=attention.num_heads, norm1=block.attention_norm1, qkv=attention.qkv,
            qk_norm=lambda q, k, v: (attention.norm_q(q), attention.norm_k(k)),
            proj=lambda out: block.attention_norm2(attention.o(out)), proj_layers=(attention.o,),
            norm2=block.ffn_norm1, mlp=lambda x: block.ffn_norm2(block.feed_forward(x)),
            mlp_layers=(block.feed_forward,))

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None) -> Tensor:
        """As the forward embeds the prompt's tokens: llm_cond_norm, llm_cond_proj, and the text rows' indicator."""
        dm = diffusion_model
        embedded = dm.llm_cond_proj(dm.llm_cond_norm(concept_context))
        text_row = torch.zeros(1, dtype=torch.long, device=embedded.device)
        return embedded + dm.embed_image_indicator(text_row, out_dtype=embedded.dtype)

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at (p, p, p), through the model's own multimodal RoPE."""
        dm = diffusion_model
        ids = torch.tensor(positions, device=call.x.device).view(1, -1).expand(3, -1)
        table = ideogram4._split_half_rope_matrix(precompute_freqs_cis(
            dm.head_dim, ids, dm.rope_theta, rope_dims=dm.mrope_section, interleaved_mrope=True, device=ids.device))

        def rope(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:  # [B, H, K, D]; the table's layout is [B, K, H, D]
            turn = lambda t: ideogram4._apply_rope_split_half1(t.transpose(1, 2), table).transpose(1, 2)  # noqa: E731
            return turn(q).to(k.dtype), turn(k)

        return rope

    def text_tokens(self, block_args: dict) -> int:
        return block_args["conditioning"]["text_tokens"]

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, H, L, D], outputs [B, L, H * D]; the image after the text."""
        return ImageAttention(keys=k[:, :, text_tokens:], values=v[:, :, text_tokens:], outputs=out[:, text_tokens:])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        """One token per latent cell."""
        return x.shape[-2], x.shape[-1]

    def token_pixels(self, model) -> int:
        return self.latent_pixels(model)
