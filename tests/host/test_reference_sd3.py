"""Reference equivalence on SD3: the paper authors' SD3 code (helblazer811/ConceptAttention,
concept_attention/sd3/dit_block.py, exported by scripts/third_party_env.sh reference into $CA_REFERENCE_DIR; built on
diffusers) and the Concept Attention Sampler give the same per-layer concept outputs and scores, on the same
tiny weights and the same model inputs, to 1e-5 in fp32.

Their CustomSD3Transformer2DModel is built at the tiny ComfyUI model's geometry and gets its weights through
ComfyUI's own diffusers key map (comfy.utils.mmdit_to_diffusers: fused qkv split into to_q/k/v and
add_q/k/v_proj, the pre_only context block's and the final layer's (shift, scale) swapped to diffusers'
(scale, shift)); the two models' noise predictions are first checked equal, which proves the conversion. It
runs on the inputs of the sampler's first model call, with our encoded concepts as its
concept_hidden_states (through its context_embedder, as its forward does).

Compared, per joint block (layers=str(i), softmax=False, one step):
- the concepts' attention outputs, before the projection: their second attention call's
  concept_output_vectors (concept queries over [image; concept] keys) against ours;
- the output-space scores: those concept outputs . their FIRST call's image outputs (the normal joint
  attention over [image; text]), against the sampler's maps.
Set up so that the paper's quantities meet, where their code departs from the paper:
- their time embedding adds the pooled vector for every stream, the concepts' too (dit_block.py:752), where
  the paper modulates the concepts by the timestep with a ZERO pooled vector, as we do: both models run here
  on a zero pooled_output, which gives their concepts the paper's modulation and leaves the image and text
  streams alike in both. A negative check runs both on the prompt's real pooled vector: their concepts then
  carry it, ours do not, and the scores must part;
- their image_output_vectors come from the second call (dit_block.py:308-321), where the image tokens attend
  over [image; concepts], i.e. the image sees the concepts, against the paper. The scores use their first
  call's image outputs instead; how far the second call's would move them is printed, not asserted.
Not compared, by design: their concept encoding (all concepts joined into one prompt, its first K+1 CLIP
tokens, start token included: pipeline.py:612-659), and their maps' L2-normalised concept vectors and
vectors averaged over steps before the product (concept_attention_pipeline.py:113-129).

SD3.5 medium (x_block_self_attn_layers; their use_dual_attention): their processor fails on the image-only
second attention (attn2, dit_block.py:340: it has no encoder_hidden_states, whose shape line 145 reads), so
attn2 gets diffusers' JointAttnProcessor2_0, the processor upstream diffusers gives it. attn2 never sees
text or concepts; their concept path runs as written.
"""


import comfy.utils
import pytest
import torch
from einops import rearrange
from helpers.equations import layer_maps_and_outputs
from helpers.models import tiny_sd3, tiny_sd3_clip
from helpers.reference import reference_dir_or_skip, reference_module
from helpers.sampling import first_forward_call, sampler_inputs

try:
    import diffusers.models.attention_processor as diffusers_attention  # requirements-dev.txt
except ImportError:
    diffusers_attention = None
REFERENCE_DIR = reference_dir_or_skip("SD3", ("concept_attention/sd3/dit_block.py",),
                                      None if diffusers_attention else "diffusers is not installed (requirements-dev.txt)")

CONCEPTS = ["dog", "grass", "sky"]
ATOL = 1e-5
DEPTH = 3
VARIANTS = {  # tiny_sd3 options, as SD3.5 large (q/k RMSNorm) and medium (plus an image-only second attention)
    "sd3": {},
    "sd3.5-large": {"qk_norm": "rms"},
    "sd3.5-medium": {"qk_norm": "rms", "x_block_self_attn_layers": (0, 1)},
}


SD3_BLOCK = reference_module(REFERENCE_DIR, "concept_attention.sd3.dit_block")


class RecordingProcessor:
    """Their block's attention processor, keeping what each call returns: their blocks call it twice, the
    joint image-text attention and then the image-concept one. Its signature is theirs, so diffusers'
    Attention passes it the same arguments."""

    def __init__(self, processor):
        self.processor, self.calls = processor, []

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, *args, **kwargs):
        out = self.processor(attn, hidden_states, encoder_hidden_states, attention_mask, *args, **kwargs)
        self.calls.append(out)
        return out


def their_model(dm, qk_norm, x_block_self_attn_layers) -> torch.nn.Module:
    """Their transformer at the tiny model's geometry, with its weights through ComfyUI's diffusers key map."""
    model = SD3_BLOCK.CustomSD3Transformer2DModel(
        sample_size=64, patch_size=2, in_channels=16, num_layers=DEPTH, attention_head_dim=64,
        num_attention_heads=dm.num_heads, joint_attention_dim=dm.context_embedder.in_features,
        caption_projection_dim=dm.hidden_size, pooled_projection_dim=dm.y_embedder.mlp[0].in_features,
        out_channels=16, pos_embed_max_size=dm.pos_embed_max_size, dual_attention_layers=x_block_self_attn_layers,
        qk_norm="rms_norm" if qk_norm else None).float().eval()
    for block in model.transformer_blocks:
        if block.attn2 is not None:  # the image-only attention: see the module docstring
            block.attn2.set_processor(diffusers_attention.JointAttnProcessor2_0())
    ours = dm.state_dict()
    state = {}
    for name, source in comfy.utils.mmdit_to_diffusers({"depth": DEPTH}).items():
        if isinstance(source, str):
            value = ours.get(source)
        elif source[1] is None:  # (key, None, transform)
            value = source[2](ours[source[0]]) if source[0] in ours else None
        else:  # (key, (dim, start, length)): one of q/k/v out of the fused qkv
            dim, start, length = source[1]
            value = ours[source[0]].narrow(dim, start, length) if source[0] in ours else None
        if value is not None:
            state[name] = value
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model


