"""Planted models, whose answer is known: image tokens attend only to tokens with the same content, and a concept
equal to a content attends to exactly those tokens; concept 'left' must win exactly the left image tokens.

Every other weight is zero (so every modulation is zero and streams pass through the blocks unchanged), norm
scales aside (q/k four times sharper). A model's contents live in channels that RoPE leaves alone (or turns by a
few hundredths of a radian) for the positions the tests use; each builder says which.
"""

import comfy.model_patcher
import comfy.sample
import comfy.samplers
import torch

from .models import (
    CONTEXT_DIM,
    POOLED_DIM,
    rms_norm_scale,
    tiny_aura_flow,
    tiny_boogu,
    tiny_chroma,
    tiny_cogvideox,
    tiny_ernie,
    tiny_flux,
    tiny_flux2,
    tiny_hidream,
    tiny_hunyuan_image_21,
    tiny_hunyuan_video,
    tiny_hunyuan_video_15,
    tiny_ideogram4,
    tiny_joyimage,
    tiny_krea2,
    tiny_lens,
    tiny_longcat_image,
    tiny_mage_flow,
    tiny_mochi,
    tiny_omnigen2,
    tiny_pixeldit,
    tiny_qwen_image,
    tiny_sd3,
    tiny_z_image,
)


def identity_attention(double_blocks, hidden: int) -> None:
    """Flux-style double blocks whose q, k and v are each token itself, q/k norms four times sharper: a token
    attends to the tokens most like it."""
    eye = torch.eye(hidden)
    for block in double_blocks:
        for attn in (block.img_attn, block.txt_attn):
            attn.qkv.weight.copy_(torch.cat([eye, eye, eye]))
            rms_norm_scale(attn.norm.query_norm).fill_(4.0)
            rms_norm_scale(attn.norm.key_norm).fill_(4.0)


def planted(patcher: comfy.model_patcher.ModelPatcher) -> comfy.model_patcher.ModelPatcher:
    """A Flux-style model (Flux.1, Chroma, Flux.2) planted: contents live in head 0's first four channels, which
    RoPE leaves alone for every token at index 0 (Flux.2's text positions are on its last axis); all modulations
    are zero (Chroma's approximator too). Latent (or patch) channel c is feature c."""
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        dm.img_in.weight.copy_(torch.eye(hidden, dm.img_in.weight.shape[1]))
        dm.txt_in.weight.copy_(torch.eye(hidden, dm.txt_in.weight.shape[1]))
        identity_attention(dm.double_blocks, hidden)
    return patcher


def planted_flux(guidance_embed: bool = False) -> comfy.model_patcher.ModelPatcher:
    return planted(tiny_flux(0, guidance_embed=guidance_embed, depth=2, single=1))


def planted_longcat_image() -> comfy.model_patcher.ModelPatcher:
    return planted(tiny_longcat_image(0, depth=2, single=1))


def planted_chroma() -> comfy.model_patcher.ModelPatcher:
    return planted(tiny_chroma(0, depth=2))


def planted_flux2() -> comfy.model_patcher.ModelPatcher:
    return planted(tiny_flux2(0, depth=2))


