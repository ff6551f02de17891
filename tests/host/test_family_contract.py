"""The family contract: what every supported family, in every variant (helpers/variants.py), must do.

- The latent is bit-identical to plain sampling (cfg 1 and cfg > 1, batches of one and two, a non-square latent).
- The maps equal an independent implementation of the paper's equations (helpers/equations/<family>.py), every
  layer on its own and all of them averaged.
- A planted model's known answer is found: concept 'left' wins exactly the left image tokens, at every size
  (odd sizes included where the family pads), and an edit reference's tokens stay out of the maps.
- Segment Image runs.
- `layers = auto` picks the family's blocks.
- A concept's own tokens are found in its encoding.
- The patch is clean after the run: the model's options, wrappers and modules are as before, an exception inside
  sampling (or inside a block) leaves no patch behind, and plain sampling reproduces.
- The concepts reuse the text layers' casts: each layer of the concepts' modulation, q/k/v, projection and MLP runs
  its own forward as often as in plain sampling.

A variant the host predates is skipped, naming the ComfyUI version it needs. Per-family test files keep what is
the family's own (comparisons with the authors' code, video frames, conditioning modes, tokenizer details).
"""

import contextlib
import copy
import importlib
import math
from collections import Counter

import comfy.patcher_extension
import pytest
import torch
from helpers.equations import assert_maps_match
from helpers.planted import concept_context, one_pass_maps
from helpers.sampling import casting_each_call, concept_sampler, forward_arguments, ksampler, run_layers
from helpers.variants import ATTENTION_ENTRY_FAMILIES, AUTO_LAST_BLOCKS, FAMILY_NAMES, VARIANTS

CONCEPTS = ["dog", "grass", "sky"]
# planted grids in tokens (rows, columns); a half token is a latent cell that the family pads to a whole token
PLANTED_SHAPES = {"square": (4, 4), "wide": (3, 6), "tall": (6, 3), "odd": (3.5, 5.5)}
REFERENCE_KEYS = {"reference_latents", "concat_latent_image"}  # an edit reference in a prompt's conditioning


def variants_with(check: str | None = None):
    """pytest params of the variants that have data for `check` (a Variant field), skipped where the host
    predates them."""
    chosen = [v for v in VARIANTS if check is None or getattr(v, check) is not None]
    return [pytest.param(v, id=v.id, marks=pytest.mark.skipif(
        not v.available, reason=f"{v.family} {v.name} needs ComfyUI {v.requires}; this host predates it"))
        for v in chosen]


@pytest.fixture(scope="module")
def model_of():
    """The variant's tiny model, built once per module for (seed, depth): the tests run it on clones."""
    built = {}

    def get(variant, seed=3, depth=3):
        key = (variant.id, seed, depth)
        if key not in built:
            built[key] = variant.model(seed, depth)
        return built[key]

    return get


def family_of(ca, model, variant):
    """The family the extension finds for the variant's model: the variant's own."""
    family = ca.nodes.families.family_for(model)
    assert type(family).__module__.rsplit(".", 1)[-1] == variant.family
    return family


def test_every_family_has_variants_for_every_check(ca):
    """A family added to FAMILIES without a variant here (or without data for a check in any of its variants)
    fails: the contract covers every family."""
    listed = {type(family).__module__.rsplit(".", 1)[-1] for family in ca.nodes.families.FAMILIES}
    assert listed <= set(FAMILY_NAMES), f"families without a variant in helpers/variants.py: {listed - set(FAMILY_NAMES)}"
    assert set(AUTO_LAST_BLOCKS) == set(FAMILY_NAMES)
    for check in ("equations", "planted", "segment"):
        covered = {v.family for v in VARIANTS if getattr(v, check) is not None}
        assert covered == set(FAMILY_NAMES), f"no variant of {set(FAMILY_NAMES) - covered} has {check} data"
    for family in FAMILY_NAMES:
        importlib.import_module(f"helpers.equations.{family}")  # each family's reference implementation
    attention_entry = {type(family).__module__.rsplit(".", 1)[-1] for family in ca.nodes.families.FAMILIES
                       if family.block_entry is ca.nodes.families.base.BlockEntry.ATTENTION}
    assert attention_entry == listed & set(ATTENTION_ENTRY_FAMILIES)


