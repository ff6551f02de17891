"""The Flux.2 family: Flux.2 dev (Mistral text encoder) and Flux.2 klein (Qwen3), on ComfyUI's Flux class
with global modulation.

As the paper's Flux.2 code (concept_attention/flux2/) does:
- every double block is modulated from one model-level text modulation, computed from the timestep and
  guidance alone (Flux.2 has no pooled vector), and that modulation is also the concepts';
- each concept is its own token from the text encoder, at that token's own RoPE position: text token j
  sits at (0, 0, 0, j), counted after ComfyUI pads the context on the left to 512 tokens;
- `layers = auto` averages the last three double blocks (5-7 of Flux.2 dev's 8).
"""

from comfy.ldm.flux.model import Flux

from . import tokens
from .base import ModelCall
from .flux_blocks import FluxDoubleBlocks, modulation_rows, text_position_rope

TEXT_LENGTH = 512  # ComfyUI's Flux.2 model pads every context on the left to this many tokens


class Flux2Family(FluxDoubleBlocks):
    short_name = "Flux.2"
    variants = ("dev", "klein")
    default_layers = 3  # the paper's Flux.2 code scores the last three double blocks
    vae_scale = 16  # Flux.2's VAE: 16 pixels per latent cell (hosts before 0.33 do not state it)
    token_alignment = staticmethod(tokens.chat_template_prompt)  # Mistral (dev), Qwen3 (klein)

    def matches(self, diffusion_model) -> bool:
        return type(diffusion_model) is Flux and bool(getattr(diffusion_model.params, "global_modulation", False))

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning, rows):
        """The model-level text modulation of this call, which every double block and the concepts share."""
        _, (txt_mod1, txt_mod2) = block_args["vec"]
        return modulation_rows(txt_mod1, rows), modulation_rows(txt_mod2, rows)

    def concept_position(self, index: int, length: int) -> int:
        """A concept token's position in the model's text ids: shifted by the left padding to 512 tokens."""
        return index + max(0, TEXT_LENGTH - length)

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at its own token's text position (0, 0, 0, p), through the model's own RoPE."""
        return text_position_rope(diffusion_model, call, positions)

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """As the paper's Flux.2 encode path: guidance 0; Flux.2 has no pooled vector."""
        return {"pooled_output": None, "guidance": 0.0}
