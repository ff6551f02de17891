"""Demo model support: a procedural coloured-shapes dataset and a patch-PCA latent codec (no ComfyUI import)."""
