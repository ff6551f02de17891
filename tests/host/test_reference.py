"""Reference equivalence: the paper authors' own code (helblazer811/ConceptAttention, exported by
scripts/third_party_env.sh reference into $CA_REFERENCE_DIR) and the Concept Attention Sampler give the same
per-layer ConceptAttention scores, on the same tiny weights and the same model inputs.

For Flux.1 (every host) and Flux.2 (hosts with comfy.supported_models.Flux2), the authors' model class
(ModifiedFluxDiT, ModifiedFlux2) is built at the tiny ComfyUI model's geometry, gets that model's weights,
and runs on the inputs the ComfyUI sampler's first model call receives. The compared quantity is each
double block's output-space score: concept attention outputs . image attention outputs, before the
output projection ("concept_scores" in their blocks), against the sampler's maps for layers=str(i),
softmax=False, one step. Tolerance: 1e-5 absolute, fp32.

The authors' code is run as exported, with one exception: concept_attention/flux/dit_block.py:1
imports linear_normalization from concept_attention/utils.py, which needs scikit-learn (absent from
the host venvs); that name is never used in the module, so the module is compiled without that one
import statement (checked here on its syntax tree) instead of stubbing concept_attention.utils.
"""

import ast
import importlib.util
import os
import sys
import warnings
from pathlib import Path

import comfy.patcher_extension
import comfy.supported_models
import nodes
import pytest
import torch
from einops import rearrange, repeat
from helpers.models import tiny_clip, tiny_flux, tiny_flux2, tiny_flux2_clip
from helpers.sampling import sampler_inputs

# What scripts/third_party_env.sh reference exports (commit db30c4d of helblazer811/ConceptAttention).
REFERENCE_FILES = (
    "concept_attention/flux/dit.py",
    "concept_attention/flux/dit_block.py",
    "concept_attention/flux/dit_block_single.py",
    "concept_attention/flux/flux/src/flux/math.py",
    "concept_attention/flux/flux/src/flux/modules/layers.py",
    "concept_attention/flux2/dit.py",
    "concept_attention/flux2/dit_block.py",
    "concept_attention/flux2/flux2/src/flux2/model.py",
)
REFERENCE_DIR = os.environ.get("CA_REFERENCE_DIR")
_missing = [f for f in REFERENCE_FILES if not REFERENCE_DIR or not (Path(REFERENCE_DIR) / f).is_file()]
if _missing:
    _message = ("REFERENCE TESTS SKIPPED: the authors' ConceptAttention code is not available "
                + (f"(CA_REFERENCE_DIR={REFERENCE_DIR} lacks {', '.join(_missing)})" if REFERENCE_DIR
                   else "(set CA_REFERENCE_DIR, or run scripts/test.sh, which runs scripts/third_party_env.sh reference)"))
    warnings.warn(_message, stacklevel=1)
    print(f"\n*** {_message} ***\n", file=sys.stderr)
    pytest.skip(_message, allow_module_level=True)

HAS_FLUX2 = hasattr(comfy.supported_models, "Flux2")  # Flux.2 arrived in ComfyUI 0.8
CONCEPTS = ["dog", "grass", "sky"]
ATOL = 1e-5


def _load_without_unused_import(path: Path, name: str, unused_from: str):
    """Import the module file at `path` as `name`, without its `from <unused_from> import ...` statement,
    after checking on the syntax tree that none of the names it imports is used."""
    tree = ast.parse(path.read_text(), filename=str(path))
    dropped = [node for node in tree.body if isinstance(node, ast.ImportFrom) and node.module == unused_from]
    assert len(dropped) == 1, f"{path} no longer imports {unused_from} once: re-check the reference import"
    tree.body.remove(dropped[0])
    imported = {alias.asname or alias.name for alias in dropped[0].names}
    used = {node.id for node in ast.walk(tree) if isinstance(node, ast.Name)}
    assert not imported & used, f"{path} uses {imported & used} from {unused_from}: it cannot be left out"
    spec = importlib.util.spec_from_loader(name, loader=None, origin=str(path))
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[name] = module
    exec(compile(tree, str(path), "exec"), module.__dict__)  # line numbers stay the file's own
    return module


