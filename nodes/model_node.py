"""Concept Attention Model and Concept Maps: concept maps from any sampler node.

The model node adds the concept stream to a MODEL.clone() and hands on the patch as a recorder; any
sampler or guider may run the MODEL. The collector takes the recorder and the LATENT the sampler
returned, and gives the maps of that very sampling run (nodes/stream/recorder.py says how this holds under
ComfyUI's execution cache).
"""

from comfy_api.latest import io

from .common import concept_inputs, prepare_patch, prompt_input, step_inputs
from .families import FAMILIES, user_text
from .schema_options import search_aliases
from .socket_types import ConceptMapsType, ConceptRecorderType
from .stream import step_range


class ConceptAttentionModel(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionModel",
            display_name="Concept Attention Model",
            category="conceptattention",
            description="Adds the concept stream to a copy of the model, for any sampler: KSampler, "
                        "KSamplerAdvanced, SamplerCustomAdvanced with any guider, or another pack's. The image "
                        "stays exactly as without it. Feed the sampler's LATENT and the recorder to Concept Maps.",
            **search_aliases("attention map", "saliency", "concept map", "model patch"),
            inputs=[
                io.Model.Input("model", tooltip=user_text.model_tooltip(FAMILIES)),
                io.Clip.Input("clip", tooltip="The text encoder that encoded the prompt; encodes each concept."),
                *concept_inputs(),
                *step_inputs(),
                prompt_input(),
            ],
            outputs=[
                io.Model.Output(display_name="MODEL",
                                tooltip="Wire into the sampler (or guider) in place of the model."),
                ConceptRecorderType.Output(display_name="recorder",
                                           tooltip="Wire into Concept Maps, with the sampler's LATENT."),
            ],
        )

    @classmethod
    def execute(cls, model, clip, concepts, layers, space, softmax, token_pooling, start_step, end_step,
                prompt="positive") -> io.NodeOutput:
        _, patch, _ = prepare_patch(model, clip, concepts, layers, softmax, token_pooling,
                                    step_range(start_step, end_step), space=space, prompt=prompt)
        return io.NodeOutput(patch.install(model.clone()), patch)


class ConceptMapsCollector(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionMaps",
            display_name="Concept Maps",
            category="conceptattention",
            description="The concept maps of one sampling run: the run, by a Concept Attention Model's MODEL, "
                        "that returned this LATENT. Two samplers sharing that model each give their own maps.",
            **search_aliases("attention map", "saliency", "concept map", "collect maps"),
            inputs=[
                ConceptRecorderType.Input("recorder", tooltip="From the Concept Attention Model node."),
                io.Latent.Input("latent", tooltip="The LATENT the sampler returned (SamplerCustomAdvanced: "
                                                  "`output`), before any upscale or other change."),
            ],
            outputs=[ConceptMapsType.Output(display_name="CONCEPT_MAPS",
                                            tooltip="The maps of that run, one per image and concept: wire into "
                                                    "Saliency Map or Concept Mask.")],
        )

    @classmethod
    def execute(cls, recorder, latent) -> io.NodeOutput:
        samples = latent.get("samples") if isinstance(latent, dict) else None
        return io.NodeOutput(recorder.collect(samples))
