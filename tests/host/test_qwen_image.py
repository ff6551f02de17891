"""Qwen-Image and Qwen-Image-Edit: the image is untouched, the maps are the paper's equations on Qwen's
separate text projections and RoPE text positions (Edit's reference tokens in the joint attention), every
node runs, and concepts align inside Qwen-Image's real chat template. The text encoder is ComfyUI's own:
its Qwen2.5 tokenizer and template stripping around its Qwen2.5 language model at a tiny width, in place
of the 7B one (see ca_test_nodes)."""

import inspect
import math

import comfy.ldm.qwen_image.model
import pytest
import torch
import torch.nn.functional as F
from ca_test_nodes import first_forward_call, random_wan21_vae, tiny_qwen_image, tiny_qwen_image_clip
from test_generation_unchanged import concept_sampler, sampler_inputs
from test_math import assert_maps_match, attention, heads, linear, merge, rope, run_layers
from test_patch_hygiene import ksampler
from test_planted import planted_latent, run_planted

# Qwen-Image-Edit's ways to place a reference image: "index" (a frame of its own), and from ComfyUI 0.8 on
# 2511's "index_timestep_zero" (its tokens modulated as at t = 0)
REFERENCE_METHODS = ["index"] + (["index_timestep_zero"]
                                 if "timestep_zero_index" in inspect.getsource(comfy.ldm.qwen_image.model) else [])


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("cfg", [1.0, 3.5])
def test_latent_is_bit_identical_to_plain_sampling(ca, batch, cfg):
    model, clip = tiny_qwen_image(3), tiny_qwen_image_clip()
    inputs = sampler_inputs(clip, batch, cfg, size=(8, 12))  # non-square
    reference = ksampler(model, inputs)
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (batch, 3, 4, 6)
    assert maps.steps == (0, 1, 2)
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(batch, 4, 6), atol=1e-5)


def recorded_qwen_call(model, inputs):
    """What the Qwen-Image transformer receives at a plain sampler's first call: x [B, C, frames, H, W], the
    timestep, the context and Edit's reference latents (as the model's latent format scaled them)."""
    args, kwargs = first_forward_call(model, inputs)
    return args[0], args[1], args[2] if len(args) > 2 else kwargs["context"], kwargs.get("ref_latents") or []


def edit_model(seed: int, method: str):
    """A tiny Qwen-Image whose reference method is `method` ("index" is every host's default, and the only
    method before ComfyUI 0.8, which has no setting for it)."""
    return tiny_qwen_image(seed, ref_method=None if method == "index" else method)


def with_reference(inputs: dict, source: torch.Tensor) -> dict:
    """Both prompts carry a reference latent, as ReferenceLatent (or TextEncodeQwenImageEdit) adds it."""
    return {**inputs, **{key: [[c, {**extra, "reference_latents": [source]}] for c, extra in inputs[key]]
                         for key in ("positive", "negative")}}


def source_latent(height: int, width: int) -> torch.Tensor:
    """A source image's latent as Wan 2.1's VAE (Qwen-Image's) encodes it: [B, C, frames, H, W]."""
    return torch.randn(1, 16, 1, height, width, generator=torch.Generator().manual_seed(4))


def rms(x, norm):
    eps = getattr(norm, "eps", None) or 1e-6
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * norm.weight


def qwen_modulation(layer, temb):
    return [c[:, None] for c in linear(layer[1], F.silu(temb)).chunk(6, dim=-1)]


def qwen_qkv(x, mod, projections, norms, n_heads):
    modulated = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[1]) + mod[0]
    q, k, v = (heads(linear(layer, modulated), n_heads) for layer in projections)
    return rms(q, norms[0]), rms(k, norms[1]), v


def qwen_update(x, attn_out, proj, mlp, mod):
    x = x + mod[2] * linear(proj, attn_out)
    h = F.layer_norm(x, x.shape[-1:], eps=1e-6) * (1 + mod[4]) + mod[3]
    return x + mod[5] * linear(mlp.net[2], F.gelu(linear(mlp.net[0].proj, h), approximate="tanh"))


