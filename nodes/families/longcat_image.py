"""The LongCat-Image family (and LongCat-Image-Edit), on ComfyUI's Flux class (ComfyUI 0.33 on; older hosts have no
LongCat-Image, and the family is left out there).

Its double blocks are Flux.1's, its prompt and positions are not:
- the prompt is Qwen2.5-VL's chat template padded to 512 tokens, whose head and tail the encoder drops, so a
  one-word prompt's token is text token 0 of the context (tokens.padded_qwen_chat_prompt);
- text token j sits at RoPE position (0, j, j) (txt_ids_dims: rows and columns), the image after the whole text
  (the model shifts it by the context's length): each concept takes its own token's text position;
- no pooled vector and no guidance embedding: the concepts' modulation is the text's own, from the timestep.
Reference images (the Edit model's, Flux.1 Kontext's way) follow the generated image in the joint sequence.
"""

from comfy.ldm.flux.model import Flux

from . import tokens
from .base import ModelCall, TypicalCfg
from .flux_blocks import FluxBlockModulation, text_position_rope

try:  # ComfyUI 0.33 on
    from comfy.model_base import LongCatImage
except ImportError:
    LongCatImage = None


class LongCatImageFamily(FluxBlockModulation):
    """auto: the last four double blocks, as the paper's rule on Flux.1's (15-18 of 19)."""

    short_name = "LongCat-Image"
    variants = ()
    also = ("Edit",)
    since_comfyui = "0.33"
    available = LongCatImage is not None
    typical_cfg = TypicalCfg("4.5")
    token_alignment = staticmethod(tokens.padded_qwen_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        """Flux's class with positions on its text (txt_ids_dims) and without Flux.2's global modulation."""
        params = diffusion_model.params if type(diffusion_model) is Flux else None
        return (self.available and params is not None and not getattr(params, "global_modulation", False)
                and bool(getattr(params, "txt_ids_dims", None)))

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at its own token's text position (0, p, p), through the model's own RoPE."""
        return text_position_rope(diffusion_model, call, positions)

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """LongCat-Image takes neither a pooled vector nor guidance."""
        return {}
