"""The CONCEPT_MAPS socket type, shared by every node of the extension."""

from comfy_api.latest import io

ConceptMapsType = io.Custom("CONCEPT_MAPS")
