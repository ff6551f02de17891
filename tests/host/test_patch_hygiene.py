"""The patch lives on a clone, chains with what is already installed and leaves nothing behind."""

import copy

import comfy.patcher_extension
import nodes
import pytest
import torch
from ca_test_nodes import FAMILY_MODELS, tiny_clip, tiny_flux
from test_generation_unchanged import concept_sampler, sampler_inputs


def ksampler(model, inputs):
    return nodes.common_ksampler(model, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                                 inputs["scheduler"], inputs["positive"], inputs["negative"],
                                 inputs["latent_image"])[0]["samples"]


@pytest.mark.parametrize("family", FAMILY_MODELS)
def test_input_model_is_untouched_and_later_runs_reproduce(ca, family):
    model, clip = FAMILY_MODELS[family]()
    inputs = sampler_inputs(clip, 1, 3.5)
    options_before = copy.deepcopy(model.model_options)
    before = ksampler(model, inputs)
    concept_sampler(ca, model, clip, **inputs)
    assert model.model_options == options_before
    for hook in (comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, comfy.patcher_extension.WrappersMP.APPLY_MODEL):
        assert not any(model.wrappers.get(hook, {}).values())
    assert torch.equal(ksampler(model, inputs), before)


@pytest.mark.parametrize("family", FAMILY_MODELS)
def test_an_exception_inside_sampling_leaves_no_patch(ca, family):
    model, clip = FAMILY_MODELS[family]()
    inputs = sampler_inputs(clip, 1, 1.0)
    before = ksampler(model, inputs)
    calls = []

    def explode(executor, *args, **kwargs):
        calls.append(1)
        if len(calls) == 2:
            raise RuntimeError("boom in the middle of sampling")
        return executor(*args, **kwargs)

    failing = model.clone()
    failing.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.APPLY_MODEL, "explode", explode)  # every family
    with pytest.raises(RuntimeError, match="boom"):
        concept_sampler(ca, failing, clip, **inputs)
    assert "patches_replace" not in model.model_options.get("transformer_options", {})
    assert torch.equal(ksampler(model, inputs), before)


@pytest.mark.parametrize("family", FAMILY_MODELS)
def test_chains_an_existing_double_block_patch_and_attention_override(ca, family):
    model, clip = FAMILY_MODELS[family]()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    _, plain_maps = concept_sampler(ca, model, clip, **inputs)
    seen_blocks, seen_attention = [], []

    def other_block_patch(index):
        def patch(args, extra):
            seen_blocks.append(index)
            out = extra["original_block"](args)
            return {"img": out["img"], "txt": out["txt"]}
        return patch

    def other_override(func, *args, **kwargs):
        seen_attention.append(1)
        return func(*args, **kwargs)

    def other_single_block_patch(args, extra):
        seen_blocks.append("single 0")
        return extra["original_block"](args)

    other = model.clone()
    for index in range(3):
        other.set_model_patch_replace(other_block_patch(index), "dit", "double_block", index)
    single_blocks = bool(getattr(model.get_model_object("diffusion_model"), "single_blocks", None))
    if single_blocks:  # Flux-style families; SD3 has joint blocks only
        other.set_model_patch_replace(other_single_block_patch, "dit", "single_block", 0)
    other.model_options["transformer_options"]["optimized_attention_override"] = other_override
    reference = ksampler(other, inputs)
    seen_blocks.clear()
    seen_attention.clear()
    latent, maps = concept_sampler(ca, other, clip, **inputs)
    assert seen_blocks == [0, 1, 2] + ["single 0"] * single_blocks  # the other patches still ran, once per block
    assert len(seen_attention) >= 3  # and the other override saw every double block's attention
    assert torch.equal(latent["samples"], reference)
    assert torch.allclose(maps.maps, plain_maps.maps)


def test_a_second_concept_patch_stacks_on_the_first(ca):
    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    family = ca.nodes.families.family_for(model)
    first = ca.nodes.patch.ConceptAttentionPatch(
        family, ca.nodes.encoding.encode_concepts(clip, ["dog"], "first", family)[0], (0, 1, 2), (0, 10000))
    second = ca.nodes.patch.ConceptAttentionPatch(
        family, ca.nodes.encoding.encode_concepts(clip, ["grass", "sky"], "first", family)[0], (0, 1, 2), (0, 10000))
    both = second.install(first.install(model.clone()))
    assert torch.equal(ksampler(both, inputs), ksampler(model, inputs))
    assert first.aggregator.mean("output").shape[1] == 1
    assert second.aggregator.mean("output").shape[1] == 2


