"""The socket types shared by the extension's nodes."""

from comfy_api.latest import io

ConceptMapsType = io.Custom("CONCEPT_MAPS")
# What a Concept Attention Model's patch recorded, for the Concept Maps collector.
ConceptRecorderType = io.Custom("CONCEPT_RECORDER")
# ComfyUI's box type (SAM3 Detect's bboxes), declared by name where the host's V3 API predates it.
BoundingBoxType = getattr(io, "BoundingBox", None) or io.Custom("BOUNDING_BOX")
