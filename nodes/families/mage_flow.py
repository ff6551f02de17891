"""The Mage-Flow family (Microsoft's Mage), on ComfyUI's MageFlowTransformer2DModel (ComfyUI 0.33 on; older hosts
have no Mage-Flow, and the family is left out there).

Its joint blocks are Qwen-Image's (qwen_blocks.py), twelve of them; beyond them:
- one-cell tokens (patch size 1) over Flux.2's 128-channel latent, 16 pixels a token;
- the text is not rotated (RoPE position 0), so neither are the concepts;
- the prompt is Qwen3-VL's chat template, whose head the encoder drops as Qwen-Image's does
  (tokens.qwen_chat_prompt);
- no pooled vector: the text's modulation, from the timestep alone, is also the concepts'.
Edit conditioning's reference images follow the generated image in the joint sequence (qwen_blocks.py).
"""

from . import tokens
from .qwen_blocks import QwenBlocks

try:  # ComfyUI 0.33 on
    from comfy.ldm.mage_flow.model import MageFlowTransformer2DModel
except ImportError:
    MageFlowTransformer2DModel = None


class MageFlowFamily(QwenBlocks):
    """auto: the last four of the twelve joint blocks, as the paper's rule on Flux.1's (15-18 of 19)."""

    short_name = "Mage-Flow"
    since_comfyui = "0.33"
    available = MageFlowTransformer2DModel is not None
    vae_scale = 16  # Flux.2's VAE
    token_alignment = staticmethod(tokens.qwen_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, MageFlowTransformer2DModel)