@pytest.mark.parametrize(("batch", "cfg"), [(1, 1.0), (2, 1.0), (2, 3.5)])
@pytest.mark.parametrize("variant", variants_with())
def test_the_latent_is_plain_samplings(ca, model_of, variant, batch, cfg):
    """(Batch 1 at cfg > 1: test_the_patch_is_clean_after_the_run.)"""
    model, clip = model_of(variant), variant.clip()
    inputs = variant.inputs(batch, cfg)
    reference = ksampler(model, inputs)
    if any(REFERENCE_KEYS & extra.keys() for _, extra in inputs["positive"]):  # the comparison can tell
        plain = {**inputs, **{key: [[c, {k: v for k, v in extra.items() if k not in REFERENCE_KEYS}]
                                    for c, extra in inputs[key]] for key in ("positive", "negative")}}
        assert not torch.equal(reference, ksampler(model, plain))
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    rows, cols = variant.grid[-2:]
    assert maps.maps.shape == (batch * variant.frames, 3, rows, cols)
    assert maps.steps == (0, 1, 2) and maps.layers == (0, 1, 2)
    assert maps.image_size == tuple(cells * variant.cell_pixels for cells in variant.latent[-2:])
    assert maps.token_pixels == variant.token_pixels
    assert maps.frames == variant.frames
    if len(variant.grid) == 2:  # an image model's maps: one per image, no video frames
        assert maps.video_frames == () and maps.pixel_maps().shape == (batch, 3, *maps.image_size)
    # softmax maps over concepts sum to one at every token
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch * variant.frames, rows, cols), atol=1e-5)
    if batch == 2:  # each row of the batch gets its own maps
        assert not torch.allclose(maps.maps[:variant.frames], maps.maps[variant.frames:])


@pytest.mark.parametrize("variant", variants_with("equations"))
def test_the_maps_are_the_papers_equations(ca, model_of, variant):
    model, clip = model_of(variant, seed=5), variant.clip()
    inputs = variant.inputs(1, 1.0, steps=1)
    call = forward_arguments(model, inputs)
    equations = importlib.import_module(f"helpers.equations.{variant.family}")
    concepts, positions = ca.nodes.stream.encoding.encode_concepts(clip, CONCEPTS, "first", family_of(ca, model, variant))
    dm = model.get_model_object("diffusion_model")
    with torch.no_grad():
        expected = equations.expected_scores(dm, call, concepts, positions, **variant.equations)
        if hasattr(equations, "sanity"):  # the family's inputs are what they should be, and the comparison can tell
            equations.sanity(dm, call, clip, CONCEPTS, concepts, positions, expected, **variant.equations)
    assert expected[0][0].shape == (1, 3, math.prod(variant.grid))
    assert_maps_match(ca, model, clip, inputs, expected, variant.grid)


def planted_cases():
    cases = []
    for param in variants_with("planted"):
        variant = param.values[0]
        spec = variant.planted
        for shape, (rows, cols) in PLANTED_SHAPES.items():
            if spec.whole_patches and (rows % 1 or cols % 1):  # a model that refuses part patches has no odd size
                continue
            if (rows * spec.cells) % 1 == 0 and (cols * spec.cells) % 1 == 0:  # one-cell tokens have no half token
                cases.append(pytest.param(variant, shape, id=f"{variant.id}-{shape}", marks=param.marks))
        if spec.reference is not None:
            cases.append(pytest.param(variant, "edit reference", id=f"{variant.id}-edit reference", marks=param.marks))
    return cases


@pytest.mark.parametrize(("variant", "shape"), planted_cases())
def test_the_planted_answer_is_found(ca, variant, shape):
    spec = variant.planted
    token = spec.cells * spec.cell_pixels  # pixels per token side
    rows, cols = PLANTED_SHAPES["wide" if shape == "edit reference" else shape]
    tokens_h, tokens_w = math.ceil(rows), math.ceil(cols)
    boundary = tokens_w // 2
    latent = spec.latent(int(rows * spec.cells), int(cols * spec.cells), boundary)
    reference, conditioning = None, dict(spec.conditioning)
    if shape == "edit reference":  # all 'left': a reference that is not the output
        if spec.reference_key == "reference_latents":
            reference = spec.reference(spec.latent(4 * spec.cells, 4 * spec.cells, 4))
        else:  # beside the latent: at its size, every token 'left'
            conditioning[spec.reference_key] = spec.reference(spec.latent(*latent.shape[-2:], tokens_w))
    maps = one_pass_maps(ca, spec.model(), concept_context(), spec.pooled, latent, spec.cell_pixels, reference,
                         token, conditioning)
    assert maps.maps.shape == (1, 2, tokens_h, tokens_w)  # the generated grid only, never a reference's tokens
    mask = ca.ca_core.masks.concept_mask(maps.pixel_maps(), [0], method="argmax")
    height, width = int(rows * token), int(cols * token)
    assert mask.shape == (1, height, width)
    expected = torch.zeros_like(mask)
    expected[..., : boundary * token] = 1.0
    # Where a size is not a whole number of tokens the family pads the latent circularly, so the last token
    # row/column mixes both contents; compare the tokens that lie wholly inside the image, less the half token next
    # to the mixed one, which the bilinear upsampling blends with it.
    half = token // 2
    whole_h, whole_w = int(rows) * token - half * (rows % 1 > 0), int(cols) * token - half * (cols % 1 > 0)
    whole = (slice(None), slice(0, whole_h), slice(0, whole_w))
    assert torch.equal(mask[whole], expected[whole])
    # the paper's mean threshold gives the same region up to the bilinear ramp at the edge
    mean_mask = ca.ca_core.masks.concept_mask(maps.pixel_maps(), [0], method="mean_threshold")
    far = torch.ones(width, dtype=torch.bool)
    far[boundary * token - half: boundary * token + half] = False
    assert torch.equal(mean_mask[whole][..., far[:whole_w]], expected[whole][..., far[:whole_w]])