def _reference_modules():
    """The authors' Flux.1 and Flux.2 DiT modules, imported from CA_REFERENCE_DIR as namespace packages
    (no __init__.py is exported: theirs import the pipelines, model downloads and plotting)."""
    root = Path(REFERENCE_DIR).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    if "concept_attention.flux.dit_block" not in sys.modules:
        _load_without_unused_import(root / "concept_attention/flux/dit_block.py", "concept_attention.flux.dit_block",
                                    "concept_attention.utils")
    import concept_attention.flux.dit as flux_dit
    import concept_attention.flux2.dit as flux2_dit
    import concept_attention.flux2.flux2.src.flux2.model as flux2_model

    for module in (flux_dit, flux2_dit):
        assert Path(module.__file__).resolve().is_relative_to(root), f"{module.__name__} came from {module.__file__}"
    return flux_dit, flux2_dit, flux2_model


FLUX_DIT, FLUX2_DIT, FLUX2_MODEL = _reference_modules()


def load_comfy_weights(reference: torch.nn.Module, diffusion_model: torch.nn.Module) -> None:
    """Every parameter of the authors' model from ComfyUI's model of the same geometry. The names match
    BFL's, except the q/k RMSNorm's scale: `.scale` in theirs, `.weight` in ComfyUI from 0.33 on."""
    state = {}
    for name, tensor in diffusion_model.state_dict().items():
        if name.endswith(("query_norm.weight", "key_norm.weight")):
            name = name[: -len("weight")] + "scale"
        state[name] = tensor
    reference.load_state_dict(state, strict=True)


def with_bfl_rms_norm_eps(patcher):
    """The model with BFL's q/k RMSNorm epsilon, 1e-6 (their RMSNorm, layers.py:71 / model.py:411). ComfyUI
    from 0.33 on uses torch's RMSNorm with eps None (the dtype's machine epsilon, 1.2e-7 in fp32): a host
    difference in the model itself, for the image stream too, which would otherwise cost ~5e-6 here."""
    for name, module in patcher.model.diffusion_model.named_modules():
        if name.endswith(("query_norm", "key_norm")) and getattr(module, "eps", 1e-6) is None:
            module.eps = 1e-6
    return patcher


def recorded_first_call(model, inputs) -> dict:
    """The diffusion model's arguments at the first call of a plain 1-step sampler on these inputs."""
    calls = []

    def record(executor, x, timestep, context, y=None, guidance=None, *args, **kwargs):
        calls.append({"x": x.clone(), "timestep": timestep.clone(), "context": context.clone(),
                      "y": None if y is None else y.clone(), "guidance": None if guidance is None else guidance.clone()})
        return executor(x, timestep, context, y, guidance, *args, **kwargs)

    recorder = model.clone()
    recorder.add_wrapper_with_key(comfy.patcher_extension.WrappersMP.DIFFUSION_MODEL, "record", record)
    nodes.common_ksampler(recorder, inputs["seed"], inputs["steps"], inputs["cfg"], inputs["sampler_name"],
                          inputs["scheduler"], inputs["positive"], inputs["negative"], inputs["latent_image"])
    return calls[0]


def our_scores(ca, model, clip, inputs, layer: int) -> torch.Tensor:
    """The Concept Attention Sampler's raw scores of one double block, [B, K, N] (row-major tokens)."""
    _, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
        model=model, clip=clip, concepts=", ".join(CONCEPTS), layers=str(layer), space="output", softmax=False,
        token_pooling="first", start_step=0, end_step=10000, **inputs).args
    return rearrange(maps.maps, "B K h w -> B K (h w)")


def max_differences(reference: list[torch.Tensor], ours: list[torch.Tensor]) -> list[float]:
    return [float((r.float() - o.float()).abs().max()) for r, o in zip(reference, ours, strict=True)]


def report(family: str, differences: list[float], magnitudes: list[float]) -> None:
    for layer, (difference, magnitude) in enumerate(zip(differences, magnitudes, strict=True)):
        print(f"[reference] {family} layer {layer}: max |theirs - ours| = {difference:.3g} "
              f"(max |score| {magnitude:.3g})")


# ------------------------------------------------------------------------------------------------ Flux.1

