"""The socket types shared by the extension's nodes."""

from comfy_api.latest import io

ConceptMapsType = io.Custom("CONCEPT_MAPS")
# What a Concept Attention Model's patch recorded, for the Concept Maps collector.
ConceptRecorderType = io.Custom("CONCEPT_RECORDER")
