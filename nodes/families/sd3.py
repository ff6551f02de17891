"""The SD3 family: Stable Diffusion 3 and 3.5 (large, large turbo, medium), on ComfyUI's MMDiT.

Each joint block is a pair of DismantledBlocks: the context (text) block, whose weights the concepts
reuse, and the x (image) block. Their q/k/v meet in one joint attention, text first.
- The concepts' modulation is the context block's adaLN of the timestep embedding with a ZERO pooled
  vector (SD3's pooled CLIP vector enters through y_embedder; the concepts get y_embedder(0)).
- SD3 has no RoPE: positions enter as a learned embedding added to the image tokens, so the concepts
  have no positions.
- The last context block is pre_only: it has q/k/v and no projection or MLP, as the text stream ends
  there. The concepts are scored in it and get no update.
- SD3.5 medium's image blocks have a second, image-only attention (x_block_self_attn); the joint one runs
  first, and the concept stream reads only that one.
- ComfyUI's SD3 forward does not pass through the DIFFUSION_MODEL wrapper: the stream opens per call in
  APPLY_MODEL, whose sigma the model sampling turns into SD3's timestep (1000 sigma).
- The context is CLIP-L/G's 77 tokens (their hidden states side by side, padded to 4096 channels), then
  T5's. The concepts take their CLIP-L/G tokens, as the paper's SD3 code does; T5's where no CLIP model
  is loaded.
"""

import torch
from comfy.ldm.modules.diffusionmodules.mmdit import OpenAISignatureMMDITWrapper
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from . import tokens
from .base import ALL_BLOCKS, Hook, ModelCall, ModelFamily, TypicalCfg, split_heads


def concept_vector(diffusion_model, conditioning: dict, dtype: torch.dtype) -> Tensor:
    """The timestep embedding plus the pooled-vector embedding of a zero vector, as MMDiT.forward makes c; made
    once per call, in the first block, in the dtype the model computes in (APPLY_MODEL's inputs are not cast)."""
    if "vector" not in conditioning:
        timestep = conditioning["timestep"]
        vector = diffusion_model.t_embedder(timestep, dtype=dtype)
        if diffusion_model.y_embedder is not None:
            width = diffusion_model.y_embedder.mlp[0].in_features
            vector = vector + diffusion_model.y_embedder(
                torch.zeros((timestep.shape[0], width), device=timestep.device, dtype=dtype))
        conditioning["vector"] = vector
    return conditioning["vector"]


class SD3Family(ModelFamily):
    """auto averages every joint block, as the paper's SD3 code does (layer_range 0-38 of SD3.5 large): the
    concepts run through every block up to the last chosen one, and SD3's last block is its last joint block,
    so a shorter choice saves no time."""

    short_name = "SD3 / SD3.5"  # large, large turbo, medium
    typical_cfg = TypicalCfg("4", about=True)
    default_layers = ALL_BLOCKS
    hook = Hook.APPLY_MODEL  # OpenAISignatureMMDITWrapper.forward does not run the DIFFUSION_MODEL wrapper
    token_alignment = staticmethod(tokens.clip_then_t5_word_pieces)

    def matches(self, diffusion_model) -> bool:
        return isinstance(diffusion_model, OpenAISignatureMMDITWrapper)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.joint_blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        return {"timestep": call.timestep[rows]}

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """The context block's adaLN of the concepts' vector: (attention, MLP) modulations; a pre_only block
        has only the attention's shift and scale."""
        block = diffusion_model.joint_blocks[index].context_block
        chunks = block.adaLN_modulation(concept_vector(diffusion_model, conditioning, block_args["img"].dtype))
        if block.scale_mod_only:  # no shifts: a zero shift
            scales = chunks.chunk(2 if block.pre_only else 4, dim=1)
            zero = torch.zeros_like(scales[0])
            chunks = (zero, scales[0]) if block.pre_only else (zero, scales[0], scales[1], zero, scales[2], scales[3])
        else:
            chunks = chunks.chunk(2 if block.pre_only else 6, dim=1)
        rows_of = [chunk[:, None] for chunk in chunks]
        if block.pre_only:
            return Modulation(rows_of[0], rows_of[1], None), None
        return Modulation(*rows_of[:3]), Modulation(*rows_of[3:])

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        block = diffusion_model.joint_blocks[index].context_block
        attn = block.attn
        return TextStreamWeights(
            num_heads=attn.num_heads, norm1=block.norm1, qkv=attn.qkv,
            qk_norm=lambda q, k, v: (attn.ln_q(q), attn.ln_k(k)),
            proj=None if block.pre_only else attn.proj,
            norm2=None if block.pre_only else block.norm2,
            mlp=None if block.pre_only else block.mlp,
        )

    def modulation_layers(self, diffusion_model, index: int) -> list:
        return [diffusion_model.joint_blocks[index].context_block.adaLN_modulation[1]]

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning=None, positions=None
                       ) -> Tensor:
        """As MMDiT.forward embeds its context: the context processor (where there is one), the context embedder."""
        if diffusion_model.context_processor is not None:
            concept_context = diffusion_model.context_processor(concept_context)
        return diffusion_model.context_embedder(concept_context)

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """MMDiT's joint attention takes [B, L, H*D] (heads flattened), text first (the txt of the block's args,
        after any register tokens); image tokens follow."""
        heads, image = diffusion_model.joint_blocks[index].x_block.attn.num_heads, slice(text_tokens, q.shape[1])
        return ImageAttention(keys=split_heads(k[:, image], heads), values=split_heads(v[:, image], heads),
                              outputs=out[:, image])

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """A zero pooled vector, as the concepts' own modulation."""
        width = diffusion_model.y_embedder.mlp[0].in_features if diffusion_model.y_embedder is not None else 2048
        return {"pooled_output": torch.zeros((1, width))}
