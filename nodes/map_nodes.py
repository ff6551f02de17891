"""Saliency Map and Concept Mask: CONCEPT_MAPS to images and masks."""

from dataclasses import dataclass

import torch
from comfy_api.latest import io, ui
from einops import rearrange

from ..ca_core.aggregate import SPACES
from ..ca_core.concepts import BACKGROUND, resolve_concept_names
from ..ca_core.maps import NORMALISATIONS, colourise, label_images, normalise, overlay, preview_sized
from ..ca_core.masks import (
    MASK_METHODS,
    concept_mask,
    concept_presence,
    is_binary_method,
    mask_method_for,
    refine_mask,
    smooth_over_time,
    split_objects,
)
from ..ca_core.refine import Guide, edge_guide, refined_token_maps, token_range
from ..ca_core.refined_masks import Filtered, refined_argmax_mask
from .schema_options import advanced, search_aliases
from .socket_types import ConceptMapsType

AS_MADE = "as_made"
# Concept Mask's refinement of the maps before masking. "image edges" needs the image; it is not the default
# because graphs made before it connect none (measured on 200 of the demo model's held-out scenes, research/
# refine_masks.py: argmax masks' boundary F at 2 px 0.386 -> 0.841, IoU 0.725 -> 0.853).
REFINE_NONE, REFINE_IMAGE_EDGES = "none", "image edges"


def space_input() -> io.Combo.Input:
    return advanced(io.Combo.Input("space", options=[AS_MADE, *SPACES], default=AS_MADE,
                                   tooltip="Which maps to use: as chosen where they were made, ConceptAttention "
                                           "(output) or the cross-attention baseline."))


def chosen_space(space: str):
    return None if space == AS_MADE else space


