"""Concept Attention Sampler: a KSampler that also returns concept maps."""

import comfy.samplers
import nodes
from comfy_api.latest import io

from .common import concept_inputs, prepare_patch
from .socket_types import ConceptMapsType


class ConceptAttentionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionSampler",
            display_name="Concept Attention Sampler",
            category="conceptattention",
            description="Samples exactly like KSampler and, alongside, maps where each concept is in the "
                        "image (ConceptAttention). The generated latent is the same as KSampler's.",
            inputs=[
                io.Model.Input("model", tooltip="A Flux.1 (dev, schnell, Kontext), Flux.2 (dev, klein) or Chroma "
                                                "model; the concept stream is added to a copy."),
                io.Clip.Input("clip", tooltip="The text encoder that encoded the prompt; encodes each concept."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The random seed used for creating the noise."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="The number of denoising steps."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip="Classifier-free guidance scale (1.0 for Flux.1, about 4 for Chroma; maps come "
                                       "from the positive prompt)."),
                io.Combo.Input("sampler_name", options=comfy.samplers.KSampler.SAMPLERS,
                               tooltip="The sampling algorithm."),
                io.Combo.Input("scheduler", options=comfy.samplers.KSampler.SCHEDULERS,
                               tooltip="How the noise level falls over the steps."),
                io.Conditioning.Input("positive", tooltip="The prompt to generate."),
                io.Conditioning.Input("negative", tooltip="The negative prompt (used when cfg > 1)."),
                io.Latent.Input("latent_image", tooltip="The latent to denoise."),
                io.Float.Input("denoise", default=1.0, min=0.0, max=1.0, step=0.01,
                               tooltip="How much of the latent to replace with noise."),
                *concept_inputs(),
                io.Int.Input("start_step", default=0, min=0, max=10000,
                             tooltip="Advanced. First sampling step whose scores count."),
                io.Int.Input("end_step", default=10000, min=1, max=10000,
                             tooltip="Advanced. Sampling step where scoring stops (exclusive); 10000 = all."),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT"),
                ConceptMapsType.Output(display_name="CONCEPT_MAPS"),
            ],
        )

    @classmethod
    def execute(cls, model, clip, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                denoise, concepts, layers, space, softmax, token_pooling, start_step, end_step) -> io.NodeOutput:
        if start_step >= end_step:
            raise ValueError(f"start_step {start_step} must be below end_step {end_step}")
        names, patch, family = prepare_patch(model, clip, concepts, layers, softmax, token_pooling,
                                             (start_step, end_step))
        patched = patch.install(model.clone())
        (latent,) = nodes.common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                          latent_image, denoise=denoise)
        height, width = latent_image["samples"].shape[-2:]
        scale = family.latent_pixels(model)
        maps = patch.concept_maps(names, (height * scale, width * scale), space, family.token_pixels(model))
        return io.NodeOutput(latent, maps)
