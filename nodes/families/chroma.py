"""The Chroma family: Chroma and Chroma Radiance (pixel space), on ComfyUI's Chroma classes.

Chroma's double blocks are Flux's without their own modulation: a small network (the approximator,
distilled_guidance_layer) turns (timestep, guidance, row) into every block's modulations, with no pooled
text vector at all. So the concepts' modulation "from the timestep with a zero pooled vector" is exactly
the text modulation the approximator made for the block at this timestep, which the block receives in
its `vec` argument.
"""

from comfy.ldm.chroma.model import Chroma
from comfy.ldm.chroma_radiance.model import ChromaRadiance
from torch import Tensor

from .base import TypicalCfg
from .flux_blocks import FluxDoubleBlocks, modulation_rows


class ChromaFamily(FluxDoubleBlocks):
    short_name = "Chroma"
    also = ("Chroma Radiance",)
    typical_cfg = TypicalCfg("4", about=True)

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, Chroma)

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning, rows):
        """The approximator's text modulations of this block for this call's timestep and guidance."""
        _, (txt_mod1, txt_mod2) = block_args["vec"]
        return modulation_rows(txt_mod1, rows), modulation_rows(txt_mod2, rows)

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        """Chroma pads the latent up to whole patches (Radiance's 16-pixel patches too): ceil."""
        p = diffusion_model.patch_size
        return -(-x.shape[-2] // p), -(-x.shape[-1] // p)

    def latent_pixels(self, model) -> int:
        if isinstance(model.get_model_object("diffusion_model"), ChromaRadiance):
            return 1  # pixel space: the "latent" is the image
        return super().latent_pixels(model)

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """No pooled vector (hosts before 0.33 read the key, so it is present, as None) and guidance 0."""
        return {"pooled_output": None, "guidance": 0.0}
