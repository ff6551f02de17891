"""The Mochi family: Genmo's Mochi 1 (preview), text to video, on ComfyUI's AsymmDiTJoint.

Every AsymmetricJointBlock is joint and asymmetric: the video stream is dim_x wide, the text stream dim_y
(3072 and 1536), and the text has layers of its own, which the concepts reuse:
- mod_y of c gives the text's (scale, gate) for the attention and the MLP: a modulated RMSNorm (a scale, no
  shift) before each, and a tanh gate after. c is the timestep embedding plus the T5 attention pool's vector
  (t5_y_embedder); the concepts' pooled vector is zero, so their c is the timestep embedding alone.
- qkv_y takes the text from dim_y to the heads' dim_x, with an RMSNorm per head on q and k; proj_y takes the
  attention's outputs back to dim_y. Each update (proj_y's, mlp_y's) is RMSNormed before its gate: the
  "sandwich norm" (TextStreamWeights.update_norm).
- The joint attention holds [video; text], the text cut to its valid tokens (num_tokens, from the prompt's
  attention mask). Video tokens carry a mixed, learnt RoPE; the text none, so the concepts have no positions.
- The last block does not update the text (update_y False: mod_y gives its attention's scale alone, and it has no
  proj_y or mlp_y): the concepts are scored there and not updated, as in SD3's last context block.
- AsymmDiTJoint.forward has patches_replace["dit"] entries per block and no DIFFUSION_MODEL wrapper: the stream
  opens per call in APPLY_MODEL (whose sigma is Mochi's timestep: its model sampling multiplies by 1).
- The prompt's T5 states enter through t5_yproj, as do the concepts'.
- Token frames: 2 x 2 patches of each latent frame; the causal VAE decodes the first latent frame alone, then 6
  video frames per latent frame.
"""

import comfy.ldm.common_dit
import torch.nn.functional as F
from comfy.ldm.genmo.joint_model.asymm_models_joint import AsymmDiTJoint
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from .base import Hook, ModelCall, ModelFamily, TypicalCfg, causal_video_frame_tokens

VAE_TEMPORAL_STRIDE = 6  # Mochi's causal VAE: the first frame alone, then 6 per latent frame
EPS = 1e-6  # the blocks' modulated and sandwich RMSNorms


def rms_norm(x: Tensor) -> Tensor:
    """The blocks' RMSNorm without a weight, before the modulation and on each update."""
    return comfy.ldm.common_dit.rms_norm(x, eps=EPS)


class MochiFamily(ModelFamily):
    """auto: the last four of Mochi's 48 blocks, as Flux.1's last double blocks; the last of them, block 47, scores
    the concepts without updating them."""

    short_name = "Mochi"
    typical_cfg = TypicalCfg("4.5")
    video = True
    hook = Hook.APPLY_MODEL  # AsymmDiTJoint.forward does not run the DIFFUSION_MODEL wrapper

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, AsymmDiTJoint)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """c with a zero pooled vector: the timestep embedding alone, as prepare makes it (at 1 - sigma)."""
        return {"c": call.diffusion_model.t_embedder(1 - call.timestep[rows], out_dtype=call.dtype)}

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """mod_y of the concepts' c: (scale, tanh gate) for the attention and the MLP, no shift; a block that does not
        update the text has its attention's scale alone."""
        block = diffusion_model.blocks[index]
        mod_y = block.mod_y(F.silu(conditioning["c"]))
        if not block.update_y:
            return Modulation(0.0, mod_y[:, None], None), None
        scale_msa, gate_msa, scale_mlp, gate_mlp = (chunk[:, None] for chunk in mod_y.chunk(4, dim=1))
        return Modulation(0.0, scale_msa, gate_msa.tanh()), Modulation(0.0, scale_mlp, gate_mlp.tanh())

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.blocks[index]
        attn, updates = block.attn, block.update_y
        return TextStreamWeights(
            num_heads=attn.num_heads, norm1=rms_norm, qkv=attn.qkv_y,
            qk_norm=lambda q, k, v: (attn.q_norm_y(q), attn.k_norm_y(k)),
            proj=attn.proj_y if updates else None, norm2=rms_norm if updates else None,
            mlp=block.mlp_y if updates else None, update_norm=rms_norm,
        )

    def modulation_layers(self, diffusion_model, index: int) -> list:
        return [diffusion_model.blocks[index].mod_y]

    def release_after_stream(self, diffusion_model, last: int) -> list[tuple[str, int]]:
        """The forward keeps the last replacement's returned dict in a local to its end, and with it one extra copy
        of the video tokens: each block after the stream empties the one before it."""
        return [("double_block", index) for index in range(last + 1, len(diffusion_model.blocks))]

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        return diffusion_model.t5_yproj(concept_context)

    def text_tokens(self, block_args: dict) -> int:
        """The text's valid tokens, which the joint attention holds after the video's (crop_y)."""
        return min(block_args["num_tokens"], block_args["txt"].shape[1])

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v [B, H, L, D] (keys with their RoPE), outputs [B, L, H * D] before proj_x; video first."""
        video = q.shape[2] - text_tokens
        return ImageAttention(keys=k[:, :, :video], values=v[:, :, :video], outputs=out[:, :video])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int, int]:
        """(frames, rows, columns): each latent frame in 2 x 2 patches (the forward takes whole patches only)."""
        p = diffusion_model.patch_size
        return x.shape[-3], x.shape[-2] // p, x.shape[-1] // p

    def video_frame_tokens(self, diffusion_model, latent_frames: int) -> tuple[int, ...]:
        return causal_video_frame_tokens(latent_frames, VAE_TEMPORAL_STRIDE)