@pytest.mark.parametrize(("layers", "following"), [("all", ("single_block", 0)), ("0", ("double_block", 1))])
def test_the_last_stream_blocks_output_is_released_at_the_next_block(ca, layers, following):
    """ComfyUI's forward keeps the last replacement's dict alive to the end; the stream empties it
    as soon as the next block starts, so no extra image tensor lives through the later blocks."""
    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    last = 2 if layers == "all" else 0
    returned, seen_at_next_block = [], []

    def recording_block(args, extra):
        out = extra["original_block"](args)
        returned.append(out)
        return out

    def checking_block(args, extra):
        seen_at_next_block.append(dict(returned[-1]))
        return extra["original_block"](args)

    other = model.clone()
    other.set_model_patch_replace(recording_block, "dit", "double_block", last)
    other.set_model_patch_replace(checking_block, "dit", *following)
    reference = ksampler(other, inputs)
    assert set(seen_at_next_block[-1]) == {"img", "txt"}  # without the stream, ComfyUI's dict stays full
    latent = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=other, clip=clip, concepts="dog, grass", layers=layers, space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args[0]
    assert seen_at_next_block[-1] == {}
    assert torch.equal(latent["samples"], reference)


def test_no_double_block_dict_outlives_the_double_blocks(ca):
    """With the stream ending early, the first single block still finds every replacement dict of
    the double blocks emptied: the release patch's own dict included."""
    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    returned, seen_at_single_block = [], []

    def recording_block(args, extra):
        out = extra["original_block"](args)
        returned.append(out)
        return out

    def checking_block(args, extra):
        seen_at_single_block.append([dict(out) for out in returned])
        return extra["original_block"](args)

    other = model.clone()
    other.set_model_patch_replace(recording_block, "dit", "double_block", 1)  # the release patch chains it
    other.set_model_patch_replace(checking_block, "dit", "single_block", 0)
    ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=other, clip=clip, concepts="dog, grass", layers="0", space="output", softmax=True,
        token_pooling="first", start_step=0, end_step=10000, **inputs)
    assert seen_at_single_block[-1] == [{}]


def test_a_family_can_hook_apply_model_instead(ca):
    """A family whose forward bypasses DIFFUSION_MODEL declares hook = "APPLY_MODEL": the same patch then
    opens its stream there, by argument name, and gives the same latent and maps."""
    class ApplyModelFlux(ca.nodes.flux.FluxFamily):
        hook = "APPLY_MODEL"

    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 3.5), "steps": 2}
    family = ca.nodes.flux.FluxFamily()
    context, _ = ca.nodes.encoding.encode_concepts(clip, ["dog", "sky"], "first", family)
    results = {}
    for name, chosen in (("diffusion model", family), ("apply model", ApplyModelFlux())):
        patch = ca.nodes.patch.ConceptAttentionPatch(chosen, context, (0, 1, 2), (0, 10000))
        patched = patch.install(model.clone())
        hook = getattr(comfy.patcher_extension.WrappersMP, chosen.hook)
        assert patched.wrappers[hook].get(ca.nodes.patch.WRAPPER_KEY)
        results[name] = (ksampler(patched, inputs), patch.concept_maps(["dog", "sky"], (64, 80), "output", 16))
    assert torch.equal(results["apply model"][0], results["diffusion model"][0])
    assert torch.equal(results["apply model"][0], ksampler(model, inputs))
    assert torch.allclose(results["apply model"][1].maps, results["diffusion model"][1].maps, atol=1e-6)


def test_a_family_can_reach_its_blocks_through_their_attention_calls(ca):
    """block_entry = "attention" (for forwards without patches_replace entries): the same patch reaches Flux's
    double blocks through their joint attention calls alone (the single blocks' calls come after the last
    chosen block), and gives the same latent and maps as through the block replacements."""
    inputs = {**sampler_inputs(tiny_clip(), 1, 3.5), "steps": 2}
    rows, columns = (side // 2 for side in inputs["latent_image"]["samples"].shape[-2:])

    class AttentionFlux(ca.nodes.flux.FluxFamily):
        block_entry = "attention"

        def text_tokens(self, block_args):  # the attention call's q [B, H, L, D]: text, then the image tokens
            return block_args["q"].shape[2] - rows * columns

    model, clip = tiny_flux(3), tiny_clip()
    family = ca.nodes.flux.FluxFamily()
    context, _ = ca.nodes.encoding.encode_concepts(clip, ["dog", "sky"], "first", family)
    results = {}
    for name, chosen in (("patches_replace", family), ("attention", AttentionFlux())):
        patch = ca.nodes.patch.ConceptAttentionPatch(chosen, context, (0, 1, 2), (0, 10000))
        patched = patch.install(model.clone())
        replaced = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
        assert bool(replaced) == (name == "patches_replace")
        results[name] = (ksampler(patched, inputs), patch.concept_maps(["dog", "sky"], (64, 80), "output", 16))
    assert torch.equal(results["attention"][0], results["patches_replace"][0])
    assert torch.equal(results["attention"][0], ksampler(model, inputs))
    assert results["attention"][1].steps == (0, 1)
    assert torch.allclose(results["attention"][1].maps, results["patches_replace"][1].maps, atol=1e-6)
