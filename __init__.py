"""ConceptAttention for ComfyUI: per-concept saliency maps and masks from a diffusion transformer's joint attention."""

from .nodes import comfy_entrypoint

WEB_DIRECTORY = "./web"

__all__ = ["comfy_entrypoint", "WEB_DIRECTORY"]