class SaliencyMap(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionSaliencyMap",
            display_name="Saliency Map",
            category="conceptattention",
            description="A colour heatmap per concept and image (optionally over the image, optionally "
                        "labelled), and the soft maps as masks. Outputs are ordered image by image, concept by "
                        "concept (with maps of both prompts: the positive prompt's first). For a video, each "
                        "concept gives a heatmap clip with one frame per video frame, clip after clip, ready for "
                        "SaveAnimatedWEBP or a video node.",
            **search_aliases("show heatmaps", "saliency", "attention map", "show concept maps"),
            inputs=[
                ConceptMapsType.Input("concept_maps", tooltip="From the Concept Attention Sampler, Concept Maps "
                                                              "or Segment Image."),
                io.Image.Input("image", optional=True,
                               tooltip="The image the maps belong to, to draw the heatmaps over."),
                io.Combo.Input("normalisation", options=list(NORMALISATIONS), default="joint",
                               tooltip="joint: one 0-1 scale per image across its concepts (absent concepts stay "
                                       "dark); per_concept: each map stretched to 0-1; none: raw values."),
                io.Float.Input("overlay_opacity", default=0.6, min=0.0, max=1.0, step=0.05,
                               tooltip="Heatmap opacity over the image (when an image is connected)."),
                space_input(),
                # last and optional, so that workflows and API prompts saved before it still load and run
                io.Boolean.Input("label", default=False, optional=True,
                                 tooltip="Write each concept's name (and prompt, for negative-prompt maps) onto "
                                         "its heatmap, with a colour bar from low to high, so saved and "
                                         "previewed images say what they show."),
            ],
            outputs=[
                io.Image.Output(display_name="heatmaps",
                                tooltip="A colour heatmap per image and concept, over the image when one is "
                                        "connected."),
                io.Mask.Output(display_name="maps",
                               tooltip="The same maps as soft masks (0-1 unless normalisation is none), in the "
                                       "heatmaps' order."),
            ],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, concept_maps, normalisation, overlay_opacity, space, image=None, label=False) -> io.NodeOutput:
        frames = concept_maps.output_frames
        labels = concept_maps.labels()
        if concept_maps.score_note:  # shown under each heatmap in the node, and on it when labelled
            labels = [f"{text} · {concept_maps.score_note}" for text in labels]
        images = None if image is None else matching_images(image, concept_maps)
        each = len(concept_maps.names) * frames  # heatmaps per image (clip)
        heatmaps = masks = preview = None
        # image by image, into the outputs: no colour copy of the whole batch's maps besides them
        for clip in range(concept_maps.clips):
            maps = normalise(concept_maps.pixel_maps(chosen_space(space), clip=clip), normalisation, frames=frames)
            heat = colourise(maps)  # [V, K, H, W, 3]: the clip's V frames
            if heatmaps is None:
                heatmaps = heat.new_empty(concept_maps.clips * each, *heat.shape[2:])
                masks = maps.new_empty(concept_maps.clips * each, *maps.shape[2:])
            written = slice(clip * each, (clip + 1) * each)
            # each concept's frames together: a heatmap clip per concept (one frame for an image)
            clip_heatmaps = rearrange(heatmaps[written], "(K V) H W C -> V K H W C", V=frames)
            if images is not None:
                overlay(images[clip * frames:(clip + 1) * frames, None], heat, overlay_opacity, out=clip_heatmaps)
            else:
                clip_heatmaps.copy_(heat)
            if label:
                heatmaps[written] = label_images(heatmaps[written], labels[written], legend=True)
            shrunk = preview_sized(heatmaps[written])
            if shrunk.shape[1:3] != heatmaps.shape[1:3]:  # a small image's preview is the heatmap itself
                if preview is None:
                    preview = shrunk.new_empty(concept_maps.clips * each, *shrunk.shape[1:])
                preview[written] = shrunk
            masks[written] = rearrange(maps.clamp(0, 1) if normalisation != "none" else maps, "V K H W -> (K V) H W")
        shown = ui.PreviewImage(heatmaps if preview is None else preview, cls=cls).as_dict()
        # display_name: what the frontend's App mode and queue label each heatmap with
        shown["images"] = [{**image, "display_name": label} for image, label in zip(shown["images"], labels, strict=True)]
        shown["concepts"] = labels
        if concept_maps.skipped_steps:  # shown above the gallery: which steps the maps average
            shown["steps"] = [steps_note(concept_maps)]
        return io.NodeOutput(heatmaps, masks, ui=shown)


def steps_note(concept_maps) -> str:
    """Which steps the maps come from, where a block cache skipped some of the chosen ones."""
    def listed(steps):
        return ", ".join(str(step) for step in steps)

    return f"maps from steps {listed(concept_maps.steps)}; a block cache skipped steps {listed(concept_maps.skipped_steps)}"


def refinement_guide(refine: str, image: torch.Tensor | None, concept_maps) -> torch.Tensor | None:
    """The images a refinement follows, one per map set, or None for none; refused, naming the fix, where
    'image edges' has no image to follow."""
    if refine == REFINE_NONE:
        return None
    if refine != REFINE_IMAGE_EDGES:
        raise ValueError(f"refine {refine!r} is not one of {REFINE_NONE!r}, {REFINE_IMAGE_EDGES!r}")
    if image is None:
        raise ValueError("refine 'image edges' follows the edges of the image the maps were made for: connect it to "
                         "Concept Mask's image input (e.g. the VAE Decode of the sampler's latent), or set refine "
                         "to none")
    return matching_images(image, concept_maps)


def smoothed_tokens(concept_maps, space: str | None, temporal_smoothing: float, raw: bool = False,
                    clip: int | None = None, concepts: list[int] | None = None) -> torch.Tensor:
    """The maps on their token grid (ConceptMaps.token_maps), smoothed over each clip's frames."""
    return smooth_over_time(concept_maps.token_maps(space, raw, clip, concepts), concept_maps.output_frames,
                            temporal_smoothing)


