"""Reference equivalence on CogVideoX: the paper authors' CogVideoX code (helblazer811/ConceptAttention,
concept_attention/cogvideox/dit.py and dit_block.py, exported by scripts/third_party_env.sh reference into
$CA_REFERENCE_DIR; built on diffusers) and the Concept Attention Sampler give the same per-layer concept
outputs and scores, on the same tiny weights and the same model inputs, in fp32: the outputs to 1e-5, the
scores (dot products up to ~90 here) to 1e-5 of their magnitude, and each layer's map (their softmax over
the concepts) to 1e-5.

Their ModifiedCogVideoXTransformer3DModel is built at the tiny ComfyUI model's geometry (CogVideoX 1.0 5B-style:
RoPE, one latent frame per token frame; and 1.5: two) and gets its weights by renaming ComfyUI's keys to
diffusers' (q/k/v/attn_out -> attn1.to_q/k/v/to_out.0, ff_proj/ff_out -> ff.net.0.proj/ff.net.2, the time
and ofs embeddings' linear layers). The two models' noise predictions are first checked equal, which proves
the conversion. It runs on the inputs of the sampler's first model call, with ComfyUI's RoPE table (diffusers'
pipeline makes it outside the transformer) and our encoded concepts as its concept_hidden_states (through its
patch embedding's text_proj, as its forward does).

Compared, per block (layers=str(i), softmax=False, one step): the concepts' attention outputs before the
output projection (their concept_output_vectors against ours), and the output-space scores (their
concept_attention_maps, concept outputs . the joint attention's video outputs, against the sampler's maps).

Where their code departs from the paper (not compared, or set up so that the paper's quantities meet):
- their cross-attention map is the video queries . concept keys, unscaled, averaged over heads
  (dit_block.py:107-117); the paper's (and ours) is the concept queries . video keys / sqrt(d). Not compared;
- their pipeline pads the K concepts with zeros to 226 tokens (pipeline.py:85): the padding, embedded to
  text_proj's bias, joins the concept attention as keys and values. The paper attends over the K concepts and
  the video; so do we, and their model here gets the K concepts alone. A negative check gives their model the
  padded concepts: the scores must part;
- their concept encoding (T5 at 16 tokens, the first token of each concept: pipeline.py:73-82) is not compared;
- on CogVideoX 2B (sincos positions) their patch embedding adds a positional embedding sized for 226 text
  tokens, which fits only the padded concepts: the 2B is left to tests/host/test_cogvideox.py's equations;
- their example (examples/generate_video_cogvideox.py) averages blocks 0-29 of CogVideoX-5B's 42.
"""


import comfy.supported_models
import pytest
import torch
from einops import rearrange
from helpers.equations import layer_maps_and_outputs
from helpers.models import randomise, tiny_cogvideox, tiny_cogvideox_clip
from helpers.reference import reference_dir_or_skip, reference_module
from helpers.sampling import first_forward_call, sampler_inputs

try:
    import diffusers  # requirements-dev.txt
except ImportError:
    diffusers = None
if not hasattr(comfy.supported_models, "CogVideoX_T2V"):
    pytest.skip("CogVideoX reference tests skipped: this ComfyUI has no CogVideoX (comfy.ldm.cogvideo, 0.33 on)",
                allow_module_level=True)
REFERENCE_DIR = reference_dir_or_skip(
    "COGVIDEOX", ("concept_attention/cogvideox/dit.py", "concept_attention/cogvideox/dit_block.py"),
    None if diffusers else "diffusers is not installed (requirements-dev.txt)")

CONCEPTS = ["dog", "grass", "sky"]
ATOL = 1e-5
WEIGHT_STD = 0.03  # smaller weights than the other tests': scores of tens, not hundreds, which fp32 holds to 1e-5
DEPTH = 3
VERSIONS = {"1.0-5b": (3, 8, 12), "1.5": (4, 8, 12)}  # latent (frames, rows, columns): 1.5's in whole pairs


COGVIDEOX_DIT = reference_module(REFERENCE_DIR, "concept_attention.cogvideox.dit")

# ComfyUI's CogVideoX key pieces -> diffusers' (the rest are named alike)
RENAMES = (("blocks.", "transformer_blocks."), (".q.", ".attn1.to_q."), (".k.", ".attn1.to_k."),
           (".v.", ".attn1.to_v."), (".norm_q.", ".attn1.norm_q."), (".norm_k.", ".attn1.norm_k."),
           (".attn_out.", ".attn1.to_out.0."), (".ff_proj.", ".ff.net.0.proj."), (".ff_out.", ".ff.net.2."),
           ("time_embedding_linear_", "time_embedding.linear_"), ("ofs_embedding_linear_", "ofs_embedding.linear_"))


def diffusers_key(key: str) -> str:
    for ours, theirs in RENAMES:
        key = key.replace(ours, theirs)
    return key