def image_ids(rows, cols, frame):
    """Qwen-Image's RoPE ids of a token grid: (frame, row, column), rows and columns centred."""
    grid_rows, grid_cols = torch.meshgrid(torch.arange(rows), torch.arange(cols), indexing="ij")
    ids = torch.stack([torch.full_like(grid_rows, frame), grid_rows - rows // 2, grid_cols - cols // 2], dim=-1)
    return ids.reshape(-1, 3)


def per_token(modulation_at_t, modulation_at_zero, generated, references):
    """Edit's index_timestep_zero: the generated tokens are modulated at t, the reference tokens at t = 0."""
    return [torch.cat([a.expand(-1, generated, -1), z.expand(-1, references, -1)], dim=1)
            for a, z in zip(modulation_at_t, modulation_at_zero, strict=True)]


def qwen_reference_scores(dm, x, t, context, concept_context, positions, references=(), timestep_zero=False):
    """Per-layer (output, cross-attention) scores [B, K, N], written from the paper and Qwen-Image's layout:
    the text stream's own projections and norms for the concepts, the text modulation (no pooled vector),
    each concept at RoPE position s + p on all three axes. Edit's reference latents follow the generated
    image's tokens (frame k for the k-th): the concepts attend over them too; the scores cover the generated
    image. timestep_zero: the reference tokens' image modulation at t = 0, the text's at t."""
    b, rows, cols = x.shape[0], x.shape[-2] // 2, x.shape[-1] // 2
    generated = rows * cols
    patches = [dm.process_img(x)[0]] + [dm.process_img(reference)[0] for reference in references]
    img = linear(dm.img_in, torch.cat(patches, dim=1))
    txt = linear(dm.txt_in, rms(context, dm.txt_norm))
    concepts = linear(dm.txt_in, rms(concept_context.expand(b, -1, -1), dm.txt_norm))
    temb = dm.time_text_embed(t, img)
    start = max(cols // 2, rows // 2)
    img_ids = [image_ids(rows, cols, 0)] + [image_ids(r.shape[-2] // 2, r.shape[-1] // 2, frame)
                                            for frame, r in enumerate(references, start=1)]
    txt_ids = torch.arange(start, start + txt.shape[1])[:, None].expand(-1, 3)
    ids = torch.cat([txt_ids, *img_ids]).float()[None].expand(b, -1, -1)
    concept_ids = (start + torch.tensor(positions))[:, None].expand(-1, 3).float()[None].expand(b, -1, -1)
    axes, n_txt, scores = list(dm.pe_embedder.axes_dim), txt.shape[1], []
    for block in dm.transformer_blocks:
        a, n = block.attn, block.attn.heads
        img_mod, txt_mod = qwen_modulation(block.img_mod, temb), qwen_modulation(block.txt_mod, temb)
        if timestep_zero:
            at_zero = qwen_modulation(block.img_mod, dm.time_text_embed(t * 0, img))
            img_mod = per_token(img_mod, at_zero, generated, img.shape[1] - generated)
        text_layers, text_norms = (a.add_q_proj, a.add_k_proj, a.add_v_proj), (a.norm_added_q, a.norm_added_k)
        iq, ik, iv = qwen_qkv(img, img_mod, (a.to_q, a.to_k, a.to_v), (a.norm_q, a.norm_k), n)
        tq, tk, tv = qwen_qkv(txt, txt_mod, text_layers, text_norms, n)
        cq, ck, cv = qwen_qkv(concepts, txt_mod, text_layers, text_norms, n)  # the text's modulation
        q = rope(torch.cat([tq, iq], 2), ids, axes, 10000)
        k = rope(torch.cat([tk, ik], 2), ids, axes, 10000)
        cq, ck = rope(cq, concept_ids, axes, 10000), rope(ck, concept_ids, axes, 10000)
        joint = merge(attention(q, k, torch.cat([tv, iv], 2)))
        txt_out, img_out = joint[:, :n_txt], joint[:, n_txt:]
        image_keys = k[:, :, n_txt:]  # the generated image's and the references'
        concept_out = merge(attention(cq, torch.cat([ck, image_keys], 2), torch.cat([cv, iv], 2)))
        cross = (cq @ image_keys[:, :, :generated].transpose(-1, -2) / math.sqrt(cq.shape[-1])).mean(dim=1)
        scores.append((concept_out @ img_out[:, :generated].transpose(1, 2), cross))
        img = qwen_update(img, img_out, a.to_out[0], block.img_mlp, img_mod)
        txt = qwen_update(txt, txt_out, a.to_add_out, block.txt_mlp, txt_mod)
        concepts = qwen_update(concepts, concept_out, a.to_add_out, block.txt_mlp, txt_mod)
    return scores


def test_scores_match_the_equations_with_text_positions(ca):
    model, clip = tiny_qwen_image(5), tiny_qwen_image_clip()
    inputs = {**sampler_inputs(clip, 1, 1.0), "steps": 1}
    x, t, context, _ = recorded_qwen_call(model, inputs)
    family = ca.nodes.qwen_image.QwenImageFamily()
    concept_context, positions = ca.nodes.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    assert positions == [0, 0, 0]  # each concept's own tokens open its template-stripped output
    dm = model.get_model_object("diffusion_model")
    rows, cols = x.shape[-2] // 2, x.shape[-1] // 2
    with torch.no_grad():
        expected = qwen_reference_scores(dm, x, t, context, concept_context, positions)
        at_origin = qwen_reference_scores(dm, x, t, context, concept_context, [-max(rows // 2, cols // 2)] * 3)
    assert not torch.allclose(expected[-1][0], at_origin[-1][0])  # the positions matter: the test can tell
    assert_maps_match(ca, model, clip, inputs, expected, (rows, cols))


@pytest.mark.parametrize("method", REFERENCE_METHODS)
def test_edit_scores_match_the_equations_with_the_reference_tokens(ca, method):
    """Qwen-Image-Edit: the concepts attend over the reference image's tokens too (a grid of another size
    here), and score the generated image's; with index_timestep_zero the text, and so the concepts, keep
    the modulation at t."""
    model, clip = edit_model(5, method), tiny_qwen_image_clip()
    inputs = with_reference({**sampler_inputs(clip, 1, 1.0, size=(8, 12)), "steps": 1}, source_latent(6, 8))
    x, t, context, references = recorded_qwen_call(model, inputs)
    assert len(references) == 1
    family = ca.nodes.qwen_image.QwenImageFamily()
    concept_context, positions = ca.nodes.encoding.encode_concepts(clip, ["dog", "grass", "sky"], "first", family)
    dm = model.get_model_object("diffusion_model")
    timestep_zero = method == "index_timestep_zero"
    with torch.no_grad():
        expected = qwen_reference_scores(dm, x, t, context, concept_context, positions, references, timestep_zero)
        without = qwen_reference_scores(dm, x, t, context, concept_context, positions)
        other_method = qwen_reference_scores(dm, x, t, context, concept_context, positions, references,
                                             not timestep_zero)
    # the reference tokens and the method matter: the test can tell
    assert not torch.allclose(expected[-1][0], without[-1][0], rtol=1e-3, atol=1e-3)
    assert not torch.allclose(expected[-1][0], other_method[-1][0], rtol=1e-3, atol=1e-3)
    assert_maps_match(ca, model, clip, inputs, expected, (4, 6))


def test_the_concepts_reuse_the_text_streams_casts(ca, monkeypatch):
    """Layers that cast their weight at each call (offloaded, fp8, GGUF; every layer here): the concepts'
    modulation, output projection and both MLP projections use the cast the text's own call made, so they
    cast as often as in plain sampling. (The separate q/k/v projections are cast again for the concepts.)"""
    model, clip = tiny_qwen_image(3), tiny_qwen_image_clip()
    dm = model.get_model_object("diffusion_model")
    for module in dm.modules():
        if hasattr(module, "comfy_cast_weights"):
            module.comfy_cast_weights = True  # as ComfyUI sets it on an offloaded layer
    layer_class = type(dm.transformer_blocks[0].txt_mod[1])
    cast_forward, casts = layer_class.forward_comfy_cast_weights, {}

    def counting(self, *args, **kwargs):
        casts[self] = casts.get(self, 0) + 1
        return cast_forward(self, *args, **kwargs)

    monkeypatch.setattr(layer_class, "forward_comfy_cast_weights", counting)
    reused = [layer for block in dm.transformer_blocks for layer in (
        block.txt_mod[1], block.attn.to_add_out, block.txt_mlp.net[0].proj, block.txt_mlp.net[2])]
    inputs = sampler_inputs(clip, 1, 3.5)
    plain_latent = ksampler(model, inputs)
    plain = dict(casts)
    casts.clear()
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], plain_latent) and maps.steps == (0, 1, 2)
    assert {layer: casts[layer] for layer in reused} == {layer: plain[layer] for layer in reused}


def test_auto_layers_are_the_last_four_blocks(ca):
    model, clip = tiny_qwen_image(3, depth=6), tiny_qwen_image_clip()
    _, maps = run_layers(ca, model, clip, {**sampler_inputs(clip, 1, 1.0), "steps": 1}, "auto", True)
    assert maps.layers == (2, 3, 4, 5)


def segment(ca, model, clip, vae, image, noise_level=0.5, noise_samples=2):
    return ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=vae, image=image, concepts="dog, grass", layers="auto", space="output",
        softmax=True, token_pooling="first", noise_level=noise_level, noise_samples=noise_samples, seed=0,
        caption="a dog on grass").args[0]


def test_segment_image_runs_on_qwen_image(ca):
    """Through Qwen-Image's own VAE (Wan 2.1's), whose latents are [B, C, frames, H, W]."""
    maps = segment(ca, tiny_qwen_image(3), tiny_qwen_image_clip(), random_wan21_vae(), torch.rand(1, 48, 80, 3))
    assert maps.maps.shape == (1, 2, 3, 5) and maps.image_size == (48, 80) and maps.token_pixels == 16
    assert torch.isfinite(maps.maps).all()
    assert torch.allclose(maps.maps.sum(dim=1), torch.ones(1, 3, 5), atol=1e-5)


def test_segment_image_maps_each_image_of_a_batch_on_its_own(ca):
    """Wan 2.1's VAE reads a batch of images as the frames of one video; each image is its own latent, and
    its maps are those it gets alone (no noise: the maps do not depend on the draw)."""
    model, clip, vae = tiny_qwen_image(3), tiny_qwen_image_clip(), random_wan21_vae()
    images = torch.rand(2, 48, 80, 3, generator=torch.Generator().manual_seed(5))
    both = segment(ca, model, clip, vae, images, noise_level=0.0, noise_samples=1)
    assert both.maps.shape == (2, 2, 3, 5)
    for index in range(2):
        alone = segment(ca, model, clip, vae, images[index:index + 1], noise_level=0.0, noise_samples=1)
        assert torch.allclose(both.maps[index], alone.maps[0], atol=1e-5)
    assert not torch.allclose(both.maps[0], both.maps[1], atol=1e-3)


def test_concepts_align_inside_qwen_images_chat_template(ca):
    """The encoder drops the template's head (system prompt, '<|im_start|>user\\n'); a concept's own tokens
    then open the output, before the template's tail '<|im_end|>\\n<|im_start|>assistant\\n'."""
    family = ca.nodes.qwen_image.QwenImageFamily()
    clip = tiny_qwen_image_clip()
    tokens = clip.tokenize("traffic light", return_word_ids=True)
    ids = [t[0] for t in tokens["qwen25_7b"][0]]
    states = clip.encode_from_tokens(clip.tokenize("traffic light"))
    own = family.concept_token_indices(clip, "traffic light", tokens, states.shape[1])
    head = len(ids) - states.shape[1]
    assert head > 20 and ids[head - 3:head] == [151644, 872, 198]  # the head ends with '<|im_start|>user\n'
    assert own == [0, 1]  # 'traffic', ' light'
    assert ids[head + len(own)] == 151645  # then '<|im_end|>'
    assert clip.tokenizer.qwen25_7b.tokenizer.decode(ids[head:head + len(own)]) == "traffic light"
    mean, _ = ca.nodes.encoding.encode_concepts(clip, ["traffic light"], "mean", family)
    assert torch.allclose(mean[0, 0], states[0, own].mean(dim=0))
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'dog'.*qwen_image"):
        family.concept_token_indices(clip, "dog", clip.tokenize("dog", return_word_ids=True), 99)


def test_edit_reference_tokens_are_left_out_of_the_maps(ca):
    """Qwen-Image-Edit: the reference image's tokens follow the generated image's; the maps cover the
    generated grid, and the planted answer holds with an all-'left' reference beside it."""
    latent = planted_latent(8, 12, 3)
    # a reference latent as Qwen-Image's VAE (Wan 2.1's) encodes it: [B, C, frames, H, W]
    maps = run_planted(ca, latent, reference=planted_latent(8, 8, 4).unsqueeze(2), family="qwen_image")
    assert maps.maps.shape == (1, 2, 4, 6)
    mask = ca.ca_core.masks.concept_mask(maps.pixel_maps(), [0], method="argmax")
    expected = torch.zeros_like(mask)
    expected[..., : 3 * 16] = 1.0
    assert torch.equal(mask, expected)


@pytest.mark.parametrize("batch", [1, 2])
@pytest.mark.parametrize("method", REFERENCE_METHODS)
def test_edit_reference_latent_leaves_the_image_unchanged(ca, method, batch):
    """A ReferenceLatent on both prompts (how Qwen-Image-Edit graphs pass the source image), at cfg > 1: the
    latent is plain sampling's, and the maps cover the generated grid only."""
    model, clip = edit_model(3, method), tiny_qwen_image_clip()
    inputs = with_reference(sampler_inputs(clip, batch, 3.5, size=(8, 12)), source_latent(8, 8))
    reference = ksampler(model, inputs)
    assert not torch.equal(reference, ksampler(model, sampler_inputs(clip, batch, 3.5, size=(8, 12))))
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert maps.maps.shape == (batch, 3, 4, 6) and torch.isfinite(maps.maps).all()


def test_a_prompts_attention_mask_leaves_the_image_unchanged(ca):
    """A prompt with masked-out positions (padding): ComfyUI 0.33 on hands its mask to the joint attention,
    which the stream passes through as it is."""
    model, clip = tiny_qwen_image(3), tiny_qwen_image_clip()
    inputs = sampler_inputs(clip, 1, 3.5)
    (cond, extra), = inputs["positive"]
    padded = torch.cat([cond, torch.randn(1, 3, cond.shape[-1], generator=torch.Generator().manual_seed(6))], dim=1)
    mask = torch.ones(1, padded.shape[1], dtype=torch.long)
    mask[:, -3:] = 0
    inputs["positive"] = [[padded, {**extra, "attention_mask": mask}]]
    reference = ksampler(model, inputs)
    if first_forward_call(model, inputs)[1].get("attention_mask") is not None:  # the host passes the mask on
        unmasked = {**inputs, "positive": [[padded, extra]]}
        assert not torch.equal(reference, ksampler(model, unmasked))  # and it matters: the test can tell
    latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], reference)
    assert torch.isfinite(maps.maps).all()


def test_qwen_image_is_its_own_family(ca):
    model = tiny_qwen_image(3)
    family = ca.nodes.families.family_for(model)
    assert isinstance(family, ca.nodes.qwen_image.QwenImageFamily)