def with_pooled(conditioning, pooled):
    return [[c, {**extra, "pooled_output": pooled(extra["pooled_output"])}] for c, extra in conditioning]


def their_vectors(model, x, t, context, concepts, pooled) -> dict:
    """Per block: their concept outputs (second attention call), the image outputs of their first (joint
    image-text) and second (image-concept) calls; and the model's noise prediction."""
    recorders = []
    for block in model.transformer_blocks:
        recorders.append(RecordingProcessor(block.attn.processor))
        block.attn.set_processor(recorders[-1])
    with torch.no_grad():
        output, _ = model(hidden_states=x, encoder_hidden_states=context, concept_hidden_states=concepts,
                          pooled_projections=pooled, timestep=t, return_dict=False)
    for recorder in recorders:
        assert len(recorder.calls) == 2, f"{len(recorder.calls)} attention calls in one of their blocks"
    # each call returns (image, context, context output vectors, image output vectors, cross-attention maps)
    return {"concepts": [r.calls[1][2] for r in recorders], "image": [r.calls[0][3] for r in recorders],
            "image_seeing_concepts": [r.calls[1][3] for r in recorders], "output": output}


def our_layer(ca, model, clip, inputs, layer: int, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's raw score maps of one joint block, [B, K, h, w], and that block's concept attention outputs."""
    maps, outputs = layer_maps_and_outputs(ca, model, clip, inputs, layer, monkeypatch, CONCEPTS)
    return maps.maps, outputs


def scores(concept_vectors: torch.Tensor, image_vectors: torch.Tensor) -> torch.Tensor:
    return torch.einsum("bkc,bnc->bkn", concept_vectors.float(), image_vectors.float())


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_sd3_scores_equal_the_authors_code(ca, variant, monkeypatch):
    options = VARIANTS[variant]
    model, clip = tiny_sd3(5, depth=DEPTH, **options), tiny_sd3_clip()
    dm = model.get_model_object("diffusion_model")
    assert [block.x_block.x_block_self_attn for block in dm.joint_blocks] == [
        i in options.get("x_block_self_attn_layers", ()) for i in range(DEPTH)]
    reference = their_model(dm, options.get("qk_norm"), options.get("x_block_self_attn_layers", ()))
    concepts, _ = ca.nodes.stream.encoding.encode_concepts(clip, CONCEPTS, "first", ca.nodes.families.sd3.SD3Family())
    prompt_inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    inputs = {**prompt_inputs, **{side: with_pooled(prompt_inputs[side], torch.zeros_like)
                                  for side in ("positive", "negative")}}

    (x, t), kwargs = first_forward_call(model, inputs)
    context, y = kwargs["context"], kwargs["y"]
    assert not y.any()  # the zero pooled vector reached the model
    theirs = their_vectors(reference, x, t, context, concepts, y)
    with torch.no_grad():
        comfy_output = dm(x, t, context=context, y=y)
    conversion = max_difference(theirs["output"], comfy_output)
    print(f"[reference] {variant}: noise prediction max |theirs - ComfyUI| = {conversion:.3g} "
          f"(values up to {float(comfy_output.abs().max()):.3g})")
    assert conversion <= ATOL, "the weights did not convert: the two models differ before any concept"

    grid = (x.shape[-2] // 2, x.shape[-1] // 2)
    for layer in range(DEPTH):
        our_maps, our_concepts = our_layer(ca, model, clip, inputs, layer, monkeypatch)
        assert our_maps.shape[-2:] == grid
        our_scores = rearrange(our_maps, "B K h w -> B K (h w)")
        their_scores = scores(theirs["concepts"][layer], theirs["image"][layer])
        seen = scores(theirs["concepts"][layer], theirs["image_seeing_concepts"][layer])
        concept_difference = max_difference(theirs["concepts"][layer], our_concepts)
        score_difference = max_difference(their_scores, our_scores)
        print(f"[reference] {variant} layer {layer}: concept outputs max |theirs - ours| = {concept_difference:.3g} "
              f"(up to {float(our_concepts.abs().max()):.3g}); scores {score_difference:.3g} (up to "
              f"{float(their_scores.abs().max()):.3g}); scored against their second call's image outputs "
              f"instead: {max_difference(seen, our_scores):.3g}")
        assert our_concepts.shape == theirs["concepts"][layer].shape
        assert torch.allclose(our_concepts, theirs["concepts"][layer], rtol=0, atol=ATOL), (layer, concept_difference)
        assert torch.allclose(our_scores, their_scores, rtol=0, atol=ATOL), (layer, score_difference)

    # negative check: on the prompt's real pooled vector their concepts carry it (our concepts never do)
    (x, t), kwargs = first_forward_call(model, prompt_inputs)
    assert kwargs["y"].abs().max() > 0.1
    pooled = their_vectors(reference, x, t, kwargs["context"], concepts, kwargs["y"])
    parted = []
    for layer in range(DEPTH):
        our_maps, _ = our_layer(ca, model, clip, prompt_inputs, layer, monkeypatch)
        our_scores = rearrange(our_maps, "B K h w -> B K (h w)")
        parted.append(max_difference(scores(pooled["concepts"][layer], pooled["image"][layer]), our_scores))
    print(f"[reference] {variant} on the prompt's pooled vector (their concepts modulated by it): "
          f"{[f'{d:.3g}' for d in parted]}")
    assert min(parted) > 100 * ATOL  # the comparison can fail

