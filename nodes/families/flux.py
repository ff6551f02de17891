"""The Flux.1 family: Flux.1 dev/schnell, Flux.1 Kontext and models built on ComfyUI's Flux class."""

import dataclasses

import torch
from comfy.ldm.flux.layers import timestep_embedding
from comfy.ldm.flux.model import Flux, FluxParams
from torch import Tensor

from .base import ModelCall, TypicalCfg
from .flux_blocks import FluxDoubleBlocks


def flux_unet_config(**params) -> dict:
    """A unet_config for ComfyUI's Flux classes, plus the fields this host's FluxParams requires."""
    fields = {f.name for f in dataclasses.fields(FluxParams)}
    host_defaults = {"txt_ids_dims": []}  # required from ComfyUI 0.8 on, unknown before
    return {**{k: v for k, v in host_defaults.items() if k in fields}, **params}


class FluxFamily(FluxDoubleBlocks):
    """auto is the base's last four blocks: the reference pipeline scores Flux.1's blocks 15-18 of 19. The
    concepts' RoPE ids are zero, so their rotation is the identity (no concept_rope)."""

    short_name = "Flux.1"
    variants = ("dev", "schnell", "Kontext")
    typical_cfg = TypicalCfg("1.0")

    def matches(self, diffusion_model) -> bool:
        """Flux's class without Flux.2's global modulation, and with Flux.1's text positions (none). LongCat-Image is
        Flux's class too, with RoPE positions on its text (txt_ids_dims) and a Qwen2.5-VL prompt: the concepts' zero
        positions and T5 alignment would be silently wrong there, so it is not Flux.1's."""
        params = diffusion_model.params if type(diffusion_model) is Flux else None
        return (params is not None and not getattr(params, "global_modulation", False)
                and not getattr(params, "txt_ids_dims", None))

    def concept_conditioning(self, call: ModelCall, rows) -> Tensor:
        """Timestep (+ guidance) embedding with a zero pooled text vector, as the paper's stream."""
        dm, x = call.diffusion_model, call.x[rows]
        guidance = call.get("guidance")
        vec = dm.time_in(timestep_embedding(call.timestep[rows], 256).to(x.dtype))
        if dm.params.guidance_embed and guidance is not None:
            vec = vec + dm.guidance_in(timestep_embedding(guidance[rows], 256).to(x.dtype))
        if getattr(dm, "vector_in", None) is not None:
            zero_pooled = torch.zeros((x.shape[0], dm.params.vec_in_dim), device=x.device, dtype=x.dtype)
            vec = vec + dm.vector_in(zero_pooled)
        return vec

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: Tensor, rows):
        return diffusion_model.double_blocks[index].txt_mod(conditioning)

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """Caption conditioning extras as in the paper's encode path: zero pooled vector, guidance 0."""
        return {"pooled_output": torch.zeros((1, diffusion_model.params.vec_in_dim)), "guidance": 0.0}