def flux1_reference_scores(dm, call: dict, concepts: torch.Tensor, concept_vec: torch.Tensor) -> list[torch.Tensor]:
    """Per-layer concept_scores of the authors' ModifiedFluxDiT with dm's weights, on the recorded call."""
    p = dm.params
    params = FLUX_DIT.FluxParams(
        in_channels=dm.img_in.in_features, vec_in_dim=p.vec_in_dim, context_in_dim=p.context_in_dim,
        hidden_size=p.hidden_size, mlp_ratio=p.mlp_ratio, num_heads=p.num_heads, depth=p.depth,
        depth_single_blocks=p.depth_single_blocks, axes_dim=list(p.axes_dim), theta=p.theta, qkv_bias=p.qkv_bias,
        guidance_embed=p.guidance_embed)
    reference = FLUX_DIT.ModifiedFluxDiT(params).float().eval()
    load_comfy_weights(reference, dm)
    x, context = call["x"], call["context"]
    b, _, h, w = x.shape
    # as their sampling.prepare (concept_attention/flux/flux/src/flux/sampling.py:36-50)
    img = rearrange(x, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=2, pw=2)
    img_ids = torch.zeros(h // 2, w // 2, 3)
    img_ids[..., 1] = img_ids[..., 1] + torch.arange(h // 2)[:, None]
    img_ids[..., 2] = img_ids[..., 2] + torch.arange(w // 2)[None, :]
    img_ids = repeat(img_ids, "h w c -> b (h w) c", b=b)
    txt_ids = torch.zeros(b, context.shape[1], 3)
    # as their embed_concepts (concept_attention/utils.py:62-67): zero concept ids
    concept_ids = torch.zeros(b, concepts.shape[1], 3)
    with torch.no_grad():
        _, dicts = reference(img=img, img_ids=img_ids, txt=context, txt_ids=txt_ids,
                             concepts=concepts.expand(b, -1, -1), concept_ids=concept_ids, concept_vec=concept_vec,
                             timesteps=call["timestep"], y=call["y"], guidance=call["guidance"],
                             stop_after_multimodal_attentions=True)
    return [d["concept_scores"] for d in dicts]


@pytest.mark.parametrize("guidance_embed", [True, False], ids=["dev", "schnell"])
def test_flux1_scores_equal_the_authors_code(ca, guidance_embed):
    """Flux.1: their ModifiedFluxDiT (concept_attention/flux/dit.py, dit_block.py) against the sampler.

    Matched on purpose, as their code does: each concept is the first token of its own T5 encoding
    (utils.py:58), at RoPE position zero (utils.py:62), modulated by the block's txt_mod from the timestep
    and guidance embeddings plus vector_in of a ZERO pooled vector (utils.py:64-67, dit.py:113-119,
    dit_block.py:86). Not compared, by design: their cross-attention baseline is concept queries . image
    QUERIES, both before RoPE, summed over heads with no 1/sqrt(D) (dit_block.py:192-193,
    pipeline.py:41-62), where ours is concept queries . image keys after RoPE, scaled and averaged over
    heads. Negative check: the prompt's pooled vector as their concept_vec (text-like modulation) must
    break the agreement.
    """
    model, clip = with_bfl_rms_norm_eps(tiny_flux(5, guidance_embed, depth=3)), tiny_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    call = recorded_first_call(model, inputs)
    family = ca.nodes.families.flux.FluxFamily()
    concepts, positions = ca.nodes.stream.encoding.encode_concepts(clip, CONCEPTS, "first", family)
    for name in CONCEPTS:  # their token, concept_embedding[0, 0]: T5 has no start token, so the first own one
        tokens = clip.tokenize(name, return_word_ids=True)
        length = clip.encode_from_tokens(clip.tokenize(name)).shape[1]
        assert family.concept_token_indices(clip, name, tokens, length)[0] == 0, name
    assert family.concept_rope(None, None, positions) is None  # ours: zero positions, the identity
    dm = model.get_model_object("diffusion_model")
    theirs = flux1_reference_scores(dm, call, concepts, torch.zeros_like(call["y"]))
    ours = [our_scores(ca, model, clip, inputs, layer) for layer in range(len(dm.double_blocks))]
    differences = max_differences(theirs, ours)
    report(f"Flux.1 {'dev' if guidance_embed else 'schnell'}", differences, [float(t.abs().max()) for t in theirs])
    for layer, (t, o) in enumerate(zip(theirs, ours, strict=True)):
        assert t.shape == o.shape
        assert torch.allclose(o, t, rtol=0, atol=ATOL), (layer, differences)

    text_modulated = max_differences(flux1_reference_scores(dm, call, concepts, call["y"]), ours)
    print(f"[reference] Flux.1 with the prompt's pooled vector as concept_vec: {[f'{d:.3g}' for d in text_modulated]}")
    assert min(text_modulated) > 100 * ATOL  # the comparison can fail


# ------------------------------------------------------------------------------------------------ Flux.2

def flux2_reference_scores(dm, call: dict, concepts: torch.Tensor, positions: list[int]) -> list[torch.Tensor]:
    """Per-layer concept_scores of the authors' ModifiedFlux2 with dm's weights, on the recorded call, each
    concept at text position (0, 0, 0, positions[k])."""
    p = dm.params
    params = FLUX2_MODEL.Flux2Params(
        in_channels=dm.img_in.in_features, context_in_dim=p.context_in_dim, hidden_size=p.hidden_size,
        num_heads=p.num_heads, depth=p.depth, depth_single_blocks=p.depth_single_blocks, axes_dim=list(p.axes_dim),
        theta=p.theta, mlp_ratio=p.mlp_ratio)
    reference = FLUX2_DIT.ModifiedFlux2(params).float().eval()
    load_comfy_weights(reference, dm)
    x, context = call["x"], call["context"]
    b, _, h, w = x.shape
    # as their prc_img / prc_txt (concept_attention/flux2/flux2/src/flux2/sampling.py:93-153): int64 ids
    img = rearrange(x, "b c h w -> b (h w) c")
    x_ids = torch.cartesian_prod(torch.arange(1), torch.arange(h), torch.arange(w), torch.arange(1))
    ctx_ids = torch.cartesian_prod(torch.arange(1), torch.arange(1), torch.arange(1), torch.arange(context.shape[1]))
    # their concept_ids = the (0, 0, 0, l) ids of the concept's token (flux2/pipeline.py:375-378)
    concept_ids = torch.tensor([[0, 0, 0, position] for position in positions])
    with torch.no_grad():
        _, dicts = reference(x=img, x_ids=repeat(x_ids, "n a -> b n a", b=b), timesteps=call["timestep"],
                             ctx=context, ctx_ids=repeat(ctx_ids, "n a -> b n a", b=b), guidance=call["guidance"],
                             concepts=concepts.expand(b, -1, -1), concept_ids=repeat(concept_ids, "k a -> b k a", b=b))
    return [d["concept_scores"] for d in dicts]


@pytest.mark.skipif(not HAS_FLUX2, reason="Flux.2 arrived in ComfyUI 0.8; this host predates it")
def test_flux2_scores_equal_the_authors_code(ca):
    """Flux.2: their ModifiedFlux2 (concept_attention/flux2/dit.py, dit_block.py) against the sampler.

    Matched on purpose: the concepts share the model-level text modulation (dit.py:108-109,
    dit_block.py:99-101, 176-179), go through txt_in (dit.py:116), and are rotated by the RoPE of text
    ids (0, 0, 0, l) (dit.py:122); each concept is given the position ours gives it, and the concepts
    here are single tokens, so their last-token choice and our first-token pooling pick the same token.
    Not compared, by design: their concept token is index 510 of a 512-token left-padded Mistral
    encoding, i.e. the LAST token of the concept, at position 510 for every concept (pipeline.py:376-378),
    where ours is the first own token at its own position (3 in this klein-style template); their
    cross-attention baseline is q . k summed over heads, before RoPE, with no 1/sqrt(D)
    (dit_block.py:154-160); their maps average the raw scores over steps and layers and then take one
    softmax over concepts at temperature 1000 (pipeline.py:89-111, 330), where ours takes a softmax per
    layer and step (temperature 1) before averaging. Negative check: their own position 510 for the
    concepts must break the agreement.
    """
    model, clip = with_bfl_rms_norm_eps(tiny_flux2(5)), tiny_flux2_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1, "latent_image": {"samples": torch.zeros(1, 128, 4, 6)}}
    call = recorded_first_call(model, inputs)
    family = ca.nodes.families.flux2.Flux2Family()
    concepts, positions = ca.nodes.stream.encoding.encode_concepts(clip, CONCEPTS, "first", family)
    for name in CONCEPTS:  # single tokens: their last token is our first
        tokens = clip.tokenize(name, return_word_ids=True)
        length = clip.encode_from_tokens(clip.tokenize(name)).shape[1]
        assert len(family.concept_token_indices(clip, name, tokens, length)) == 1, name
    assert positions == [3, 3, 3]  # after "<|im_start|>user\n"
    dm = model.get_model_object("diffusion_model")
    theirs = flux2_reference_scores(dm, call, concepts, positions)
    ours = [our_scores(ca, model, clip, inputs, layer) for layer in range(len(dm.double_blocks))]
    differences = max_differences(theirs, ours)
    report("Flux.2", differences, [float(t.abs().max()) for t in theirs])
    for layer, (t, o) in enumerate(zip(theirs, ours, strict=True)):
        assert t.shape == o.shape
        assert torch.allclose(o, t, rtol=0, atol=ATOL), (layer, differences)

    at_510 = max_differences(flux2_reference_scores(dm, call, concepts, [510] * len(CONCEPTS)), ours)
    print(f"[reference] Flux.2 with the concepts at their position 510: {[f'{d:.3g}' for d in at_510]}")
    assert min(at_510) > 100 * ATOL  # the comparison can fail
