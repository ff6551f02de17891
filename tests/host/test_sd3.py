"""SD3 / SD3.5: the image is untouched, the maps are the paper's equations on MMDiT's context blocks (the
last one pre_only), every node runs, and concepts align with SD3's real CLIP-L/G and T5 tokenizers."""

import math

import comfy.ldm.modules.diffusionmodules.mmdit as mmdit
import pytest
import torch
import torch.nn.functional as F
from ca_test_nodes import first_forward_call, random_vae, tiny_sd3, tiny_sd3_clip
from test_generation_unchanged import concept_sampler, sampler_inputs
from test_math import assert_maps_match, attention, heads, linear, merge, run_layers
from test_patch_hygiene import ksampler

VARIANTS = {  # SD3 medium's geometry, SD3.5 large's q/k RMSNorm, SD3.5 medium's extra image self-attention
    "sd3": {}, "sd3.5-large": {"qk_norm": "rms"}, "sd3.5-medium": {"qk_norm": "rms", "x_block_self_attn_layers": (0, 1)},
}


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_latent_is_bit_identical_to_plain_sampling(ca, variant, batch, cfg):
    model, clip = tiny_sd3(3, **VARIANTS[variant]), tiny_sd3_clip()
    inputs = sampler_inputs(clip, batch, cfg, size=(8, 12))  # non-square
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (batch, 3, 4, 6)
    assert maps.steps == (0, 1, 2)
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch, 4, 6), atol=1e-5)


def recorded_sd3_call(model, inputs):
    """What MMDiT's forward receives at a plain sampler's first call: (x, timestep, context, y)."""
    args, kwargs = first_forward_call(model, inputs)
    return args[0], args[1], kwargs["context"], kwargs["y"]


def adaln(block, vector):
    """A DismantledBlock's modulation rows [B, 1, C]: (shift, scale[, gate, shift, scale, gate])."""
    chunks = linear(block.adaLN_modulation[1], F.silu(vector))
    return [c[:, None] for c in chunks.chunk(2 if block.pre_only else 6, dim=-1)]


def sd3_qkv(block, x, mod, n_heads):
    modulated = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(t, n_heads) for t in linear(block.attn.qkv, modulated).chunk(3, dim=-1))

    def norm(t, layer):  # SD3.5's per-head RMSNorm with a learnt scale; identity on SD3
        if isinstance(layer, torch.nn.Identity):
            return t
        return t * torch.rsqrt(t.pow(2).mean(-1, keepdim=True) + layer.eps) * layer.weight

    return norm(q, block.attn.ln_q), norm(k, block.attn.ln_k), v


