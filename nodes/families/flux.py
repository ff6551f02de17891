"""The Flux.1 family: Flux.1 dev/schnell, Flux.1 Kontext and models built on ComfyUI's Flux class."""

import dataclasses

import torch
from comfy.ldm.flux.model import Flux, FluxParams

from .base import TypicalCfg
from .flux_blocks import FluxBlockModulation


def flux_unet_config(**params) -> dict:
    """A unet_config for ComfyUI's Flux classes, plus the fields this host's FluxParams requires."""
    fields = {f.name for f in dataclasses.fields(FluxParams)}
    host_defaults = {"txt_ids_dims": []}  # required from ComfyUI 0.8 on, unknown before
    return {**{k: v for k, v in host_defaults.items() if k in fields}, **params}


class FluxFamily(FluxBlockModulation):
    """auto is the base's last four blocks: the reference pipeline scores Flux.1's blocks 15-18 of 19. The
    concepts' RoPE ids are zero, so their rotation is the identity (no concept_rope)."""

    short_name = "Flux.1"
    variants = ("dev", "schnell", "Kontext")
    typical_cfg = TypicalCfg("1.0")

    def matches(self, diffusion_model) -> bool:
        """Flux's class without Flux.2's global modulation, and with Flux.1's text positions (none). LongCat-Image is
        Flux's class too, with RoPE positions on its text (txt_ids_dims) and a Qwen2.5-VL prompt: its own family
        (longcat_image.py), as the concepts' zero positions and T5 alignment would be silently wrong there."""
        params = diffusion_model.params if type(diffusion_model) is Flux else None
        return (params is not None and not getattr(params, "global_modulation", False)
                and not getattr(params, "txt_ids_dims", None))

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """Caption conditioning extras as in the paper's encode path: zero pooled vector, guidance 0."""
        return {"pooled_output": torch.zeros((1, diffusion_model.params.vec_in_dim)), "guidance": 0.0}