def sharpened(concept_maps, guide: Guide | None, space: str | None, temporal_smoothing: float, raw: bool = False,
              clip: int | None = None, concepts: list[int] | None = None) -> tuple[torch.Tensor, tuple | None]:
    """Maps at pixel size, smoothed over time, and the (low, high) range a presence cut is measured in. Refined
    (guide given; frame by frame for a video): fitted straight from the token grid and kept to the tokens' range,
    the range of the maps as made. Otherwise the maps as upsampled, in their own range (None)."""
    if guide is None:
        pixels = concept_maps.pixel_maps(space, raw, clip, concepts)
        return smooth_over_time(pixels, concept_maps.output_frames, temporal_smoothing), None
    tokens = smoothed_tokens(concept_maps, space, temporal_smoothing, raw, clip, concepts)
    return (refined_token_maps(tokens, guide, concept_maps.image_size, concept_maps.token_pixels),
            token_range(tokens))


def presence_concepts(concept_maps, concepts: list[int] | None = None) -> list[int]:
    """The concepts whose masks are cut where they are present (objects_present): every named object of two or more
    concepts, not "background"."""
    if len(concept_maps.names) < 2:
        return []
    return [i for i in (range(len(concept_maps.names)) if concepts is None else concepts)
            if concept_maps.names[i].casefold() != BACKGROUND]


def refined_argmax(concept_maps, method: str, threshold: float, space: str | None, temporal_smoothing: float,
                   guide_images: torch.Tensor | None, clip: int, selected: list[int]) -> torch.Tensor | None:
    """The argmax mask [V, H, W] (bool) of one image's (clip's) maps refined to the image's edges, settled tile by
    tile (ca_core.refined_masks): the mask MaskingMaps cuts, without every map at full size. None where that is not
    the mask asked for (another method, no refinement): MaskingMaps then cuts it."""
    method, _ = mask_method_for(method, threshold, concept_maps.names, concept_maps.one_concept_raw)
    if guide_images is None or method != "argmax":
        return None
    frames = concept_maps.output_frames
    guide = edge_guide(guide_images[clip * frames:(clip + 1) * frames].to(concept_maps.maps.device),
                       concept_maps.token_pixels)

    def filtered(raw: bool, concepts: list[int] | None) -> Filtered:
        tokens = smoothed_tokens(concept_maps, space, temporal_smoothing, raw, clip, concepts)
        return Filtered.of_tokens(guide, tokens, concept_maps.image_size, concept_maps.token_pixels)

    present = presence_concepts(concept_maps, selected)
    maps, raw = filtered(False, None), (filtered(True, present) if present else None)
    return refined_argmax_mask(guide, maps, selected, raw, present)


def objects_present(concept_maps, space: str, temporal_smoothing: float, guide: Guide | None = None,
                    clip: int | None = None, concepts: list[int] | None = None) -> torch.Tensor | None:
    """Where each named object is present at all (masks.concept_presence), for two or more concepts: a concept's
    mask keeps only those pixels, so that a background no concept names is not handed to whichever object wins
    the softmax there. A concept named "background" is the rest of the image, present wherever it wins.
    (One concept's mask is that cut already.) concepts: work out only theirs (a mask's presence cuts only its
    own concepts); the others count as present everywhere (None: every one of them)."""
    concepts = presence_concepts(concept_maps, concepts)
    if not concepts:
        return None
    raw, span = sharpened(concept_maps, guide, space, temporal_smoothing, raw=True, clip=clip, concepts=concepts)
    present = torch.ones(raw.shape[0], len(concept_maps.names), *raw.shape[2:], dtype=torch.bool, device=raw.device)
    present[:, concepts] = concept_presence(raw, span)  # the cut stays where it is on the maps as made
    return present


