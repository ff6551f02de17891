"""A tiny SAM 3.1 built through ComfyUI 0.33's own classes, with drawn weights, for running its SAM3 nodes on the
CPU in well under a second a call. Its masks mean nothing; what it proves is that prompts reach the model in the
form the nodes read.

The sizes flow from the unet config: SAM3Model -> SAM3Detector (d_model, embed_dim, num_queries) -> the ViT trunk
(depth, window_size, global_att_blocks, mlp_ratio) and the tracker (d_model, mem_dim, num_maskmem, num_multiplex).
The ViT keeps its 16 heads (so embed_dim is a multiple of 64, for its 2D RoPE), the 1008-px input and the 72 x 72
token grid; SAM 3.1's memory attention needs d_model a multiple of 32 and mem_dim equal to it. num_maskmem 0
skips the memory attention over 5184 tokens, seconds a frame on two cores. (SAM 3 without the .1 cannot track
video in ComfyUI 0.33: its tracker returns a tensor where SAM3_VideoTrack expects a dict.)
"""

import comfy.ldm.modules.attention
import comfy.model_patcher
import comfy.supported_models
import torch

TINY_SAM31 = {"image_model": "SAM31", "embed_dim": 64, "depth": 1, "global_att_blocks": (), "window_size": 8,
              "mlp_ratio": 2.0, "d_model": 32, "num_queries": 4, "mem_dim": 32, "num_maskmem": 0, "num_multiplex": 2}
# The width of SAM3's text embeddings, which its language resizer maps to d_model: the ViT's.
TEXT_WIDTH = TINY_SAM31["embed_dim"]


def tiny_sam31() -> comfy.model_patcher.ModelPatcher:
    torch.manual_seed(0)  # the prompt encoder draws its random Fourier features at construction
    config = comfy.supported_models.SAM31(dict(TINY_SAM31))
    config.set_inference_dtype(torch.float32, None)
    model = config.get_model({})
    draw_weights(model.diffusion_model)
    cpu = torch.device("cpu")
    return comfy.model_patcher.ModelPatcher(model, load_device=cpu, offload_device=cpu)


def draw_weights(module: torch.nn.Module, std: float = 0.02) -> None:
    """ComfyUI leaves weights uninitialised: matrices drawn, biases zero, norm scales and layer scales one."""
    generator = torch.Generator().manual_seed(0)
    norms = (torch.nn.LayerNorm, torch.nn.GroupNorm)
    with torch.no_grad():
        for name, parameter in module.named_parameters():
            owner = module.get_submodule(name.rsplit(".", 1)[0]) if "." in name else module
            if isinstance(owner, norms) and name.endswith("weight") or name.endswith("gamma"):
                parameter.fill_(1.0)
            elif parameter.ndim >= 2 and not isinstance(owner, norms):
                parameter.copy_(torch.randn(parameter.shape, generator=generator) * std)
            else:
                parameter.zero_()


def sam3_modules_use_sdpa(monkeypatch) -> None:
    """On the CPU ComfyUI picks sub-quadratic attention, three times slower on SAM3's 5184 tokens than torch's
    SDPA; SAM3's modules bind the attention function by name, so it is swapped there only."""
    import comfy.ldm.sam3.detector
    import comfy.ldm.sam3.sam
    import comfy.ldm.sam3.tracker

    for module in (comfy.ldm.sam3.detector, comfy.ldm.sam3.sam, comfy.ldm.sam3.tracker):
        monkeypatch.setattr(module, "optimized_attention", comfy.ldm.modules.attention.attention_pytorch)
