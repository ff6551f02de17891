"""Inputs and steps the sampler and segment nodes share."""

from comfy_api.latest import io

from ..ca_core.aggregate import SPACES
from ..ca_core.concepts import parse_concepts
from ..ca_core.embeddings import TOKEN_POOLINGS
from ..ca_core.layers import parse_layers
from .families import FAMILIES, family_for, user_text
from .schema_options import advanced
from .stream import PROMPT_CHOICES, ConceptAttentionPatch, chosen_prompts
from .stream.encoding import encode_concepts


def concept_inputs() -> list:
    return [
        io.String.Input("concepts", multiline=True, default="dog, grass, sky",
                        tooltip="Concepts to map, separated by commas or new lines (at most 64)."),
        advanced(io.String.Input("layers", default="auto", tooltip=user_text.layers_tooltip(FAMILIES))),
        advanced(io.Combo.Input("space", options=list(SPACES), default="output",
                                tooltip="output: ConceptAttention (the paper). cross_attention: the baseline of "
                                        "concept queries against image keys. Both are always computed.")),
        advanced(io.Boolean.Input("softmax", default=True,
                                  tooltip="Softmax over concepts per layer and step before averaging (the paper).")),
        advanced(io.Combo.Input("token_pooling", options=list(TOKEN_POOLINGS), default="first",
                                tooltip="first: a concept's first token (the paper). mean: the mean of all its "
                                        "tokens, for multi-token concepts such as 'traffic light'.")),
    ]


def step_inputs() -> list:
    return [
        advanced(io.Int.Input("start_step", default=0, min=0, max=10000,
                              tooltip="First sampling step whose scores count.")),
        advanced(io.Int.Input("end_step", default=10000, min=1, max=10000,
                              tooltip="Sampling step where scoring stops (exclusive); 10000 = all.")),
    ]


def prompt_input() -> io.Combo.Input:
    return advanced(io.Combo.Input("prompt", options=list(PROMPT_CHOICES), default="positive", optional=True,
                                   tooltip="Whose maps: the positive prompt's, the negative prompt's (needs cfg "
                                           "above 1, when ComfyUI runs it) or both (the positive maps first, then "
                                           "the negative's, each labelled)."))


def prepare_patch(model, clip, concepts: str, layers: str, softmax: bool, token_pooling: str,
                  steps: tuple[int, int], space: str = "output", stop_after_last_layer: bool = False,
                  prompt: str = "positive"):
    """Validate the concept inputs and build the patch; returns (names, patch, family)."""
    names = parse_concepts(concepts)
    prompts = chosen_prompts(prompt)
    family = family_for(model)
    diffusion_model = model.get_model_object("diffusion_model")
    chosen = parse_layers(layers, len(family.joint_blocks(diffusion_model)), family.default_layers)
    context, positions = encode_concepts(clip, names, token_pooling, family)
    patch = ConceptAttentionPatch(family, context, chosen, steps, softmax=softmax,
                                  stop_after_last_layer=stop_after_last_layer, concept_positions=positions,
                                  prompts=prompts, names=names, space=space)
    return names, patch, family