@pytest.mark.parametrize("variant", variants_with("segment"))
def test_segment_image_runs(ca, model_of, variant):
    spec = variant.segment
    frames, height, width = spec.image
    image = torch.rand(frames, height, width, 3, generator=torch.Generator().manual_seed(5))
    (maps,) = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model_of(variant), clip=variant.clip(), vae=spec.vae(), image=image, concepts="dog, grass",
        layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5,
        noise_samples=spec.noise_samples, seed=0, caption="a dog on grass").args
    assert maps.maps.shape == spec.maps
    assert maps.image_size == (height, width) and maps.token_pixels == variant.token_pixels
    assert torch.isfinite(maps.maps).all()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(spec.maps[0], *spec.maps[2:]), atol=1e-5)
    assert maps.pixel_maps().shape == (frames, 2, height, width)
    for name, value in spec.attributes.items():
        assert getattr(maps, name) == value, name


@pytest.mark.parametrize("variant", variants_with())
def test_auto_layers_are_the_familys_blocks(ca, model_of, variant):
    depth = 6
    last = AUTO_LAST_BLOCKS[variant.family]
    model, clip = model_of(variant, depth=depth), variant.clip()
    _, maps = run_layers(ca, model, clip, variant.inputs(1, 1.0, steps=1), "auto", True)
    assert maps.layers == tuple(range(depth - (last or depth), depth))


@pytest.mark.parametrize("variant", variants_with())
def test_a_concepts_own_tokens_are_found(ca, model_of, variant):
    """"traffic light"'s own tokens (no start, end, padding or template tokens): the first and the mean pooling
    read them."""
    clip, family = variant.clip(), family_of(ca, model_of(variant), variant)
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    states = family.concept_states(clip, tokens)  # the context, and what else of the encoding the family takes
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    assert tuple(own) == variant.alignment
    encode = ca.nodes.stream.encoding.encode_concepts
    first, positions = encode(clip, ["traffic light"], "first", family)
    mean, _ = encode(clip, ["traffic light"], "mean", family)
    assert positions == [family.concept_position(own[0], states.shape[1])]
    assert torch.allclose(first[0, 0], states[0, own[0]])
    assert torch.allclose(mean[0, 0], states[0, own].mean(dim=0), atol=1e-6)


@pytest.mark.parametrize("variant", variants_with())
def test_the_patch_is_clean_after_the_run(ca, model_of, variant):
    model, clip = model_of(variant), variant.clip()
    inputs = variant.inputs(1, 3.5)
    options_before = copy.deepcopy(model.model_options)
    modules_before = module_patches(model)
    before = ksampler(model, inputs)
    latent, _ = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], before)
    assert model.model_options == options_before
    assert module_patches(model) == modules_before
    for hook in (comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, comfy.patcher_extension.WrappersMP.APPLY_MODEL):
        assert not any(model.wrappers.get(hook, {}).values())
    assert torch.equal(ksampler(model, inputs), before)


@pytest.mark.parametrize("variant", variants_with())
def test_an_exception_inside_sampling_leaves_no_patch(ca, model_of, variant):
    model, clip = model_of(variant), variant.clip()
    inputs = variant.inputs(1, 1.0)
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
    assert not any(model.wrappers.get(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, {}).values())
    assert torch.equal(ksampler(model, inputs), before)


def module_patches(model) -> tuple:
    """The diffusion model's modules' hooks and instance forwards."""
    dm = model.get_model_object("diffusion_model")
    return tuple((name, len(m._forward_pre_hooks), len(m._forward_hooks), "forward" in m.__dict__)
                 for name, m in dm.named_modules())