def planted_chroma_radiance() -> comfy.model_patcher.ModelPatcher:
    """planted() for Chroma Radiance, whose 'latent' is the image: a 16-pixel patch's mean of pixel channel 0 is
    e0 - e1, of pixel channel 1 e2 - e3 (planted_pixels draws 'left' in channel 0, 'right' in channel 1)."""
    patcher = tiny_chroma(0, radiance=True, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        mean = 1.0 / dm.img_in_patch.weight[0, 0].numel()
        weight = dm.img_in_patch.weight
        weight[0, 0], weight[1, 0], weight[2, 1], weight[3, 1] = mean, -mean, mean, -mean
        dm.txt_in.weight.copy_(torch.eye(hidden, dm.txt_in.weight.shape[1]))
        identity_attention(dm.double_blocks, hidden)
    return patcher


def planted_sd3(**variant) -> comfy.model_patcher.ModelPatcher:
    """planted() for SD3 (and SD3.5's variants): patches embedded so a token's four cells of latent channel 0 are
    its first four channels, identity q/k/v (q four times sharper; SD3.5's q/k RMSNorms at unit scale) and no
    position embedding."""
    patcher = tiny_sd3(0, depth=2, context_dim=CONTEXT_DIM, pooled_dim=POOLED_DIM, **variant)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        dm.pos_embed.zero_()
        for cell in range(4):
            dm.x_embedder.proj.weight[cell, 0, cell // 2, cell % 2] = 1.0
        dm.context_embedder.weight.copy_(torch.eye(hidden, CONTEXT_DIM))
        eye = torch.eye(hidden)
        for block in dm.joint_blocks:
            for stream in (block.context_block, block.x_block):
                stream.attn.qkv.weight.copy_(torch.cat([4.0 * eye, eye, eye]))
                for norm in (stream.attn.ln_q, stream.attn.ln_k):
                    if getattr(norm, "weight", None) is not None:
                        norm.weight.fill_(1.0)
    return patcher


def planted_pixeldit() -> comfy.model_patcher.ModelPatcher:
    """PixelDiT planted, its 'latent' the image (planted_pixels): a 16-pixel patch's mean of pixel channel 0 less
    that of channel 1 is e12 - e13 ('left'), the opposite 'right'; the concepts' projection maps 'left' (c0 - c1)
    there too, 'right' the opposite. Head 0's channels 12-15 are the slowest RoPE pairs (image positions 0 to 16
    turn them by at most 0.016 rad, the text's by 0.001 rad a position). Identity q/k/v for text and image, q/k
    norms four times sharper, unit RMSNorm scales, every modulation zero."""
    patcher = tiny_pixeldit(0, depth=2)
    dm = patcher.model.diffusion_model
    eye = torch.eye(dm.hidden_size)
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight, cell = dm.s_embedder.proj.weight, dm.patch_size ** 2
        mean = 1.0 / cell
        weight[12, :cell], weight[12, cell:2 * cell] = mean, -mean
        weight[13, :cell], weight[13, cell:2 * cell] = -mean, mean
        opposite_contents(dm.y_embedder.proj.weight, 12)
        dm.y_embedder.norm.weight.fill_(1.0)
        for block in dm.patch_blocks:
            attn = block.attn
            for layer in (attn.qkv_x, attn.qkv_y):
                layer.weight.copy_(torch.cat([eye, eye, eye]))
            for norm in (attn.q_norm_x, attn.k_norm_x, attn.q_norm_y, attn.k_norm_y):
                norm.weight.fill_(4.0)
            for norm in (block.norm_x1, block.norm_y1, block.norm_x2, block.norm_y2):
                norm.weight.fill_(1.0)
    return patcher


def planted_aura_flow() -> comfy.model_patcher.ModelPatcher:
    """planted() for AuraFlow: patches embedded so a token's four cells of latent channel 0 are its first four
    channels (its patch features run channel, cell row, cell column), identity q/k/v for text and image, no
    position embedding or register tokens. Its q/k norms are LayerNorms without a scale: each head's q and k
    come out at unit variance whatever the weights."""
    patcher = tiny_aura_flow(0, depth=2, single=1)
    dm = patcher.model.diffusion_model
    hidden = dm.init_x_linear.weight.shape[0]
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        dm.init_x_linear.weight.copy_(torch.eye(hidden, dm.init_x_linear.weight.shape[1]))
        dm.cond_seq_linear.weight.copy_(torch.eye(hidden, CONTEXT_DIM))
        eye = torch.eye(hidden)
        for block in dm.double_layers:
            attn = block.attn
            for layer in (attn.w1q, attn.w1k, attn.w1v, attn.w2q, attn.w2k, attn.w2v):
                layer.weight.copy_(eye)
    return patcher


def identity_qwen_attention(blocks, hidden: int) -> None:
    """Qwen-Image-style blocks whose separate q, k and v layers are each token itself, q/k norms four times sharper."""
    eye = torch.eye(hidden)
    for block in blocks:
        attn = block.attn
        for layer in (attn.to_q, attn.to_k, attn.to_v, attn.add_q_proj, attn.add_k_proj, attn.add_v_proj):
            layer.weight.copy_(eye)
        for norm in (attn.norm_q, attn.norm_k, attn.norm_added_q, attn.norm_added_k):
            if getattr(norm, "weight", None) is not None:
                norm.weight.fill_(4.0)


def planted_qwen_image(ref_method: str | None = None) -> comfy.model_patcher.ModelPatcher:
    """planted() for Qwen-Image (and Edit, with its reference method). Its text tokens, and so the concepts, sit
    at RoPE positions s + j on every axis, which would turn a content in a fast-rotating channel pair; the contents
    therefore live in head 0's channels 2-3, the slowest pair of the frame axis (image tokens at frame 0: no
    rotation; a concept at position p turns by 0.01 p rad). 'left' is e2 - e3 and 'right' e3 - e2: opposite, so
    each concept attends to its own tokens."""
    patcher = tiny_qwen_image(0, depth=2, ref_method=ref_method)
    dm = patcher.model.diffusion_model
    hidden = dm.inner_dim
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        # a token's four cells of latent channel 0 are its features 0-3 (process_img: channel, row, column)
        dm.img_in.weight[2, 0], dm.img_in.weight[2, 2] = 1.0, -1.0
        dm.img_in.weight[3, 1], dm.img_in.weight[3, 3] = 1.0, -1.0
        opposite_contents(dm.txt_in.weight, 2)  # concept 'left' (c0 - c1) -> e2 - e3
        dm.txt_norm.weight.fill_(1.0)
        identity_qwen_attention(dm.transformer_blocks, hidden)
    return patcher


def planted_mage_flow() -> comfy.model_patcher.ModelPatcher:
    """planted_qwen_image() for Mage-Flow, whose one-cell tokens carry latent channels 0-3 as planted_cells draws them:
    'left' (c0 - c1) is e2 - e3, 'right' (c2 - c3) the opposite, in the frame axis's slowest pair (the text sits at
    position 0 and the image at frame 0: no rotation there)."""
    patcher = tiny_mage_flow(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.inner_dim
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        opposite_contents(dm.img_in.weight, 2)
        opposite_contents(dm.txt_in.weight, 2)
        dm.txt_norm.weight.fill_(1.0)
        identity_qwen_attention(dm.transformer_blocks, hidden)
    return patcher


def planted_lens() -> comfy.model_patcher.ModelPatcher:
    """planted_mage_flow() for Lens: one-cell tokens, 'left' (c0 - c1) e2 - e3 and 'right' the opposite, in the frame
    axis's slowest pair (the image at frame 0 is not turned there; the concepts at position s + p turn by 0.01 rad a
    position); identity fused q/k/v, q/k norms four times sharper, unit RMSNorm scales (the prompt's per layer and the
    blocks'), every modulation zero."""
    patcher = tiny_lens(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.inner_dim
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        opposite_contents(dm.img_in.weight, 2)
        opposite_contents(dm.txt_in.weight, 2)
        for norm in dm.txt_norm:
            norm.weight.fill_(1.0)
        eye = torch.eye(hidden)
        for block in dm.transformer_blocks:
            attn = block.attn
            for layer in (attn.img_qkv, attn.txt_qkv):
                layer.weight.copy_(torch.cat([eye, eye, eye]))
            for norm in (attn.norm_q, attn.norm_k, attn.norm_added_q, attn.norm_added_k):
                norm.weight.fill_(4.0)
            for norm in (block.img_norm1, block.txt_norm1, block.img_norm2, block.txt_norm2):
                norm.weight.fill_(1.0)
    return patcher


def planted_joyimage() -> comfy.model_patcher.ModelPatcher:
    """planted() for JoyImage: a token's four cells of latent channel 0 make 'left' e2 - e3 and 'right' e3 - e2, as
    planted_qwen_image's, in the frame axis's slowest pair (the generated image at frame 0, a reference at frame 1 turns
    by 0.01 rad; the text and the concepts are not rotated). The text adapter (linear, GELU, linear) passes the context
    through as gelu(c) - gelu(-c) = c, then maps c0 - c1 to e2 - e3; identity fused q/k/v, q/k norms four times
    sharper, every modulation zero."""
    patcher = tiny_joyimage(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.img_in.weight.shape[0]
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        cells = dm.img_in.weight[:, 0, 0]  # [hidden, patch row, patch column] of latent channel 0
        cells[2, 0, 0], cells[2, 1, 0] = 1.0, -1.0
        cells[3, 0, 1], cells[3, 1, 1] = 1.0, -1.0
        adapter = dm.condition_embedder.text_embedder
        eye = torch.eye(CONTEXT_DIM)
        adapter.linear_1.weight.copy_(torch.cat([eye, -eye]))  # [c; -c]
        contents = torch.zeros(hidden, CONTEXT_DIM)
        opposite_contents(contents, 2)
        adapter.linear_2.weight.copy_(torch.cat([contents, -contents], dim=1))
        eye = torch.eye(hidden)
        for block in dm.double_blocks:
            attn = block.attn
            for layer in (attn.img_attn_qkv, attn.txt_attn_qkv):
                layer.weight.copy_(torch.cat([eye, eye, eye]))
            for norm in (attn.img_attn_q_norm, attn.img_attn_k_norm, attn.txt_attn_q_norm, attn.txt_attn_k_norm):
                norm.weight.fill_(4.0)
    return patcher


def opposite_contents(weight: torch.Tensor, first: int, scale: float = 1.0) -> None:
    """A projection [out, in] that maps c0 - c1 ('left') to e_first - e_first+1 and c2 - c3 ('right') to the
    opposite."""
    weight[first, 0], weight[first, 2] = scale, -scale
    weight[first + 1, 1], weight[first + 1, 3] = scale, -scale


def planted_hunyuan_video(version: str = "1.0") -> comfy.model_patcher.ModelPatcher:
    """planted() for HunyuanVideo ("1.0", "no-pooled": without pooled vector or guidance, "1.5") and HunyuanImage
    2.1 ("image-2.1"). Video tokens carry RoPE positions on the frame axis too, so the contents live in head 0's
    channels 2-3, the frame axis's slowest pair (a token of frame f turns by f / 16 rad); HunyuanImage 2.1's 2-D
    positions (rows, columns) put them in channels 6-7, the row axis's slowest pair (a token of row r turns by
    r / 64 rad). 'left' is e_c - e_c+1, 'right' the opposite. The token refiner's blocks are zero, so it passes
    its input projection through."""
    builders = {"1.0": lambda: tiny_hunyuan_video(0, depth=2),
                "no-pooled": lambda: tiny_hunyuan_video(0, depth=2, pooled=False, guidance_embed=False),
                "1.5": lambda: tiny_hunyuan_video_15(0, depth=2), "image-2.1": lambda: tiny_hunyuan_image_21(0, depth=2)}
    patcher = builders[version]()
    dm = patcher.model.diffusion_model
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight = dm.img_in.proj.weight
        if weight.ndim == 5:  # a 1 x 2 x 2 patch of latent channel 0: e2 = c(0,0) - c(1,0), e3 = c(0,1) - c(1,1)
            weight[2, 0, 0, 0, 0], weight[2, 0, 0, 1, 0] = 1.0, -1.0
            weight[3, 0, 0, 0, 1], weight[3, 0, 0, 1, 1] = 1.0, -1.0
            first = 2
        else:  # 1 x 1 patches: latent channels 0-3 as planted_cells draws them
            first = 6
            opposite_contents(weight[:, :, 0, 0], first)
        opposite_contents(dm.txt_in.input_embedder.weight, first)  # concept 'left' (c0 - c1) -> e_c - e_c+1
        identity_attention(dm.double_blocks, dm.hidden_size)
    return patcher


def planted_cogvideox(version: str) -> comfy.model_patcher.ModelPatcher:
    """planted() for CogVideoX: one q/k/v for text and video (identity), q/k LayerNorms four times sharper, the
    contents in head 0's channels 2-3, the slowest pair of RoPE's frame axis (frame 0: no rotation). A token's
    first frame of latent channel 0 gives e2 = c(0,0) - c(1,0), e3 = c(0,1) - c(1,1), scaled by 100 so that 1.0
    2B's sincos positions, added to the video tokens, are small beside them; LayerNorms then set the scale."""
    patcher = tiny_cogvideox(0, version, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.patch_embed.proj.weight.shape[0]
    scale = 100.0
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight = dm.patch_embed.proj.weight
        if weight.ndim == 4:  # 1.0: Conv2d over 2 x 2 cells
            weight[2, 0, 0, 0], weight[2, 0, 1, 0] = scale, -scale
            weight[3, 0, 0, 1], weight[3, 0, 1, 1] = scale, -scale
        else:  # 1.5: Linear over (channel, frame, row, column) of 2 x 2 x 2 cells; the pair's first frame
            weight[2, 0], weight[2, 2] = scale, -scale
            weight[3, 1], weight[3, 3] = scale, -scale
        opposite_contents(dm.patch_embed.text_proj.weight, 2, scale)
        eye = torch.eye(hidden)
        for block in dm.blocks:
            block.norm1.norm.weight.fill_(1.0)
            for layer in (block.q, block.k, block.v):
                layer.weight.copy_(eye)
            block.norm_q.weight.fill_(4.0)
            block.norm_k.weight.fill_(4.0)
    return patcher


def planted_mochi() -> comfy.model_patcher.ModelPatcher:
    """planted() for Mochi: identity q/k/v for video and text (qkv_y puts the 32-wide text in the first 32 of the 64
    video channels), q/k RMSNorms four times sharper, every modulation and gate zero (so no stream changes). Its RoPE
    frequencies are learnt, and zero here: no token is turned. A 2 x 2 patch of latent channel 0 gives
    e2 = c(0,0) - c(1,0), e3 = c(0,1) - c(1,1); t5_yproj maps 'left' (c0 - c1) to e2 - e3, 'right' the opposite."""
    patcher = tiny_mochi(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden_x, hidden_y = dm.hidden_size_x, dm.hidden_size_y
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight = dm.x_embedder.proj.weight  # [hidden, channel, patch row, patch column]
        weight[2, 0, 0, 0], weight[2, 0, 1, 0] = 1.0, -1.0
        weight[3, 0, 0, 1], weight[3, 0, 1, 1] = 1.0, -1.0
        opposite_contents(dm.t5_yproj.weight, 2)
        for block in dm.blocks:
            attn = block.attn
            attn.qkv_x.weight.copy_(torch.eye(hidden_x).repeat(3, 1))
            attn.qkv_y.weight.copy_(torch.eye(hidden_x, hidden_y).repeat(3, 1))
            for norm in (attn.q_norm_x, attn.k_norm_x, attn.q_norm_y, attn.k_norm_y):
                norm.weight.fill_(4.0)
    return patcher


def planted_z_image() -> comfy.model_patcher.ModelPatcher:
    """planted() for Z-Image's NextDiT: one qkv for caption and image tokens (identity), q/k RMSNorms four times
    sharper, every modulation and gate zero (so every refiner and layer passes its input on). The contents live
    in head 0's channels 6-7, the slowest pair of RoPE's caption axis (theta 10000: an image token, at caption
    position 33, turns by 0.03 rad against a concept at 0). A token's latent cells (channel 0) give
    e6 = c(0,0) - c(1,0), e7 = c(0,1) - c(1,1): 'left' is e6 - e7, 'right' the opposite."""
    patcher = tiny_z_image(0, depth=2, rope_theta=10000.0)
    dm = patcher.model.diffusion_model
    channels = dm.x_embedder.weight.shape[1] // 4  # patch features run (cell row, cell column, channel)
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight = dm.x_embedder.weight
        weight[6, 0], weight[6, 2 * channels] = 1.0, -1.0
        weight[7, channels], weight[7, 3 * channels] = 1.0, -1.0
        dm.cap_embedder[0].weight.fill_(1.0)
        opposite_contents(dm.cap_embedder[1].weight, 6)
        eye = torch.eye(dm.dim)
        for block in dm.layers:
            block.attention_norm1.weight.fill_(1.0)
            block.attention.qkv.weight.copy_(torch.cat([eye, eye, eye]))
            block.attention.q_norm.weight.fill_(4.0)
            block.attention.k_norm.weight.fill_(4.0)
    return patcher


def planted_krea2() -> comfy.model_patcher.ModelPatcher:
    """planted() for Krea 2: q, k and v of each token itself (head 0's first four channels, which RoPE leaves alone:
    text and image tokens all sit at 0 on its first axis), q/k norms four times sharper, every modulation and gate
    zero, the sigmoid gate at one half. The text adapter passes its first tapped layer on (the projector), and its
    MLP sends concept 'left' (c0 - c1) to about 10 e0 and 'right' (c2 - c3) to about 10 e2; latent patch feature c
    is feature c, as planted() lays out Flux's."""
    patcher = tiny_krea2(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.first.weight.shape[0]
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        dm.first.weight.copy_(torch.eye(hidden, dm.first.weight.shape[1]))
        dm.txtfusion.projector.weight[0, 0] = 1.0
        dm.txtmlp[1].weight.copy_(10.0 * torch.eye(hidden, dm.txtdim))
        dm.txtmlp[3].weight.copy_(torch.eye(hidden))
        for block in dm.blocks:
            attn = block.attn
            attn.wq.weight.copy_(torch.eye(hidden))
            attn.wk.weight.copy_(torch.eye(attn.wk.weight.shape[0], hidden))
            attn.wv.weight.copy_(torch.eye(attn.wv.weight.shape[0], hidden))
            attn.qknorm.qnorm.scale.fill_(3.0)  # (1 + scale): four times sharper
            attn.qknorm.knorm.scale.fill_(3.0)
    return patcher


def planted_ideogram4() -> comfy.model_patcher.ModelPatcher:
    """planted() for Ideogram 4: one qkv (identity), q/k norms four times sharper, every modulation and gate zero.
    Its RoPE turns image tokens by their offset position 65536 on the frame axis, so the contents live in head 0's
    slowest split-half pair (channels 7 and 15) under a theta of 1e12 (a turn of 2e-6 rad). A token's latent cell
    gives e7 = c0 - c2, e15 = c1 - c3 (channels 0-3: its 2 x 2 patch of the first of 32); 'left' is e7 - e15, and
    the concepts' projection maps 'left' (c0 - c1) there too, 'right' the opposite."""
    patcher = tiny_ideogram4(0, depth=2, rope_theta=1e12)
    dm = patcher.model.diffusion_model
    hidden = dm.input_proj.weight.shape[0]
    features = dm.input_proj.weight.shape[1] // 4  # a token's features run (cell row, cell column, channel)
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight = dm.input_proj.weight
        weight[7, 0], weight[7, 2 * features] = 1.0, -1.0
        weight[15, features], weight[15, 3 * features] = 1.0, -1.0
        dm.llm_cond_norm.weight.fill_(1.0)
        projection = dm.llm_cond_proj.weight
        projection[7, 0], projection[7, 2] = 1.0, -1.0
        projection[15, 1], projection[15, 3] = 1.0, -1.0
        eye = torch.eye(hidden)
        for block in dm.layers:
            block.attention_norm1.weight.fill_(1.0)
            block.attention.qkv.weight.copy_(torch.cat([eye, eye, eye]))
            block.attention.norm_q.weight.fill_(4.0)
            block.attention.norm_k.weight.fill_(4.0)
    return patcher


def omnigen2_contents(dm) -> None:
    """Every weight zero but the contents of OmniGen2's (and Boogu's) inputs: a token's cells (channel 0) give
    e2 = c(0,0) - c(1,0), e3 = c(0,1) - c(1,1); the caption embedder maps 'left' (c0 - c1) to e2 - e3, 'right' the
    opposite."""
    channels = dm.x_embedder.weight.shape[1] // 4  # patch features run (cell row, cell column, channel)
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        weight = dm.x_embedder.weight
        weight[2, 0], weight[2, 2 * channels] = 1.0, -1.0
        weight[3, channels], weight[3, 3 * channels] = 1.0, -1.0
        embedder = dm.time_caption_embed.caption_embedder
        embedder[0].weight.fill_(1.0)
        opposite_contents(embedder[1].weight, 2)


def planted_omnigen2() -> comfy.model_patcher.ModelPatcher:
    """planted() for OmniGen2: q, k and v of each token itself (grouped key/value heads: head 0's channels serve
    query heads 0 and 1), q/k norms four times sharper, every modulation and gate zero. The contents live in head
    0's channels 2-3, the slowest pair of RoPE's first axis (theta 10000: the image, at caption position 4, turns
    by 0.04 rad against a concept at 0). A token's cells (channel 0) give e2 = c(0,0) - c(1,0),
    e3 = c(0,1) - c(1,1); the caption embedder maps 'left' (c0 - c1) to e2 - e3, 'right' the opposite."""
    patcher = tiny_omnigen2(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    omnigen2_contents(dm)
    with torch.no_grad():
        eye = torch.eye(hidden)
        for block in dm.layers:
            attn = block.attn
            block.norm1.norm.weight.fill_(1.0)
            attn.to_q.weight.copy_(eye)
            attn.to_k.weight.copy_(torch.eye(attn.to_k.weight.shape[0], hidden))
            attn.to_v.weight.copy_(torch.eye(attn.to_v.weight.shape[0], hidden))
            attn.norm_q.weight.fill_(4.0)
            attn.norm_k.weight.fill_(4.0)
    return patcher


def planted_boogu() -> comfy.model_patcher.ModelPatcher:
    """planted_omnigen2's contents for Boogu: its double blocks' joint attention takes q, k and v of each token
    itself in both streams (grouped key/value heads), q/k norms four times sharper, unit pre-norm scales, every
    modulation and gate zero (so every stream passes the blocks unchanged)."""
    patcher = tiny_boogu(0, depth=2)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    omnigen2_contents(dm)
    with torch.no_grad():
        for block in dm.double_stream_layers:
            attn, streams = block.img_instruct_attn, block.img_instruct_attn.processor
            block.img_norm1.norm.weight.fill_(1.0)
            block.instruct_norm1.norm.weight.fill_(1.0)
            for stream in ("img", "instruct"):
                getattr(streams, f"{stream}_to_q").weight.copy_(torch.eye(hidden))
                for name in ("k", "v"):
                    layer = getattr(streams, f"{stream}_to_{name}")
                    layer.weight.copy_(torch.eye(layer.weight.shape[0], hidden))
            attn.norm_q.weight.fill_(4.0)
            attn.norm_k.weight.fill_(4.0)
    return patcher


def planted_ernie() -> comfy.model_patcher.ModelPatcher:
    """planted() for Ernie-Image: q, k and v of each token itself, q/k norms four times sharper, every modulation and
    gate zero. Under a theta of 1e12 only each RoPE axis's first pair turns (by its position in radians); channels
    2-3 are turned by the frame axis's second pair alone (2e-6 rad per position). One-cell tokens: 'left'
    (c0 - c1) is e2 - e3, 'right' the opposite, for image and text alike."""
    patcher = tiny_ernie(0, depth=2, rope_theta=1e12)
    dm = patcher.model.diffusion_model
    hidden = dm.hidden_size
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        opposite_contents(dm.x_embedder.proj.weight[:, :, 0, 0], 2)
        opposite_contents(dm.text_proj.weight, 2)
        eye = torch.eye(hidden)
        for block in dm.layers:
            attn = block.self_attention
            block.adaLN_sa_ln.weight.fill_(1.0)
            for layer in (attn.to_q, attn.to_k, attn.to_v):
                layer.weight.copy_(eye)
            attn.norm_q.weight.fill_(4.0)
            attn.norm_k.weight.fill_(4.0)
    return patcher


def planted_latent(height: int, width: int, boundary: int, channels: int = 16) -> torch.Tensor:
    """2 x 2-cell tokens, latent channel 0: left tokens get e0 - e1, right tokens e2 - e3 (cells (0,0) - (0,1),
    (1,0) - (1,1))."""
    latent = torch.zeros(1, channels, height, width)
    left = torch.zeros(2, 2)
    left[0, 0], left[0, 1] = 1.0, -1.0
    right = torch.zeros(2, 2)
    right[1, 0], right[1, 1] = 1.0, -1.0
    tiles_h, tiles_w = -(-height // 2), -(-width // 2)
    pattern = torch.cat([left.repeat(tiles_h, boundary), right.repeat(tiles_h, tiles_w - boundary)], dim=1)
    latent[0, 0] = pattern[:height, :width]
    return latent


def planted_cells(height: int, width: int, boundary: int, channels: int) -> torch.Tensor:
    """One-cell tokens: left tokens carry c0 - c1, right tokens c2 - c3."""
    latent = torch.zeros(1, channels, height, width)
    latent[0, 0, :, :boundary], latent[0, 1, :, :boundary] = 1.0, -1.0
    latent[0, 2, :, boundary:], latent[0, 3, :, boundary:] = 1.0, -1.0
    return latent


def planted_pixels(height: int, width: int, boundary: int, token: int = 16) -> torch.Tensor:
    """An image [1, 3, H, W] (Chroma Radiance's 'latent'): the first `boundary` token columns lit in channel 0,
    the rest in channel 1."""
    image = torch.zeros(1, 3, height, width)
    image[0, 0, :, :boundary * token] = 1.0
    image[0, 1, :, boundary * token:] = 1.0
    return image


def concept_context() -> torch.Tensor:
    context = torch.zeros(1, 2, CONTEXT_DIM)
    context[0, 0, 0], context[0, 0, 1] = 1.0, -1.0  # "left" matches e0 - e1
    context[0, 1, 2], context[0, 1, 3] = 1.0, -1.0  # "right" matches e2 - e3
    return context


def one_pass_maps(ca, model, concepts, pooled, latent, pixels_per_latent, reference=None, token_pixels=16,
                  conditioning=None):
    """Maps of "left" and "right" from one partial denoising pass of `model` at sigma 0, cfg 1; conditioning: what
    the (4-token, zero) prompt carries beside its states (OmniGen2's attention mask)."""
    family = ca.nodes.families.family_for(model)
    patch = ca.nodes.stream.install.ConceptAttentionPatch(family, concepts, (0, 1), (0, 1), stop_after_last_layer=True)
    patched = patch.install(model.clone())
    extras = {"pooled_output": pooled, **(conditioning or {})}
    if reference is not None:
        extras["reference_latents"] = [reference]
    cond = [[torch.zeros(1, 4, CONTEXT_DIM), extras]]
    guider = comfy.samplers.CFGGuider(patched)
    guider.set_conds(cond, cond)
    guider.set_cfg(1.0)
    sampler = comfy.samplers.KSAMPLER(ca.nodes.segment_node.one_partial_pass)
    latent = comfy.sample.fix_empty_latent_channels(model, latent)  # as KSampler: Qwen-Image's latents are 5-D
    guider.sample(torch.zeros_like(latent), latent, sampler, torch.tensor([0.0, 0.0]), disable_pbar=True, seed=0)
    h, w = latent.shape[-2:]
    return patch.concept_maps(["left", "right"], (h * pixels_per_latent, w * pixels_per_latent), "output",
                              token_pixels)


def planted_clip(boundaries: list[int], height: int = 8, width: int = 12, channels: int = 16) -> torch.Tensor:
    """A clip [1, channels, frames, H, W] whose latent frame f shows 'left' on its first boundaries[f] token columns,
    'right' after."""
    return torch.stack([planted_latent(height, width, boundary, channels)[0] for boundary in boundaries],
                       dim=1)[None]


def hunyuan_video_clip_maps(ca, boundaries: list[int]):
    """The planted HunyuanVideo's maps of planted_clip(boundaries)."""
    return one_pass_maps(ca, planted_hunyuan_video(), concept_context(), torch.zeros(1, 16), planted_clip(boundaries), 8)


MOCHI_PROMPT_MASK = {"attention_mask": torch.ones(1, 4, dtype=torch.long)}  # the 4-token prompt, all of it valid


def mochi_clip_maps(ca, boundaries: list[int]):
    """The planted Mochi's maps of planted_clip(boundaries) over its 12 latent channels."""
    return one_pass_maps(ca, planted_mochi(), concept_context(), None, planted_clip(boundaries, channels=12), 8,
                         conditioning=MOCHI_PROMPT_MASK)


def planted_hidream() -> comfy.model_patcher.ModelPatcher:
    """planted() for HiDream: q, k and v of each token itself (image and text layers), q/k RMSNorms (over all heads)
    four times sharper, every modulation and gate zero. A token's 2 x 2 cells of latent channel 0 are its features
    0, 16, 32, 48 ((p1 p2 C) order): embedded as channels 0-3, which RoPE leaves alone (head 0's first axis, zero
    for every token). The T5 projection is the identity on channels 0-3; the Llama states are zero."""
    patcher = tiny_hidream(0, depth=2, single=1)
    dm = patcher.model.diffusion_model
    hidden = dm.inner_dim
    with torch.no_grad():
        for p in dm.parameters():
            p.zero_()
        for channel, feature in enumerate((0, 16, 32, 48)):
            dm.x_embedder.proj.weight[channel, feature] = 1.0
        dm.caption_projection[-1].linear.weight.copy_(torch.eye(hidden, CONTEXT_DIM))
        eye = torch.eye(hidden)
        for wrapper in dm.double_stream_blocks:
            attn = wrapper.block.attn1
            for layer in (attn.to_q, attn.to_k, attn.to_v, attn.to_q_t, attn.to_k_t, attn.to_v_t):
                layer.weight.copy_(eye)
            for norm in (attn.q_rms_norm, attn.k_rms_norm, attn.q_rms_norm_t, attn.k_rms_norm_t):
                norm.weight.fill_(4.0)
    return patcher
