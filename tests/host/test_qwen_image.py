"""Qwen-Image's own: the concepts reuse the text stream's casts, Segment Image maps each image of a batch on its
own through Wan 2.1's video VAE, concepts align inside Qwen-Image's real chat template, and a prompt's attention
mask leaves the image unchanged. The text encoder is ComfyUI's own: its Qwen2.5 tokenizer and template stripping
around its Qwen2.5 language model at a tiny width, in place of the 7B one (see helpers/models.py). (Its contract,
Qwen-Image-Edit's reference methods included: test_family_contract.py.)"""

import pytest
import torch
from helpers.models import random_wan21_vae, tiny_qwen_image, tiny_qwen_image_clip
from helpers.sampling import casting_each_call, concept_sampler, first_forward_call, ksampler, sampler_inputs
from torch.overrides import TorchFunctionMode


def test_the_concepts_reuse_the_text_streams_casts(ca, monkeypatch):
    """Layers that cast their weight at each call (offloaded, fp8, GGUF; every layer here): the concepts'
    modulation, separate q, k and v projections, output projection and both MLP projections use the cast the
    text's own call made, so they cast as often as in plain sampling."""
    model, clip = tiny_qwen_image(3), tiny_qwen_image_clip()
    dm = model.get_model_object("diffusion_model")
    layer_class = type(dm.transformer_blocks[0].txt_mod[1])
    cast_forward, casts = layer_class.forward_comfy_cast_weights, {}

    def counting(self, *args, **kwargs):
        casts[self] = casts.get(self, 0) + 1
        return cast_forward(self, *args, **kwargs)

    monkeypatch.setattr(layer_class, "forward_comfy_cast_weights", counting)
    reused = [layer for block in dm.transformer_blocks for layer in (
        block.txt_mod[1], block.attn.add_q_proj, block.attn.add_k_proj, block.attn.add_v_proj, block.attn.to_add_out,
        block.txt_mlp.net[0].proj, block.txt_mlp.net[2])]
    inputs = sampler_inputs(clip, 1, 3.5)
    with casting_each_call(model):
        plain_latent = ksampler(model, inputs)
        plain = dict(casts)
        casts.clear()
        latent, maps = concept_sampler(ca, model, clip, **inputs)
    assert all(plain[layer] for layer in reused)
    assert torch.equal(latent["samples"], plain_latent) and maps.steps == (0, 1, 2)
    assert {layer: casts[layer] for layer in reused} == {layer: plain[layer] for layer in reused}


def segment(ca, model, clip, vae, image, noise_level=0.5, noise_samples=2):
    return ca.nodes.segment_node.ConceptAttentionSegmentImage.execute(
        model=model, clip=clip, vae=vae, image=image, concepts="dog, grass", layers="auto", space="output",
        softmax=True, token_pooling="first", noise_level=noise_level, noise_samples=noise_samples, seed=0,
        caption="a dog on grass").args[0]


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
    family = ca.nodes.families.qwen_image.QwenImageFamily()
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
    with pytest.raises(ValueError, match="cannot align the tokens of concept 'dog'.*qwen_image"):
        family.concept_token_indices(clip, "dog", clip.tokenize("dog", return_word_ids=True), 99)


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


def test_the_concepts_modulation_is_the_text_blocks_own_output(ca):
    """No pooled vector enters Qwen-Image's text modulation, so the concepts' is the text's: each block's txt_mod
    output as the block made it, not the layer run again for the concepts (the products that take a txt_mod
    weight, in any kernel: the concept run makes as many as plain sampling)."""
    model, clip = tiny_qwen_image(3), tiny_qwen_image_clip()
    inputs = sampler_inputs(clip, 1, 3.5)
    weights = {id(block.txt_mod[1].weight) for block in model.get_model_object("diffusion_model").transformer_blocks}

    class CountingModulations(TorchFunctionMode):
        count = 0

        def __torch_function__(self, func, types, args=(), kwargs=None):
            if any(id(arg) in weights for arg in args):
                CountingModulations.count += 1
            return func(*args, **(kwargs or {}))

    ksampler(model, inputs)  # loads the model: its weights' moves are not products
    with CountingModulations():
        plain_latent = ksampler(model, inputs)
    plain, CountingModulations.count = CountingModulations.count, 0
    with CountingModulations():
        latent, _ = concept_sampler(ca, model, clip, **inputs)
    assert torch.equal(latent["samples"], plain_latent)
    assert plain and CountingModulations.count == plain
