"""A stand-in for step-skipping cache packs (First Block Cache, TeaCache): a clone of a Flux MODEL that skips its
blocks on chosen steps."""

import comfy.patcher_extension
import torch


class CachedBlock(torch.nn.Module):
    """A Flux block behind a step cache: on a skipped step it returns its input plus the residual it added
    the last time it ran, without running (First Block Cache and TeaCache reuse residuals this way)."""

    def __init__(self, block: torch.nn.Module, cache: "StepCache"):
        super().__init__()
        self.block, self.cache = block, cache
        self.residuals = None

    def __getattr__(self, name):  # transparent: the block's own modules and settings (txt_attn, num_heads, ...)
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("block"), name)

    def forward(self, *args, **kwargs):
        double = "img" in kwargs and "txt" in kwargs
        inputs = (kwargs["img"], kwargs["txt"]) if double else (args[0] if args else kwargs["img"],)
        if self.cache.skipping and self.residuals is not None:
            outputs = tuple(x + r for x, r in zip(inputs, self.residuals, strict=True))
            return outputs if double else outputs[0]
        result = self.block(*args, **kwargs)
        outputs = result if double else (result,)
        self.residuals = tuple(out - x for out, x in zip(outputs, inputs, strict=True))
        return result


class StepCache:
    """Which step the model is on, and whether the cache skips it."""

    def __init__(self, skip_steps: set[int], model_sampling):
        self.skip_steps, self.model_sampling = skip_steps, model_sampling
        self.skipping = False
        self.last_output = None

    def step(self, timestep: torch.Tensor, transformer_options: dict) -> int:
        sigmas = transformer_options.get("sample_sigmas")
        if sigmas is None:
            return 0
        schedule = self.model_sampling.timestep(sigmas).float()
        return int((schedule - float(timestep.flatten()[0])).abs().argmin())


def block_cache(model, skip_steps: set[int], mode: str = "after_first_block"):
    """A clone of a Flux MODEL that skips blocks on the chosen steps, as step-skipping cache packs do:
    after_first_block: block 0 runs, every later double and single block reuses its cached residual
    (First Block Cache); whole_model: the diffusion model is not run at all and the previous step's output
    is returned (TeaCache-style caches at their most aggressive)."""
    patched = model.clone()
    cache = StepCache(set(skip_steps), patched.get_model_object("model_sampling"))

    def wrapper(executor, *args, **kwargs):
        timestep = args[1]
        options = kwargs.get("transformer_options") or next((a for a in args if isinstance(a, dict)), {})
        cache.skipping = cache.step(timestep, options) in cache.skip_steps
        if mode == "whole_model" and cache.skipping and cache.last_output is not None:
            return cache.last_output.clone()
        cache.last_output = executor(*args, **kwargs)
        return cache.last_output

    patched.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "ca_test_block_cache", wrapper)
    if mode == "after_first_block":
        dm = patched.get_model_object("diffusion_model")
        for name in ("double_blocks", "single_blocks"):
            for index, block in enumerate(getattr(dm, name)):
                if name == "double_blocks" and index == 0:
                    continue
                patched.add_object_patch(f"diffusion_model.{name}.{index}", CachedBlock(block, cache))
    return patched
