"""Concept Prompts: boxes and points of what the model drew for a concept, for SAM3 Detect, SAM3 Video Track and
the SAM 2 packs."""

import torch
from comfy_api.latest import io, ui

from ..ca_core.concepts import resolve_concept_names, shown_list
from ..ca_core.maps import colourise, normalise
from ..ca_core.masks import split_objects
from ..ca_core.prompts import ObjectPrompt, draw_prompts, peak_points, points_json, prompts_of
from .map_nodes import (
    REFINE_IMAGE_EDGES,
    REFINE_NONE,
    MaskingMaps,
    chosen_space,
    matching_images,
    refinement_guide,
    space_input,
)
from .schema_options import search_aliases
from .socket_types import BoundingBoxType, ConceptMapsType

# Points of one object stay this many tokens apart, so that several points spread over it.
POINT_SPACING_TOKENS = 2


class ConceptPrompts(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionPrompts",
            display_name="Concept Prompts",
            category="conceptattention",
            description="Boxes and points of what the model drew for a concept, as prompts for SAM3 Detect (and "
                        "the SAM 2 packs), with each object of the chosen image as a mask for SAM3 Video Track: "
                        "SAM3's pixel-precise masks of exactly the objects the model meant by the word.",
            **search_aliases("sam3 prompts", "boxes", "points", "bounding box", "sam"),
            inputs=[
                ConceptMapsType.Input("concept_maps", tooltip="From the Concept Attention Sampler, Concept Maps "
                                                              "or Segment Image."),
                io.String.Input("concepts", default="dog",
                                tooltip="The concept whose objects to prompt (comma separated: the objects of all of "
                                        "them). Its objects are where it wins the argmax, as Concept Mask finds "
                                        "them; every other concept gives the negative points."),
                io.Int.Input("points_per_object", default=1, min=1, max=16,
                             tooltip="Peak points per object, strongest first, two tokens apart at least."),
                io.Int.Input("batch_index", default=0, min=0, max=4095,
                             tooltip="The image (or video frame) that the points and `objects` come from: SAM3 "
                                     "Detect reads one set of points for its whole batch, and SAM3 Video Track "
                                     "starts from one frame's objects. Boxes cover every image."),
                io.Int.Input("min_region", default=256, min=0, max=1 << 24,
                             tooltip="Smallest region, in pixels, that counts as an object (256 = one 16-px "
                                     "token); smaller islands get no box or point."),
                space_input(),
                io.Combo.Input("refine", options=[REFINE_NONE, REFINE_IMAGE_EDGES], default=REFINE_NONE,
                               optional=True,
                               tooltip="image edges: find the objects on maps that follow the image's own edges "
                                       "(tighter boxes); needs `image`."),
                io.Image.Input("image", optional=True,
                               tooltip="The image (or video frames) the maps were made for: drawn under the "
                                       "preview, and followed by refine 'image edges'."),
            ],
            outputs=[
                BoundingBoxType.Output("bboxes", display_name="bboxes",
                                       tooltip="Each object's box in pixels, image by image (a list per image, "
                                               "as SAM3 Detect's bboxes input reads it)."),
                io.String.Output("positive_coords", display_name="positive_coords",
                                 tooltip="The chosen image's object peaks as JSON [{\"x\": .., \"y\": ..}] "
                                         "(KJNodes Points Editor format), for SAM3 Detect and SAM 2 nodes."),
                io.String.Output("negative_coords", display_name="negative_coords",
                                 tooltip="A peak of each region of the other concepts in the chosen image, "
                                         "same format."),
                io.Mask.Output("objects", display_name="objects",
                               tooltip="The chosen image's objects, one mask each, largest first (e.g. SAM3 "
                                       "Video Track's initial_mask); one empty mask where there is none."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, concept_maps, concepts, points_per_object, batch_index, min_region, space,
                refine=REFINE_NONE, image=None) -> io.NodeOutput:
        selected = resolve_concept_names(concepts, concept_maps.names)
        guide = refinement_guide(refine, image, concept_maps)
        masking = MaskingMaps.of(concept_maps, "argmax", 0.5, chosen_space(space), 0.0, guide)
        map_sets = masking.maps.shape[0]
        if batch_index >= map_sets:
            raise ValueError(f"batch_index is {batch_index} but the maps cover {map_sets} image(s) or frame(s), "
                             f"numbered from 0: choose 0 to {map_sets - 1}")
        spacing = POINT_SPACING_TOKENS * concept_maps.token_pixels
        mask = masking.mask(selected, min_region=min_region)
        score = masking.maps[:, selected].amax(dim=1)
        objects = [split_objects(mask[i:i + 1]) for i in range(map_sets)]  # (masks, count) per image
        prompts = [prompts_of(found[:count], score[i], points_per_object, spacing)
                   for i, (found, count) in enumerate(objects)]
        if not any(prompts):
            raise ValueError(f"{shown_list([concept_maps.names[i] for i in selected])} won no region of "
                             f"{min_region} pixels or more in any image, so there is nothing to prompt: check the "
                             "maps in a Saliency Map, lower min_region, or choose another concept")
        others = other_points(masking, selected, batch_index, min_region, spacing)
        positive = [point for prompt in prompts[batch_index] for point in prompt.points]
        preview = previews(concept_maps, masking, selected, image, prompts, others, batch_index)
        return io.NodeOutput([[prompt.box_dict() for prompt in image_prompts] for image_prompts in prompts],
                             points_json(positive), points_json(others), objects[batch_index][0],
                             ui=ui.PreviewImage(preview, cls=cls))


def other_points(masking: MaskingMaps, selected: list[int], batch_index: int, min_region: int,
                 spacing: float) -> list[tuple[int, int]]:
    """The peak of each region that another concept wins in the chosen image, concept by concept."""
    points, chosen = [], masking.image(batch_index)
    for concept in range(chosen.maps.shape[1]):
        if concept in selected:
            continue
        regions, count = split_objects(chosen.mask([concept], min_region=min_region))
        for region in regions[:count]:
            points += peak_points(chosen.maps[0, concept], region >= 0.5, 1, spacing)
    return points


def previews(concept_maps, masking: MaskingMaps, selected: list[int], image: torch.Tensor | None,
             prompts: list[list[ObjectPrompt]], others: list[tuple[int, int]], batch_index: int) -> torch.Tensor:
    """Each image (or the concept's heatmap, with no image) with its boxes; the chosen one with its points too.
    A video shows the chosen frame only."""
    if image is not None:
        backgrounds = matching_images(image, concept_maps)[..., :3]
    else:
        backgrounds = colourise(normalise(masking.maps[:, selected].amax(dim=1, keepdim=True)))[:, 0]
    shown = [batch_index] if concept_maps.video_frames else range(len(prompts))
    return torch.stack([draw_prompts(backgrounds[i], prompts[i], others if i == batch_index else [],
                                     with_points=i == batch_index) for i in shown])