def sd3_update(block, x, attn_out, mod):
    x = x + mod[2] * linear(block.attn.proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    return x + mod[5] * linear(block.mlp.fc2, F.gelu(linear(block.mlp.fc1, h), approximate="tanh"))


def sd3_reference_scores(dm, x, t, context, y, concept_context):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and MMDiT's layout:
    the context block's weights and adaLN for the concepts, whose vector is t_embedder(t) + y_embedder(0)."""
    b = x.shape[0]
    img = dm.x_embedder(x) + dm.cropped_pos_embed(x.shape[-2:])
    txt = linear(dm.context_embedder, context)
    concepts = linear(dm.context_embedder, concept_context.expand(b, -1, -1))
    time = dm.t_embedder(t, dtype=x.dtype)
    vec, concept_vec = time + dm.y_embedder(y), time + dm.y_embedder(torch.zeros_like(y))
    scores = []
    for joint in dm.joint_blocks:
        text_block, image_block, n = joint.context_block, joint.x_block, image_block_heads(joint)
        img_mod, txt_mod, concept_mod = adaln(image_block, vec), adaln(text_block, vec), adaln(text_block, concept_vec)
        iq, ik, iv = sd3_qkv(image_block, img, img_mod, n)
        tq, tk, tv = sd3_qkv(text_block, txt, txt_mod, n)
        cq, ck, cv = sd3_qkv(text_block, concepts, concept_mod, n)
        joint_out = merge(attention(torch.cat([tq, iq], 2), torch.cat([tk, ik], 2), torch.cat([tv, iv], 2)))
        txt_out, img_out = joint_out[:, :txt.shape[1]], joint_out[:, txt.shape[1]:]
        concept_out = merge(attention(cq, torch.cat([ck, ik], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ ik.transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out.transpose(1, 2), cross))
        img = sd3_update(image_block, img, img_out, img_mod)
        if not text_block.pre_only:  # the last context block ends the text stream: no update, for concepts too
            txt = sd3_update(text_block, txt, txt_out, txt_mod)
            concepts = sd3_update(text_block, concepts, concept_out, concept_mod)
    return scores


def image_block_heads(joint):
    return joint.x_block.attn.num_heads


@pytest.mark.parametrize("variant", ["sd3", "sd3.5-large"])
def test_scores_match_the_equations_on_the_context_blocks(ca, variant):
    """Every layer, the pre_only last one included, and the softmax mean."""
    model, clip = tiny_sd3(5, **VARIANTS[variant]), tiny_sd3_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    x, t, context, y = recorded_sd3_call(model, inputs)
    family = ca.nodes.sd3.SD3Family()
    concept_context, _ = ca.nodes.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    dm = model.get_model_object("diffusion_model")
    assert dm.joint_blocks[-1].context_block.pre_only
    with torch.no_grad():
        expected = sd3_reference_scores(dm, x, t, context, y, concept_context)
    assert t.item() > 1.0  # SD3's timestep is 1000 sigma: the stream took it through the model sampling
    assert_maps_match(ca, model, clip, inputs, expected, (x.shape[-2] // 2, x.shape[-1] // 2))


def test_the_concepts_follow_the_blocks_before_the_last(ca):
    """The last (pre_only) layer's scores depend on the concepts' updates in the blocks before it."""
    model, clip = tiny_sd3(5), tiny_sd3_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    _, last = run_layers(ca, model, clip, inputs, "2", softmax=False)
    _, first = run_layers(ca, model, clip, inputs, "0", softmax=False)
    assert torch.isfinite(last.maps).all() and not torch.allclose(last.maps, first.maps)


def test_auto_layers_are_every_joint_block_as_the_papers_sd3_code(ca):
    model, clip = tiny_sd3(3, depth=6), tiny_sd3_clip()
    _, maps = run_layers(ca, model, clip, {**sampler_inputs(clip, 1, 1.0), "steps": 1}, "auto", True)
    assert maps.layers == (0, 1, 2, 3, 4, 5)


def test_segment_image_runs_on_sd3(ca):
    model, clip = tiny_sd3(3), tiny_sd3_clip()
    (maps,) = ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=random_vae(), image=torch.rand(1, 48, 80, 3), concepts="dog, grass",
        layers="auto", space="output", softmax=True, token_pooling="first", noise_level=0.5, noise_samples=2,
        seed=0, caption="a dog on grass").args
    assert maps.maps.shape == (1, 2, 3, 5) and maps.image_size == (48, 80) and maps.token_pixels == 16
    assert torch.isfinite(maps.maps).all()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(1, 3, 5), atol=1e-5)


def test_concepts_take_their_clip_tokens_from_sd3s_real_tokenizers(ca):
    """SD3's context is CLIP-L/G's 77 positions (start token first), then T5's: a concept's own tokens are its
    CLIP word pieces after the start token; with only T5 loaded, its T5 pieces."""
    family = ca.nodes.sd3.SD3Family()
    clip = tiny_sd3_clip()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    assert states.shape[1] == len(tokens["l"][0]) == 77  # no T5 loaded: CLIP-L/G alone
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    assert own == [1, 2]  # "traffic", "light": CLIP reads each as one piece, after its start token
    assert tokens["l"][0][0][0] == 49406 and tokens["l"][0][3][0] == 49407  # start, then the end token
    first, _ = ca.nodes.encoding.encode_concepts(clip, ["traffic light"], "first", family)
    assert torch.allclose(first[0, 0], states[0, 1])

    # CLIP-L/G and T5 both loaded: the CLIP positions come first, so the indices are the same
    clip.cond_stage_model.t5xxl = tiny_sd3_clip(t5_only=True).cond_stage_model.t5xxl
    both = 77 + len(tokens["t5xxl"][0])
    assert family.concept_token_indices(clip, "traffic light", tokens, both) == [1, 2]

    t5_clip = tiny_sd3_clip(t5_only=True)
    t5_tokens = t5_clip.tokenize("traffic light", return_word_ids=True)
    t5_states = t5_clip.encode_from_tokens(t5_clip.tokenize("traffic light"))
    t5_own = family.concept_token_indices(t5_clip, "traffic light", t5_tokens, t5_states.shape[1])
    pieces = t5_tokens["t5xxl"][0]
    assert t5_own == [i for i, piece in enumerate(pieces) if piece[2] > 0] and len(t5_own) >= 2 and t5_own[0] == 0
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'dog'.*TripleCLIPLoader"):
        family.concept_token_indices(clip, "dog", clip.tokenize("dog", return_word_ids=True), 99)


def test_sd3_runs_with_a_t5_only_text_encoder(ca):
    model, clip = tiny_sd3(3, context_dim=32, pooled_dim=2048), tiny_sd3_clip(t5_only=True)
    inputs = sampler_inputs(clip, 1, 3.5)
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference) and torch.isfinite(maps.maps).all()


def test_sd3_is_its_own_family(ca):
    model = tiny_sd3(3)
    family = ca.nodes.families.family_for(model)
    assert isinstance(family, ca.nodes.sd3.SD3Family) and family.hook == "APPLY_MODEL"
    assert isinstance(model.get_model_object("diffusion_model"), mmdit.OpenAISignatureMMDITWrapper)