def their_model(dm) -> torch.nn.Module:
    """Their transformer at the tiny model's geometry, with its weights renamed from ComfyUI's."""
    embed = dm.patch_embed
    model = COGVIDEOX_DIT.ModifiedCogVideoXTransformer3DModel(
        num_attention_heads=dm.num_attention_heads, attention_head_dim=dm.attention_head_dim,
        in_channels=dm.in_channels, out_channels=dm.out_channels, time_embed_dim=dm.time_embedding_linear_1.out_features,
        text_embed_dim=embed.text_proj.in_features, num_layers=len(dm.blocks), sample_width=embed.sample_width,
        sample_height=embed.sample_height, sample_frames=embed.sample_frames, patch_size=dm.patch_size,
        patch_size_t=dm.patch_size_t, max_text_seq_length=dm.max_text_seq_length,
        use_rotary_positional_embeddings=dm.use_rotary_positional_embeddings).float().eval()
    state = {diffusers_key(key): value for key, value in dm.state_dict().items()}
    missing, unexpected = model.load_state_dict(state, strict=False)
    assert not missing and not unexpected, (missing, unexpected)
    return model


def their_vectors(model, dm, x, t, context, concepts) -> dict:
    """Their per-block concept outputs and scores [B, layers, K, ...], and their noise prediction [B, C, T, H, W]."""
    p, p_t = dm.patch_size, dm.patch_size_t or 1
    rope = dm._get_rotary_emb(x.shape[-2] // p, x.shape[-1] // p, x.shape[-3] // p_t, x.device)
    with torch.no_grad():
        output, recorded = model(hidden_states=x.permute(0, 2, 1, 3, 4), encoder_hidden_states=context,
                                 timestep=t, concept_hidden_states=concepts, image_rotary_emb=rope, return_dict=False)
    return {"concepts": recorded["concept_output_vectors"], "scores": recorded["concept_attention_maps"],
            "output": output.permute(0, 2, 1, 3, 4)}


def our_layer(ca, model, clip, inputs, layer: int, monkeypatch) -> tuple[torch.Tensor, torch.Tensor]:
    """The sampler's raw score maps of one block as [B, K, N], and that block's concept attention outputs."""
    maps, outputs = layer_maps_and_outputs(ca, model, clip, inputs, layer, monkeypatch, CONCEPTS)
    return rearrange(maps.maps, "(B F) K h w -> B K (F h w)", F=maps.frames), outputs


def max_difference(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).abs().max())


@pytest.mark.parametrize("version", list(VERSIONS))
def test_cogvideox_scores_equal_the_authors_code(ca, version, monkeypatch):
    model, clip = tiny_cogvideox(5, version, depth=DEPTH), tiny_cogvideox_clip()
    dm = model.get_model_object("diffusion_model")
    randomise(dm, 5, std=WEIGHT_STD)
    reference = their_model(dm)
    family = ca.nodes.families.cogvideox.CogVideoXFamily()
    concepts, _ = ca.nodes.stream.encoding.encode_concepts(clip, CONCEPTS, "first", family)
    inputs = {**sampler_inputs(clip, 1, 1.0, size=VERSIONS[version]), "steps": 1}
    (x, t), kwargs = first_forward_call(model, inputs)
    context = kwargs["context"]
    theirs = their_vectors(reference, dm, x, t, context, concepts)
    with torch.no_grad():
        comfy_output = dm(x, t, context)
    conversion = max_difference(theirs["output"], comfy_output)
    print(f"[reference] {version}: noise prediction max |theirs - ComfyUI| = {conversion:.3g} "
          f"(values up to {float(comfy_output.abs().max()):.3g})")
    assert conversion <= ATOL, "the weights did not convert: the two models differ before any concept"

    for layer in range(DEPTH):
        our_scores, our_concepts = our_layer(ca, model, clip, inputs, layer, monkeypatch)
        their_concepts, their_scores = theirs["concepts"][:, layer], theirs["scores"][:, layer]
        concept_difference = max_difference(their_concepts, our_concepts)
        score_difference = max_difference(their_scores, our_scores)
        print(f"[reference] {version} layer {layer}: concept outputs max |theirs - ours| = {concept_difference:.3g} "
              f"(up to {float(our_concepts.abs().max()):.3g}); scores {score_difference:.3g} (up to "
              f"{float(their_scores.abs().max()):.3g})")
        assert our_concepts.shape == their_concepts.shape and our_scores.shape == their_scores.shape
        assert torch.allclose(our_concepts, their_concepts, rtol=0, atol=ATOL), (layer, concept_difference)
        # the scores reach ~90 here, where fp32's spacing is 7.6e-6: held to 1e-5 of their magnitude
        scale = max(1.0, float(their_scores.abs().max()))
        assert score_difference <= ATOL * scale, (layer, score_difference, scale)
        # the layer's map as users get it (softmax over concepts): within 1e-5 outright
        map_difference = max_difference(their_scores.softmax(dim=1), our_scores.softmax(dim=1))
        assert map_difference <= ATOL, (layer, map_difference)

    # negative check: their pipeline's concepts, padded with zeros to 226 tokens, attend over the padding too
    padded = torch.cat([concepts, concepts.new_zeros(1, dm.max_text_seq_length - len(CONCEPTS), concepts.shape[-1])],
                       dim=1)
    with_padding = their_vectors(reference, dm, x, t, context, padded)
    parted = []
    for layer in range(DEPTH):
        our_scores, _ = our_layer(ca, model, clip, inputs, layer, monkeypatch)
        parted.append(max_difference(with_padding["scores"][:, layer, :len(CONCEPTS)], our_scores))
    print(f"[reference] {version} with their pipeline's 226-token concept padding: {[f'{d:.3g}' for d in parted]}")
    assert min(parted) > 100 * ATOL  # the comparison can fail