@dataclass(frozen=True)
class MaskingMaps:
    """What a mask is cut from: the maps at pixel size (refined, smoothed over time) and where each concept is
    present, with the method and threshold the mask really uses (masks.mask_method_for)."""

    maps: torch.Tensor
    present: torch.Tensor | None
    method: str
    threshold: float

    @classmethod
    def of(cls, concept_maps, method: str, threshold: float, space: str | None, temporal_smoothing: float,
           guide: torch.Tensor | None, clip: int | None = None, selected: list[int] | None = None) -> "MaskingMaps":
        """guide: refinement_guide's images, or None; clip: the maps of that image (clip) alone; selected: the
        concepts whose masks will be cut (None: any), so that presence is worked out for them alone."""
        method, threshold = mask_method_for(method, threshold, concept_maps.names, concept_maps.one_concept_raw)
        frames = concept_maps.output_frames
        if guide is not None:  # made once for the maps and the raw maps
            shown = guide if clip is None else guide[clip * frames:(clip + 1) * frames]
            guide = edge_guide(shown.to(concept_maps.maps.device), concept_maps.token_pixels)
        maps, _ = sharpened(concept_maps, guide, space, temporal_smoothing, clip=clip)
        present = (objects_present(concept_maps, space, temporal_smoothing, guide, clip, selected)
                   if is_binary_method(method) else None)
        return cls(maps, present, method, threshold)

    def image(self, index: int) -> "MaskingMaps":
        """The maps of one image (video frame) alone, for masks of that image only."""
        present = None if self.present is None else self.present[index:index + 1]
        return MaskingMaps(self.maps[index:index + 1], present, self.method, self.threshold)

    def mask(self, selected: list[int], **refinements) -> torch.Tensor:
        """The [B, H, W] mask of the selected concepts (refinements: masks.concept_mask's grow, blur, ...)."""
        return concept_mask(self.maps, selected, method=self.method, threshold=self.threshold, present=self.present,
                            **refinements)


