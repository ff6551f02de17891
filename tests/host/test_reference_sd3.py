"""Reference equivalence on SD3: the paper authors' SD3 code (helblazer811/ConceptAttention,
concept_attention/sd3/dit_block.py, exported by scripts/reference_env.sh into $CA_REFERENCE_DIR; built on
diffusers) and the Concept Attention Sampler give the same per-layer scores, on the same tiny weights and
the same model inputs, to 1e-5 in fp32.

Their CustomSD3Transformer2DModel is built at the tiny ComfyUI model's geometry and gets its weights through
ComfyUI's own diffusers key map (comfy.utils.mmdit_to_diffusers); the two models' outputs are first checked
equal, which proves the conversion. Where their code differs from the paper, the comparison is set up so
that the paper's quantities meet:
- their time embedding adds the pooled vector for every stream, the concepts' too: the run uses a zero
  pooled vector, which is the concepts' modulation in the paper (and here) in any case;
- their attention runs twice per block: the normal joint attention of image and text, then image and
  concepts together, where the image tokens also see the concepts, and they score against the image
  outputs of that second call. The paper scores against the image's own outputs, which the image never
  shares with the concepts: those are their first call's image outputs, which are compared here (the
  concept outputs are their second call's, as in their code). How far their second call's image outputs
  would move the scores is printed, not asserted.
Their SD3.5-medium blocks (use_dual_attention) pass a tuple on from the second attention and do not run,
so the comparison covers SD3 and SD3.5 large (q/k RMSNorm).
"""

import os
import sys
import warnings
from pathlib import Path

import comfy.utils
import pytest
import torch
from ca_test_nodes import first_forward_call, tiny_sd3, tiny_sd3_clip
from einops import rearrange
from test_generation_unchanged import sampler_inputs

REFERENCE_FILE = "concept_attention/sd3/dit_block.py"
REFERENCE_DIR = os.environ.get("CA_REFERENCE_DIR")
try:
    import diffusers  # noqa: F401  (requirements-dev.txt; their SD3 code is built on it)
except ImportError:
    diffusers = None
if not REFERENCE_DIR or not (Path(REFERENCE_DIR) / REFERENCE_FILE).is_file() or diffusers is None:
    _message = ("SD3 REFERENCE TESTS SKIPPED: " + ("diffusers is not installed (requirements-dev.txt)" if diffusers is None
                else f"the authors' {REFERENCE_FILE} is not in CA_REFERENCE_DIR={REFERENCE_DIR} (scripts/reference_env.sh)"))
    warnings.warn(_message, stacklevel=1)
    print(f"\n*** {_message} ***\n", file=sys.stderr)
    pytest.skip(_message, allow_module_level=True)

CONCEPTS = ["dog", "grass", "sky"]
ATOL = 1e-5
DEPTH = 3


def _reference_module():
    root = Path(REFERENCE_DIR).resolve()
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    import concept_attention.sd3.dit_block as dit_block

    assert Path(dit_block.__file__).resolve().is_relative_to(root), f"dit_block came from {dit_block.__file__}"
    return dit_block


SD3_BLOCK = _reference_module()


def their_model(dm, qk_norm):
    """Their transformer at the tiny model's geometry, with its weights through ComfyUI's diffusers key map."""
    hidden = dm.hidden_size
    model = SD3_BLOCK.CustomSD3Transformer2DModel(
        sample_size=64, patch_size=2, in_channels=16, num_layers=DEPTH, attention_head_dim=64,
        num_attention_heads=dm.num_heads, joint_attention_dim=dm.context_embedder.in_features,
        caption_projection_dim=hidden, pooled_projection_dim=dm.y_embedder.mlp[0].in_features, out_channels=16,
        pos_embed_max_size=dm.pos_embed_max_size, qk_norm="rms_norm" if qk_norm else None).float().eval()
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


def zero_pooled(conditioning):
    return [[c, {**extra, "pooled_output": torch.zeros_like(extra["pooled_output"])}] for c, extra in conditioning]


def their_vectors(model, x, t, context, concepts, pooled):
    """Per block: their concept outputs (second attention call) and the image outputs of their first (joint
    image-text) call and of their second (image-concept) call; and the model's output."""
    calls = []
    processor_class = SD3_BLOCK.CustomJointAttnProcessor2_0
    original = processor_class.__call__

    def recording(self, attn, hidden_states, encoder_hidden_states=None, *args, **kwargs):
        out = original(self, attn, hidden_states, encoder_hidden_states, *args, **kwargs)
        calls.append(out)
        return out

    processor_class.__call__ = recording
    try:
        with torch.no_grad():
            output, _ = model(hidden_states=x, encoder_hidden_states=context, concept_hidden_states=concepts,
                              pooled_projections=pooled, timestep=t, return_dict=False)
    finally:
        processor_class.__call__ = original
    text_calls, concept_calls = calls[0::2], calls[1::2]
    return ([c[2] for c in concept_calls], [c[3] for c in text_calls], [c[3] for c in concept_calls], output)


@pytest.mark.parametrize("qk_norm", [None, "rms"], ids=["sd3", "sd3.5-large"])
def test_sd3_scores_equal_the_authors_code(ca, qk_norm):
    model, clip = tiny_sd3(5, depth=DEPTH, qk_norm=qk_norm), tiny_sd3_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    inputs["positive"], inputs["negative"] = zero_pooled(inputs["positive"]), zero_pooled(inputs["negative"])
    (x, t), kwargs = first_forward_call(model, inputs)
    context, y = kwargs["context"], kwargs["y"]
    dm = model.get_model_object("diffusion_model")
    family = ca.nodes.sd3.SD3Family()
    concepts, _ = ca.nodes.encoding.encode_concepts(clip, CONCEPTS, "first", family)
    reference = their_model(dm, qk_norm)

    concept_vectors, image_vectors, seen_image_vectors, output = their_vectors(reference, x, t, context, concepts, y)
    with torch.no_grad():
        comfy_output = dm(x, t, context=context, y=y)
    conversion = float((output - comfy_output).abs().max())
    print(f"[reference] SD3 ({qk_norm or 'no qk norm'}): model output max |theirs - ComfyUI| = {conversion:.3g}")
    assert conversion < 1e-4, "the weights did not convert: the two models differ before any concept"

    grid = (x.shape[-2] // 2, x.shape[-1] // 2)
    for layer in range(DEPTH):
        theirs = torch.einsum("bkc,bnc->bkn", concept_vectors[layer].float(), image_vectors[layer].float())
        seen = torch.einsum("bkc,bnc->bkn", concept_vectors[layer].float(), seen_image_vectors[layer].float())
        _, maps = ca.nodes.sampler_node.ConceptAttentionSampler.execute(
            model=model, clip=clip, concepts=", ".join(CONCEPTS), layers=str(layer), space="output", softmax=False,
            token_pooling="first", start_step=0, end_step=10000, **inputs).args
        ours = rearrange(maps.maps, "B K h w -> B K (h w)")
        difference = float((theirs - ours).abs().max())
        print(f"[reference] SD3 layer {layer}: max |theirs - ours| = {difference:.3g} (scores up to "
              f"{float(theirs.abs().max()):.3g}); scored against their second call's image outputs instead: "
              f"{float((seen - ours).abs().max()):.3g}")
        assert maps.maps.shape[-2:] == grid
        assert torch.allclose(ours, theirs, rtol=0, atol=ATOL), (layer, difference)
