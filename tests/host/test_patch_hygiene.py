"""The patch chains with what is already installed, stacks, releases the blocks' outputs early, and reaches its
blocks however the family declares. (That it lives on a clone and leaves nothing behind, for every family:
test_family_contract.py.)"""


import comfy.patcher_extension
import pytest
import torch
from helpers.models import tiny_clip, tiny_flux
from helpers.sampling import concept_sampler, ksampler, sampler_inputs
from helpers.variants import ATTENTION_ENTRY_FAMILIES, FAMILY_NAMES, VARIANTS

# one variant per family whose joint blocks have patches_replace entries, and one per family reached through its
# attention calls
BLOCK_PATCH_VARIANTS = [next(v for v in VARIANTS if v.family == family) for family in FAMILY_NAMES
                        if family not in ATTENTION_ENTRY_FAMILIES]
ATTENTION_VARIANTS = [next(v for v in VARIANTS if v.family == family) for family in ATTENTION_ENTRY_FAMILIES]


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.family, marks=pytest.mark.skipif(
    not v.available, reason=f"{v.family} needs ComfyUI {v.requires}")) for v in BLOCK_PATCH_VARIANTS])
def test_chains_an_existing_double_block_patch_and_attention_override(ca, variant):
    model, clip = variant.model(3, 3), variant.clip()
    inputs = variant.inputs(1, 1.0, steps=1)
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


@pytest.mark.parametrize("variant", [pytest.param(v, id=v.family, marks=pytest.mark.skipif(
    not v.available, reason=f"{v.family} needs ComfyUI {v.requires}")) for v in ATTENTION_VARIANTS])
def test_chains_an_attention_override_already_on_the_model(ca, variant):
    """Families reached through their attention calls: an override another node set runs exactly where it runs
    without the stream (under the stream's own), and the image is what it makes alone. Ernie-Image hands its
    attention no options, so such an override never runs there, with the stream or without."""
    model, clip = variant.model(3, 3), variant.clip()
    inputs = variant.inputs(1, 3.5, steps=2)
    seen = []

    def doubling_values(func, *args, **kwargs):  # changes the image, so its absence would show
        seen.append(1)
        return func(args[0], args[1], args[2] * 2, *args[3:], **kwargs)

    other = model.clone()
    other.model_options.setdefault("transformer_options", {})["optimized_attention_override"] = doubling_values
    alone = ksampler(other, inputs)
    calls_alone = len(seen)
    seen.clear()
    assert torch.equal(alone, ksampler(model, inputs)) == (calls_alone == 0)
    assert (calls_alone == 0) == (variant.family == "ernie")
    latent, maps = concept_sampler(ca, other, clip, **inputs)
    assert torch.equal(latent["samples"], alone) and len(seen) == calls_alone
    assert torch.isfinite(maps.maps).all()


def test_a_second_concept_patch_stacks_on_the_first(ca):
    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    family = ca.nodes.families.family_for(model)
    first = ca.nodes.stream.install.ConceptAttentionPatch(
        family, ca.nodes.stream.encoding.encode_concepts(clip, ["dog"], "first", family)[0], (0, 1, 2), (0, 10000))
    second = ca.nodes.stream.install.ConceptAttentionPatch(
        family, ca.nodes.stream.encoding.encode_concepts(clip, ["grass", "sky"], "first", family)[0], (0, 1, 2), (0, 10000))
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
    """A family whose forward bypasses DIFFUSION_MODEL declares hook = Hook.APPLY_MODEL: the same patch then
    opens its stream there, by argument name, and gives the same latent and maps."""
    class ApplyModelFlux(ca.nodes.families.flux.FluxFamily):
        hook = ca.nodes.families.base.Hook.APPLY_MODEL

    model, clip = tiny_flux(3), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 3.5), "steps": 2}
    family = ca.nodes.families.flux.FluxFamily()
    context, _ = ca.nodes.stream.encoding.encode_concepts(clip, ["dog", "sky"], "first", family)
    results = {}
    for name, chosen in (("diffusion model", family), ("apply model", ApplyModelFlux())):
        patch = ca.nodes.stream.install.ConceptAttentionPatch(chosen, context, (0, 1, 2), (0, 10000))
        patched = patch.install(model.clone())
        hook = getattr(comfy.patcher_extension.WrappersMP, chosen.hook.value)
        assert patched.wrappers[hook].get(ca.nodes.stream.install.WRAPPER_KEY)
        results[name] = (ksampler(patched, inputs), patch.concept_maps(["dog", "sky"], (64, 80), "output", 16))
    assert torch.equal(results["apply model"][0], results["diffusion model"][0])
    assert torch.equal(results["apply model"][0], ksampler(model, inputs))
    assert torch.allclose(results["apply model"][1].maps, results["diffusion model"][1].maps, atol=1e-6)


def test_a_family_can_reach_its_blocks_through_their_attention_calls(ca):
    """block_entry = BlockEntry.ATTENTION (for forwards without patches_replace entries): the same patch reaches Flux's
    double blocks through their joint attention calls alone (the single blocks' calls come after the last
    chosen block), and gives the same latent and maps as through the block replacements."""
    inputs = {**sampler_inputs(tiny_clip(), 1, 3.5), "steps": 2}
    rows, columns = (side // 2 for side in inputs["latent_image"]["samples"].shape[-2:])

    class AttentionFlux(ca.nodes.families.flux.FluxFamily):
        block_entry = ca.nodes.families.base.BlockEntry.ATTENTION

        def text_tokens(self, block_args):  # the attention call's q [B, H, L, D]: text, then the image tokens
            return block_args["q"].shape[2] - rows * columns

    model, clip = tiny_flux(3), tiny_clip()
    family = ca.nodes.families.flux.FluxFamily()
    context, _ = ca.nodes.stream.encoding.encode_concepts(clip, ["dog", "sky"], "first", family)
    results = {}
    for name, chosen in (("patches_replace", family), ("attention", AttentionFlux())):
        patch = ca.nodes.stream.install.ConceptAttentionPatch(chosen, context, (0, 1, 2), (0, 10000))
        patched = patch.install(model.clone())
        replaced = patched.model_options.get("transformer_options", {}).get("patches_replace", {}).get("dit", {})
        assert bool(replaced) == (name == "patches_replace")
        results[name] = (ksampler(patched, inputs), patch.concept_maps(["dog", "sky"], (64, 80), "output", 16))
    assert torch.equal(results["attention"][0], results["patches_replace"][0])
    assert torch.equal(results["attention"][0], ksampler(model, inputs))
    assert results["attention"][1].steps == (0, 1)
    assert torch.allclose(results["attention"][1].maps, results["patches_replace"][1].maps, atol=1e-6)
