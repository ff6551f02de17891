"""Which model families the concept stream supports; one adapter module per family."""

from .flux import FluxAdapter

ADAPTERS = (FluxAdapter,)


class UnsupportedModelError(ValueError):
    pass


def adapter_for(model):
    """The adapter for a ComfyUI MODEL, or an error naming what is supported."""
    diffusion_model = model.get_model_object("diffusion_model")
    for adapter in ADAPTERS:
        if adapter.matches(diffusion_model):
            return adapter
    supported = "; ".join(adapter.family for adapter in ADAPTERS)
    raise UnsupportedModelError(
        f"ConceptAttention does not support {type(diffusion_model).__name__} models yet; "
        f"supported: {supported}. Load a Flux.1 model (or the demo model) for this node."
    )
