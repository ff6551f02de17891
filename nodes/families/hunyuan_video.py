"""The HunyuanVideo family: HunyuanVideo (T2V, I2V), HunyuanVideo 1.5 and HunyuanImage 2.1, on ComfyUI's
HunyuanVideo class.

Its double blocks are Flux's (DoubleStreamBlock), so the concepts reuse their text stream as on Flux.1
(FluxDoubleBlocks). What differs:
- The prompt enters through txt_in, a token refiner: two self-attention blocks modulated by the timestep
  and the prompt's mean token. Each concept is refined as a prompt of its own one token, at the call's
  timestep, with no mask (a one-token prompt has no padding), as encoding each concept alone asks.
- The concepts' modulation is the text's: the timestep (+ guidance) embedding, with a zero pooled CLIP
  vector where the model takes one (HunyuanVideo; 1.5 and Image 2.1 have none), and the mean-flow
  timestep of step-distilled 1.5 models. With I2V's token replacement (guiding_frame_index), vec holds a
  second row for the first frame's tokens; the text, and so the concepts, take the video's row
  (modulation_dims_txt), which is this one.
- Image tokens run frame by frame: the token grid is (frames, rows, columns), and the VAE decodes the
  first latent frame alone, then 4 frames per latent frame. HunyuanImage 2.1 has 2-D patches: one image.
- ComfyUI before 0.33 puts the image tokens first in the joint attention (flipped_img_txt).
- I2V's reference latent ("custom" guidance) enters as extra image tokens before the generated ones:
  the concepts attend over them, and the maps cover only the generated clip.
- Text tokens carry zero RoPE positions, so the concepts' are zero too (no rotation).
"""

import torch
from comfy.ldm.flux.layers import timestep_embedding
from comfy.ldm.hunyuan_video.model import HunyuanVideo
from torch import Tensor

from ...ca_core.stream import ImageAttention
from . import tokens
from .base import ModelCall, TypicalCfg, causal_video_frame_tokens, generated_image_first
from .flux_blocks import FluxDoubleBlocks

VAE_TEMPORAL_STRIDE = 4  # HunyuanVideo's (and 1.5's) causal VAE: the first frame alone, then 4 per latent frame
# Pixels per latent cell of the family's VAEs, by latent format, where the host's latent format does not state it
# (HunyuanVideo's own is 8, the default)
LATENT_PIXELS = {"HunyuanImage21": 32, "HunyuanImage21Refiner": 16, "HunyuanVideo15": 16}


class HunyuanVideoFamily(FluxDoubleBlocks):
    """auto: like Flux.1's 15-18 of 19 double blocks, the last four of HunyuanVideo's 20."""

    short_name = "HunyuanVideo"  # text and image to video
    also = ("1.5", "HunyuanImage 2.1")
    typical_cfg = TypicalCfg("1.0")
    video = True
    concept_embedding_per_call = True  # embed_concepts takes the call's conditioning
    token_alignment = staticmethod(tokens.llama_or_qwen_chat_prompt)

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, HunyuanVideo)

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, ...]:
        """(frames, rows, columns) of a video latent, (rows, columns) for 2-D patches; rounded as img_ids does."""
        patch = diffusion_model.patch_size
        return tuple((size + p // 2) // p for size, p in zip(x.shape[-len(patch):], patch, strict=True))

    def latent_pixels(self, model) -> int:
        latent_format = model.get_model_object("latent_format")
        stated = getattr(latent_format, "spacial_downscale_ratio", None)
        return stated or LATENT_PIXELS.get(type(latent_format).__name__, self.vae_scale)

    def token_pixels(self, model) -> int:
        return model.get_model_object("diffusion_model").patch_size[-1] * self.latent_pixels(model)

    def video_frame_tokens(self, diffusion_model, latent_frames: int) -> tuple[int, ...]:
        return causal_video_frame_tokens(latent_frames, VAE_TEMPORAL_STRIDE, diffusion_model.patch_size[0])

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """The text's modulation input with a zero pooled vector, and the timesteps the token refiner takes."""
        dm, x = call.diffusion_model, call.x[rows]
        timesteps = call.timestep[rows]
        vec = dm.time_in(timestep_embedding(timesteps, 256, time_factor=1.0).to(x.dtype))
        if dm.time_r_in is not None and not call.get("disable_time_r", False):
            vec = self._with_mean_flow_step(dm, vec, timesteps, call.transformer_options, x.dtype)
        if dm.vector_in is not None:
            vec = vec + dm.vector_in(torch.zeros((x.shape[0], dm.params.vec_in_dim), device=x.device, dtype=x.dtype))
        guidance = call.get("guidance")
        if dm.params.guidance_embed and guidance is not None:
            vec = vec + dm.guidance_in(timestep_embedding(guidance[rows], 256).to(x.dtype))
        return {"vec": vec, "timesteps": timesteps}

    @staticmethod
    def _with_mean_flow_step(dm, vec: Tensor, timesteps: Tensor, transformer_options: dict, dtype) -> Tensor:
        """Step-distilled 1.5 models also embed the next sigma of the schedule, as forward_orig does."""
        sigmas, schedule = transformer_options.get("sigmas"), transformer_options.get("sample_sigmas")
        if sigmas is None or schedule is None:
            return vec
        at = torch.where(sigmas[0] == schedule)[0]
        if len(at) == 0:
            return vec
        next_sigma = schedule[at[0] + 1].unsqueeze(0).to(device=timesteps.device, dtype=timesteps.dtype)
        vec_r = dm.time_r_in(timestep_embedding(next_sigma, 256, time_factor=1000.0).to(dtype))
        return (vec + vec_r) if dm.params.meanflow_sum else (vec + vec_r) / 2

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        return diffusion_model.double_blocks[index].txt_mod(conditioning["vec"])

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning: dict, positions=None
                       ) -> Tensor:
        """Each concept through the token refiner as a one-token prompt (then 1.5's text-type embedding)."""
        batch, concepts, width = concept_context.shape
        timesteps = conditioning["timesteps"].repeat_interleave(concepts)
        refined = diffusion_model.txt_in(concept_context.reshape(batch * concepts, 1, width), timesteps, None)
        refined = refined.reshape(batch, concepts, -1)
        type_embedding = getattr(diffusion_model, "cond_type_embedding", None)
        if type_embedding is not None:  # 1.5 marks its text tokens as type 0
            type_embedding.to(refined.device)
            refined = refined + type_embedding.weight[0].to(refined.dtype)
        return refined

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """The image tokens, the generated clip's first: a reference latent's tokens precede them in the block."""
        image = super().image_attention(diffusion_model, index, q, k, v, out, text_tokens)
        return generated_image_first(image.keys, image.values, image.outputs, image_tokens)

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """A zero pooled vector where the model takes one; the key is there either way, as ComfyUI's HunyuanVideo
        model reads it (None for 1.5 and Image 2.1), and guidance 0 where the model embeds guidance."""
        extras = {"guidance": 0.0} if diffusion_model.params.guidance_embed else {}
        extras["pooled_output"] = (torch.zeros((1, diffusion_model.params.vec_in_dim))
                                   if diffusion_model.vector_in is not None else None)
        return extras
