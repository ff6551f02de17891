"""Concept Attention Sampler: a KSampler that also returns concept maps (the one-node path).

It is the Concept Attention Model node and the Concept Maps collector in one: the same patch on a
model.clone(), the same recording of the sampling run, the same collection by the returned latent.
"""

import comfy.samplers
import nodes
from comfy_api.latest import io

from .common import concept_inputs, prepare_patch, prompt_input, step_inputs
from .families import FAMILIES, user_text
from .schema_options import search_aliases
from .socket_types import ConceptMapsType
from .stream import check_prompt_runs, step_range


class ConceptAttentionSampler(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionSampler",
            display_name="Concept Attention Sampler",
            category="conceptattention",
            description="Samples exactly like KSampler and, alongside, maps where each concept is in the "
                        "image (ConceptAttention). The generated latent is the same as KSampler's.",
            **search_aliases("attention map", "saliency", "heatmap", "concept map"),
            inputs=[
                io.Model.Input("model", tooltip=user_text.model_tooltip(FAMILIES)),
                io.Clip.Input("clip", tooltip="The text encoder that encoded the prompt; encodes each concept."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF, control_after_generate=True,
                             tooltip="The random seed used for creating the noise."),
                io.Int.Input("steps", default=20, min=1, max=10000, tooltip="The number of denoising steps."),
                io.Float.Input("cfg", default=1.0, min=0.0, max=100.0, step=0.1, round=0.01,
                               tooltip=user_text.cfg_tooltip(FAMILIES)),
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
                *step_inputs(),
                # last and optional, so that workflows and API prompts saved before it still load and run
                prompt_input(),
            ],
            outputs=[
                io.Latent.Output(display_name="LATENT", tooltip="The denoised latent, exactly as KSampler gives it."),
                ConceptMapsType.Output(display_name="CONCEPT_MAPS",
                                       tooltip="One map per image and concept: wire into Saliency Map or Concept "
                                               "Mask."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, seed, steps, cfg, sampler_name, scheduler, positive, negative, latent_image,
                denoise, concepts, layers, space, softmax, token_pooling, start_step, end_step,
                prompt="positive") -> io.NodeOutput:
        # everything checkable is checked before sampling, so a bad input never costs a whole generation
        scored = step_range(start_step, end_step, steps)
        check_prompt_runs(prompt, cfg)
        _, patch, _ = prepare_patch(model, clip, concepts, layers, softmax, token_pooling, scored, space=space,
                                    prompt=prompt)
        patched = patch.install(model.clone())
        (latent,) = nodes.common_ksampler(patched, seed, steps, cfg, sampler_name, scheduler, positive, negative,
                                          latent_image, denoise=denoise)
        return io.NodeOutput(latent, patch.collect(latent["samples"]))