class ConceptMask(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionMask",
            display_name="Concept Mask",
            category="conceptattention",
            description="A MASK [B, H, W] at the image's size for one or more concepts, ready for "
                        "SetLatentNoiseMask, InpaintModelConditioning, VAEEncodeForInpaint and ImageCompositeMasked "
                        "(maps of both prompts give the positive prompt's masks, then the negative's). For a video, "
                        "one mask per video frame, for video inpainting and compositing.",
            **search_aliases("mask from text", "concept mask", "segment", "text mask", "attention mask"),
            inputs=[
                ConceptMapsType.Input("concept_maps", tooltip="From the Concept Attention Sampler, Concept Maps "
                                                              "or Segment Image."),
                io.String.Input("concepts", default="dog",
                                tooltip="Concept name(s) to mask, comma separated; several give their union."),
                io.Combo.Input("method", options=list(MASK_METHODS), default="argmax",
                               tooltip="argmax: pixels where a chosen concept beats every other concept; "
                                       "mean_threshold: above the map's mean (the paper); otsu: automatic "
                                       "threshold; threshold: above the value below; soft: the map itself."),
                io.Float.Input("threshold", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="For method 'threshold': cut-off on the map scaled to 0-1."),
                io.Int.Input("grow", default=0, min=-512, max=512,
                             tooltip="Pixels to grow the mask by (negative shrinks it)."),
                io.Float.Input("blur", default=0.0, min=0.0, max=256.0, step=0.5,
                               tooltip="Feather: Gaussian blur sigma in pixels."),
                io.Boolean.Input("fill_holes", default=False, tooltip="Fill enclosed holes (binary methods)."),
                io.Boolean.Input("invert", default=False, tooltip="Mask everything except the concepts."),
                space_input(),
                # last and optional, so that workflows and API prompts saved before it still load and run
                io.Int.Input("min_region", default=0, min=0, max=1 << 24, optional=True,
                             tooltip="Drop islands of the mask smaller than this many pixels (binary methods), "
                                     "e.g. a stray patch won elsewhere in the image; 0 keeps them all."),
                advanced(io.Float.Input("temporal_smoothing", default=0.0, min=0.0, max=16.0, step=0.25, optional=True,
                                        tooltip="Video: average each frame's maps with its neighbours' (Gaussian "
                                                "sigma in frames) before masking, against flicker; 0 = off. No "
                                                "effect on images.")),
                io.Combo.Input("refine", options=[REFINE_NONE, REFINE_IMAGE_EDGES], default=REFINE_NONE,
                               optional=True,
                               tooltip="image edges: make the maps follow the image's own edges before masking "
                                       "(a guided filter with the image as guide), so the mask's edges are the "
                                       "object's rather than the 16-px token grid's; needs `image`. none: the "
                                       "maps as upsampled from the token grid."),
                io.Image.Input("image", optional=True,
                               tooltip="The image (or video frames) the maps were made for, e.g. the VAE Decode "
                                       "of the sampler's latent; refine 'image edges' follows its edges."),
            ],
            outputs=[io.Mask.Output(display_name="MASK",
                                    tooltip="The mask of the chosen concepts, one per image (per frame for a video), "
                                            "at the image's size."),
                     io.Mask.Output("objects", display_name="objects",
                                    tooltip="Each connected region of the mask on its own (each dog of 'dog'), image "
                                            "by image, each image's largest first; one empty mask where there is "
                                            "none."),
                     io.Int.Output("count", display_name="count", tooltip="How many masks `objects` holds (0 when "
                                                                          "the mask is empty).")],
            is_output_node=True,
        )

    @classmethod
    def execute(cls, concept_maps, concepts, method, threshold, grow, blur, fill_holes, invert,
                space, min_region=0, temporal_smoothing=0.0, refine=REFINE_NONE, image=None) -> io.NodeOutput:
        selected = resolve_concept_names(concepts, concept_maps.names)
        guide = refinement_guide(refine, image, concept_maps)
        frames = concept_maps.output_frames
        mask = None
        # image by image (clip by clip), into the output: the maps of one image at pixel size at a time
        refinements = {"grow": grow, "blur": blur, "fill_holes": fill_holes, "invert": invert, "min_region": min_region}
        for clip in range(concept_maps.clips):
            winners = refined_argmax(concept_maps, method, threshold, chosen_space(space), temporal_smoothing, guide,
                                     clip, selected)
            if winners is not None:
                clip_mask = refine_mask(winners, **refinements)
            else:
                masking = MaskingMaps.of(concept_maps, method, threshold, chosen_space(space), temporal_smoothing,
                                         guide, clip, selected)
                clip_mask = masking.mask(selected, **refinements)
            if mask is None:
                mask = clip_mask.new_empty(concept_maps.clips * frames, *clip_mask.shape[1:])
            mask[clip * frames:(clip + 1) * frames] = clip_mask
        objects, count = split_objects(mask)
        return io.NodeOutput(mask, objects, count, ui=ui.PreviewMask(preview_sized(mask), cls=cls))


def matching_images(image: torch.Tensor, concept_maps) -> torch.Tensor:
    """The image under each map set: one per image (per frame for a video), repeated for each prompt's maps."""
    height, width = concept_maps.image_size
    batch = concept_maps.images * concept_maps.output_frames
    if tuple(image.shape[1:3]) != (height, width):
        raise ValueError(
            f"image is {image.shape[2]}x{image.shape[1]} but the maps were made for {width}x{height}: "
            "connect the image the maps came from (e.g. the VAE Decode of the sampler's latent)"
        )
    if concept_maps.video_frames and image.shape[0] != batch:
        raise ValueError(f"image batch has {image.shape[0]} frames but the maps cover {batch} video frames "
                         f"({concept_maps.images} clip(s) of {concept_maps.output_frames}): connect the VAE Decode of "
                         "the sampler's latent (the decoded clip the maps were made from)")
    if image.shape[0] not in (1, batch):
        raise ValueError(f"image batch has {image.shape[0]} images but the maps cover {batch}: connect the "
                         "decoded batch the maps were made from, or a single image for all of them")
    matching = image.expand(batch, -1, -1, -1).float()
    return matching if len(concept_maps.prompts) == 1 else matching.repeat(len(concept_maps.prompts), 1, 1, 1)
