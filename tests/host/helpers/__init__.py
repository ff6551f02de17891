"""What the host tests share; no test module imports another.

models.py      tiny models, text encoders and VAEs of every family, through ComfyUI's own classes
variants.py    every family's variants (the family contract's table)
sampling.py    KSampler, the Concept Attention Sampler and a plain sampler's first model call
equations/     an independent implementation of the paper's equations, one module per family
planted.py     planted models with a known answer, and their one-pass maps
graph.py       prompts for ComfyUI's executor around the test nodes, and what CATestKeep kept
node_pack.py   the test-only ComfyUI nodes, loaded as a custom node pack (see comfy_host.py)
block_cache.py a stand-in for step-skipping cache packs
checkpoints.py, gguf_files.py, weight_formats.py   models as users load them (fp8, scaled fp8, GGUF)
sam3.py        a tiny SAM 3.1 for ComfyUI 0.33's SAM3 nodes
"""