def text_layers(ca, family, dm, index: int, *parts: str) -> tuple:
    """The linear layers of block `index`'s text stream that the concepts' `parts` (qkv, proj, mlp) run."""
    weights = family.text_stream(dm, index)
    return tuple(layer for part in parts
                 for layer in ca.nodes.stream.shared_casts.linear_layers(getattr(weights, part),
                                                                         getattr(weights, f"{part}_layers")))


@pytest.mark.parametrize("variant", variants_with())
def test_an_exception_inside_a_block_leaves_no_patch(ca, model_of, variant):
    """Raised as the first block's MLP begins, while the concepts' steps watch its layers."""
    model, clip = model_of(variant), variant.clip()
    inputs = variant.inputs(1, 1.0)
    family, dm = family_of(ca, model, variant), model.get_model_object("diffusion_model")
    (first, *_) = text_layers(ca, family, dm, 0, "mlp")
    before, modules_before = ksampler(model, inputs), module_patches(model)

    def explode(module, args):
        raise RuntimeError("boom inside a block")

    handle = first.register_forward_pre_hook(explode)
    try:
        with pytest.raises(RuntimeError, match="boom"):
            concept_sampler(ca, model, clip, **inputs)
    finally:
        handle.remove()
    assert module_patches(model) == modules_before
    assert torch.equal(ksampler(model, inputs), before)


@pytest.mark.parametrize("weights", ["cast", "own"])
@pytest.mark.parametrize("variant", variants_with())
def test_the_concepts_reuse_the_text_layers_casts(ca, model_of, variant, weights, monkeypatch):
    """Counted on each layer's own forward, which casts its weight on fp8, GGUF, offloaded and LoRA-on-the-fly models
    (cast: every layer here casts at each call): the concepts run none of the layers again. On full-precision
    weights (own: nothing to cast) the concepts' q/k/v are made at the attention, not held through the image's (a
    second call of each q/k/v layer per block); the rest still rides along. The last block's concepts are scored,
    not updated."""
    model, clip = model_of(variant), variant.clip()
    inputs = variant.inputs(1, 1.0)
    family, dm = family_of(ca, model, variant), model.get_model_object("diffusion_model")
    blocks = len(family.joint_blocks(dm))
    qkv = {layer for index in range(blocks) for layer in text_layers(ca, family, dm, index, "qkv")}
    reused = {layer for index in range(blocks - 1) for layer in text_layers(ca, family, dm, index, "proj", "mlp")}
    reused |= qkv | {layer for index in range(blocks) for layer in family.modulation_layers(dm, index)}
    calls = Counter()

    def counting(layer):
        own = layer.forward

        def forward(*args, **kwargs):
            calls[layer] += 1
            return own(*args, **kwargs)
        return forward

    ahead = []  # per block: whether the concepts attended before the image's attention, holding no q/k/v through it
    step_class = ca.nodes.stream.step.ConceptStep
    attend_ahead = step_class.attend_ahead

    def recording(step, *args):
        attend_ahead(step, *args)
        ahead.append(step.qkv is None and step._ahead is not None)

    monkeypatch.setattr(step_class, "attend_ahead", recording)
    for layer in reused:
        layer.forward = counting(layer)
    try:
        with casting_each_call(model) if weights == "cast" else contextlib.nullcontext():
            plain_latent = ksampler(model, inputs)
            plain = {layer: calls[layer] for layer in reused}
            calls.clear()
            latent, maps = concept_sampler(ca, model, clip, **inputs)
    finally:
        for layer in reused:
            del layer.forward
    assert torch.equal(latent["samples"], plain_latent)
    assert len(maps.steps) == inputs["steps"]
    assert all(plain.values())
    expected = {layer: plain[layer] * (2 if weights == "own" and layer in qkv else 1) for layer in reused}
    assert {layer: calls[layer] for layer in reused} == expected
    assert ahead and all(ahead) if weights == "cast" else not any(ahead)
    if weights == "cast":
        # their q/k/v made in the text's call and their attention ahead of the image's give the maps the concepts get
        # on their own products, to fp32 round-off (their rows multiply in another kernel; CogVideoX's maps differ by
        # 5e-6 after three blocks and steps)
        _, own_maps = concept_sampler(ca, model, clip, **inputs)
        torch.testing.assert_close(maps.maps, own_maps.maps, rtol=0, atol=1e-5)
        torch.testing.assert_close(maps.cross_attention_maps, own_maps.cross_attention_maps, rtol=0, atol=1e-5)
