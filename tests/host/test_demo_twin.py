"""The demo model trains on a twin of ComfyUI's Flux; its weights must mean the same in ComfyUI."""

import comfy.supported_models
import torch

from demo_model.config import DemoConfig
from research.flux_twin import FluxTwin


def test_twin_and_comfyui_flux_agree_on_the_same_weights(ca):
    config = DemoConfig(hidden_size=64, num_heads=2, depth=2, depth_single_blocks=1)
    torch.manual_seed(0)
    twin = FluxTwin(config)
    with torch.no_grad():
        for p in twin.parameters():
            p.normal_(0, 0.1)
    model_config = comfy.supported_models.FluxSchnell(ca.nodes.families.flux.flux_unet_config(**config.comfy_unet_config()))
    model_config.set_inference_dtype(torch.float32, None)
    comfy_flux = model_config.get_model({}).diffusion_model
    weights = ca.nodes.demo_loader.host_parameter_names(twin.state_dict(), comfy_flux)
    missing, unexpected = comfy_flux.load_state_dict(weights, strict=False)
    assert not missing and not unexpected
    x = torch.randn(2, 16, 8, 12)
    t = torch.tensor([0.3, 0.9])
    context = torch.randn(2, 5, config.context_in_dim)
    pooled = torch.randn(2, config.vec_in_dim)
    with torch.no_grad():
        expected = comfy_flux(x, t, context, y=pooled, transformer_options={})
        actual = twin(x, t, context, pooled)
    assert torch.allclose(actual, expected, atol=1e-5), (actual - expected).abs().max()

