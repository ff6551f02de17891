"""Sampling a tiny model the ways the tests compare: ComfyUI's own KSampler, the Concept Attention Sampler, and
a plain sampler's first model call recorded."""

import contextlib
import inspect

import comfy.model_management
import comfy.patcher_extension
import nodes
import torch


def prompt(clip, text):
    tokens = clip.tokenize(text)
    cond, pooled = clip.encode_from_tokens(tokens, return_pooled=True)
    return [[cond, {"pooled_output": pooled}]]


def sampler_inputs(clip, batch, cfg, size=(8, 10), channels=16):
    """KSampler's inputs: 3 euler steps from seed 7 on an empty latent [batch, channels, *size]."""
    return dict(seed=7, steps=3, cfg=cfg, sampler_name="euler", scheduler="simple",
                positive=prompt(clip, "a red dog on green grass"), negative=prompt(clip, "blurry"),
                latent_image={"samples": torch.zeros(batch, channels, *size)}, denoise=1.0)


def concept_sampler(ca, model, clip, **inputs):
    """(LATENT, CONCEPT_MAPS) of the Concept Attention Sampler: concepts dog, grass and sky, every layer."""
    out = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts="dog, grass, sky", layers="all", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs)
    return out.args


def run_sampler(ca, model, clip, inputs, **overrides):
    """concept_sampler with some of its settings changed."""
    values = dict(concepts="dog, grass, sky", layers="all", space="output", softmax=True, token_pooling="first",
                  start_step=0, end_step=10000)
    values.update(overrides)
    return ca.nodes.sampler_node.ConceptAttentionSampler.execute(model=model, clip=clip, **values, **inputs).args


def run_layers(ca, model, clip, inputs, layers, softmax):
    return run_sampler(ca, model, clip, inputs, layers=layers, softmax=softmax)


def ksampler(model, inputs):
    """Plain KSampler's latent samples."""
    return nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                 inputs["scheduler"], inputs["positive"], inputs["negative"],
                                 inputs["latent_image"])[0]["samples"]


def first_forward_call(model, inputs: dict) -> tuple[tuple, dict]:
    """The arguments the diffusion model's forward receives at the first call of a plain 1-step sampler on
    `inputs` (a forward pre-hook: families whose forward skips the DIFFUSION_MODEL wrapper included)."""
    calls = []

    def record(module, args, kwargs):
        clone = lambda value: value.clone() if isinstance(value, torch.Tensor) else value  # noqa: E731
        calls.append((tuple(clone(a) for a in args), {k: clone(v) for k, v in kwargs.items()}))

    handle = model.get_model_object("diffusion_model").register_forward_pre_hook(record, with_kwargs=True)
    try:
        nodes.common_ksampler(model, inputs["seed"], 1, 1.0, "euler", "simple", inputs["positive"],
                              inputs["negative"], inputs["latent_image"])
    finally:
        handle.remove()
    return calls[0]


def forward_arguments(model, inputs: dict) -> dict:
    """first_forward_call's arguments by the names of the diffusion model's forward (its defaults left out)."""
    args, kwargs = first_forward_call(model, inputs)
    forward = model.get_model_object("diffusion_model").forward
    return dict(inspect.signature(forward).bind(*args, **kwargs).arguments)


def counting_batches(model, calls: list):
    """A clone of the model that notes the batch of every model call in `calls`."""
    counted = model.clone()

    def note(executor, x, *args, **kwargs):
        calls.append(x.shape[0])
        return executor(x, *args, **kwargs)

    counted.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "count_batches", note)
    return counted


@contextlib.contextmanager
def casting_each_call(model):
    """Within: every ComfyUI layer of the model casts its weight at each call into a new tensor, as an fp8, GGUF or
    offloaded layer does (the values are the weights' own, so sampling is unchanged): the layers take ComfyUI's
    casting forward, and its cast always copies. (A weight function would not do: loading the model clears them.)"""
    layers = {module: module.__dict__.get("comfy_cast_weights")
              for module in model.get_model_object("diffusion_model").modules()
              if hasattr(module, "comfy_cast_weights")}
    cast_to = comfy.model_management.cast_to

    def copying(weight, *args, **kwargs):
        return cast_to(weight, *args, **{**kwargs, "copy": True})

    for layer in layers:
        layer.comfy_cast_weights = True
    comfy.model_management.cast_to = copying
    try:
        yield
    finally:
        comfy.model_management.cast_to = cast_to
        for layer, own in layers.items():
            if own is None:
                del layer.comfy_cast_weights
            else:
                layer.comfy_cast_weights = own
