"""The Qwen-Image family: Qwen-Image and Qwen-Image-Edit, on ComfyUI's QwenImageTransformer2DModel.

Its joint blocks are Qwen-Image's own (qwen_blocks.py: the text stream's separate projections, norms and MLP,
the modulation from the timestep alone, which is also the concepts'). Beyond them:
- Text tokens carry RoPE positions: prompt token j sits at (s + j, s + j, s + j), where
  s = max(token columns, token rows) // 2 of the generated image. Each concept gets the position its
  first own token would have in a one-word prompt: s + its index in the template-stripped encoder output
  (0 for a concept whose own tokens open the prompt, as they do).
- The chat template wraps every prompt, and ComfyUI's encoder drops the template's head, up to and
  including "<|im_start|>user\\n". The concept's own tokens run from there to the template's "<|im_end|>".
"""

from comfy.ldm.qwen_image.model import QwenImageTransformer2DModel

from . import tokens
from .base import ModelCall, TypicalCfg
from .qwen_blocks import QwenBlocks, centred_text_rope


class QwenImageFamily(QwenBlocks):
    """auto: like Flux.1's 15-18 of 19 double blocks, the last four of the joint stack (Qwen-Image has 60, all
    joint)."""

    short_name = "Qwen-Image"
    also = ("Edit",)  # Qwen-Image-Edit
    typical_cfg = TypicalCfg("2.5")
    token_alignment = staticmethod(tokens.qwen_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, QwenImageTransformer2DModel)

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]):
        """Each concept at (s + p, s + p, s + p), through the model's own RoPE table; p is the concept's index in
        the template-stripped encoder output (the base's concept_position)."""
        return centred_text_rope(lambda ids: diffusion_model.pe_embedder(ids).to(call.dtype), call,
                                 self.token_grid(diffusion_model, call.x), positions)
