"""ConceptAttention, host-agnostic: plain torch, einops, numpy and opencv; no ComfyUI import."""
