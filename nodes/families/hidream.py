"""The HiDream family: HiDream-I1 (Full, Dev, Fast) and HiDream-E1 on ComfyUI's HiDreamImageTransformer2DModel.

The model runs double-stream blocks, then single-stream ones. Its text comes from four encoders: CLIP-L and
CLIP-G give only the pooled vector; T5-XXL's states are the prompt's context; Llama 3.1's states of every layer
ride in the conditioning (conditioning_llama3, [B, layers, T, C]). How the prompt runs, and so the concepts:
- each of the model's blocks b has a caption projection of its own for Llama layer llama_layers[b], the last
  projection is T5's. The text that enters the double blocks is [T5; Llama layer llama_layers[-1]] (both
  projected), and each double block i adds, for itself alone, Llama layer llama_layers[i]'s tokens after them
  (projection i): block i's joint attention holds [image; T5; Llama last; Llama layer i]. After the block the
  first two groups go on, updated by the text's weights; the Llama layer-i tokens are dropped.
- every concept follows that path with its own encoding: its T5 token (projection -1) and its Llama last-layer
  token (projection -2) are the stream's own tokens, carried from block to block; in block i its Llama layer-i
  token (projection i) joins them for that block alone (block_concepts). A concept's token in each encoder is its
  first own token there (after Llama's <|begin_of_text|>; concept_states puts it beside the T5 one: the mean
  pooling averages as many Llama pieces as T5 pieces, the last repeated where Llama splits the concept in fewer).
- the concepts' T5 token stands for the concept: T5's states are the prompt's context, as on Flux.1, and it runs
  through every double block; its attention outputs are scored (StreamState.concept_count). Queries of all three
  groups attend over [every concept token; image], so a concept's T5 token reads its own Llama states there as
  the prompt's T5 tokens read the prompt's.
- the text's weights in a double block are its own: adaLN_modulation's six text chunks (shift, scale, gate for
  the attention and the MLP), norm1_t, to_q_t/to_k_t/to_v_t with RMSNorms over all heads on q and k, to_out_t,
  norm3_t and the SwiGLU ff_t (the image's feed-forward is the mixture of experts; the text's is not);
- the modulation input is the timestep embedding plus p_embedder of the pooled CLIP-L/G vector: the concepts'
  pooled vector is zero (p_embedder's output for it is not);
- RoPE: the image at (0, row, column), every text token at (0, 0, 0), a rotation by zero: the concepts have none.
- no patches_replace entries: the stream reaches each double block through its joint attention call, which gets
  transformer_options (BlockEntry.ATTENTION); the double blocks' calls come first, one per block.
Maps come from the double blocks only: the single-stream blocks share every weight between text and image and
take the Llama layer's tokens for themselves; they are out of scope.
HiDream-E1 (the edit model) takes its reference as image_cond, concatenated to the latent along its width: every
token row holds the generated image's tokens, then the reference's. The concepts attend over both, as the text does;
the generated image's tokens are picked out of each row for the scores (scored_image_tokens).
"""

import torch
from torch import Tensor

from ...ca_core.stream import ImageAttention, Modulation, TextStreamWeights
from .base import BlockEntry, ModelCall, ModelFamily, patch_grid, split_heads
from .tokens import word_ids

try:
    from comfy.ldm.hidream.model import HiDreamImageTransformer2DModel
except ImportError:
    HiDreamImageTransformer2DModel = None


class HiDreamFamily(ModelFamily):
    """auto: the last four double blocks, as the paper's rule of the last blocks on Flux.1 (15-18 of 19)."""

    short_name = "HiDream"
    variants = ("I1 Full", "I1 Dev", "I1 Fast", "E1 edit")
    available = HiDreamImageTransformer2DModel is not None
    block_entry = BlockEntry.ATTENTION
    concept_embedding_per_call = True  # embed_concepts takes the call's conditioning

    def matches(self, diffusion_model) -> bool:
        return self.available and isinstance(diffusion_model, HiDreamImageTransformer2DModel)

    def joint_blocks(self, diffusion_model):
        return diffusion_model.double_stream_blocks

    def concept_conditioning(self, call: ModelCall, rows) -> dict:
        """The concepts' modulation input (the timestep embedding plus p_embedder of a zero pooled vector), and
        how many image tokens the joint attentions hold."""
        dm, x = call.diffusion_model, call.x
        xs = x[rows]
        timestep = dm.expand_timesteps(call.timestep[rows], xs.shape[0], x.device)
        pooled = torch.zeros(xs.shape[0], dm.p_embedder.pooled_embedder.linear_1.in_features, dtype=x.dtype,
                             device=x.device)
        grid_rows, grid_cols = self.attended_grid(dm, call)
        return {"adaln": dm.t_embedder(timestep, x.dtype) + dm.p_embedder(pooled), "image_tokens": grid_rows * grid_cols,
                "blocks": len(dm.double_stream_blocks), "llama": None}

    @staticmethod
    def attended_grid(diffusion_model, call: ModelCall) -> tuple[int, int]:
        """Rows and columns of the image tokens the joint attention holds: with HiDream-E1's reference beside the
        latent, both, patched as one."""
        reference, p = call.get("image_cond"), diffusion_model.patch_size
        rows, columns = patch_grid(call.x, p)
        return (rows, columns) if reference is None else (rows, -(-(call.x.shape[-1] + reference.shape[-1]) // p))

    def scored_image_tokens(self, call: ModelCall, grid: tuple[int, ...]) -> int | Tensor:
        """HiDream-E1: the first grid columns of every attended row."""
        rows, columns = grid
        attended_columns = self.attended_grid(call.diffusion_model, call)[1]
        if attended_columns == columns:
            return rows * columns
        row_starts = torch.arange(rows, device=call.x.device)[:, None] * attended_columns
        return (row_starts + torch.arange(columns, device=call.x.device)).flatten()

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: dict) -> int | None:
        """The double blocks' joint attentions are the call's first; the single blocks' after them."""
        return number if number < conditioning["blocks"] else None

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: dict, rows):
        """The block's text chunks (its last six of twelve) of the concepts' modulation input."""
        block = diffusion_model.double_stream_blocks[index].block
        chunks = block.adaLN_modulation(conditioning["adaln"])[:, None].chunk(12, dim=-1)
        return Modulation(*chunks[6:9]), Modulation(*chunks[9:12])

    def modulation_layers(self, diffusion_model, index: int) -> list:
        return [diffusion_model.double_stream_blocks[index].block.adaLN_modulation[1]]

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The text's own layers; its q/k RMSNorms span all heads, so they run inside qkv."""
        block = diffusion_model.double_stream_blocks[index].block
        attn = block.attn1

        def qkv(x: Tensor) -> Tensor:
            q, k = attn.q_rms_norm_t(attn.to_q_t(x)).to(x.dtype), attn.k_rms_norm_t(attn.to_k_t(x)).to(x.dtype)
            return torch.cat([q, k, attn.to_v_t(x)], dim=-1)

        return TextStreamWeights(num_heads=attn.heads, norm1=block.norm1_t, qkv=qkv, qk_norm=lambda q, k, v: (q, k),
                                 qkv_layers=(attn.to_q_t, attn.to_k_t, attn.to_v_t),
                                 proj=attn.to_out_t, norm2=block.norm3_t, mlp=block.ff_t)

    def concept_states(self, clip, tokens: dict) -> Tensor:
        """The concept's T5 states [1, T, C_t5] with, beside each of its own T5 tokens, the Llama states of every
        layer of its own Llama token in the same order ([1, T, C_t5 + layers * C_llama]; the first beside the
        first). T5's alone where no Llama model is loaded (the encoder then gives one zero token, and so the
        concepts, as the prompt, take zero Llama states)."""
        encoded = clip.encode_from_tokens(tokens, return_dict=True)
        context, llama = encoded["cond"], encoded.get("conditioning_llama3")
        words = word_ids(tokens)
        if llama is None or len(words.get("llama", ())) != llama.shape[2] or len(words["t5xxl"]) != context.shape[1]:
            return context
        own_t5 = [i for i, word in enumerate(words["t5xxl"]) if word > 0]
        own_llama = [i for i, word in enumerate(words["llama"]) if word > 0]
        beside = torch.zeros(*context.shape[:2], llama.shape[1] * llama.shape[3], dtype=context.dtype,
                             device=context.device)
        for piece, row in enumerate(own_t5 if own_llama else ()):
            beside[0, row] = llama[0, :, own_llama[min(piece, len(own_llama) - 1)]].flatten().to(beside)
        return torch.cat([context, beside], dim=-1)

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning: dict, positions=None) -> Tensor:
        """[T5 tokens; Llama last-layer tokens] [B, 2K, C] through their caption projections, as the forward
        embeds the prompt's; the concepts' Llama states are kept for each block's own layer (block_concepts)."""
        dm = diffusion_model
        t5_width, llama_width = dm.caption_projection[-1].linear.in_features, dm.caption_projection[0].linear.in_features
        t5, llama = concept_context[..., :t5_width], concept_context[..., t5_width:]
        layers = max(dm.llama_layers) + 1
        if llama.shape[-1] == 0:  # no Llama model loaded: zero states, as the encoder gives the prompt (one layer's
            # memory, the same zeros for every layer)
            llama = concept_context.new_zeros(*t5.shape[:2], 1, llama_width).expand(-1, -1, layers, -1)
        else:
            llama = llama.unflatten(-1, (-1, llama_width))
        if llama.shape[2] < layers:
            raise ValueError(f"the concepts' Llama encoding has {llama.shape[2]} layers, but this HiDream model reads "
                             f"layer {layers - 1}: encode the concepts with HiDream's own Llama 3.1 8B "
                             "(QuadrupleCLIPLoader)")
        conditioning["llama"] = llama
        return torch.cat([dm.caption_projection[-1](t5), self.llama_tokens(dm, len(dm.llama_layers) - 1, llama)],
                         dim=1)

    @staticmethod
    def llama_tokens(diffusion_model, block: int, llama: Tensor) -> Tensor:
        """The concepts' tokens of the Llama layer that the model's block `block` reads, through its projection."""
        return diffusion_model.caption_projection[block](llama[:, :, diffusion_model.llama_layers[block]])

    def block_concepts(self, diffusion_model, index: int, concepts: Tensor, conditioning: dict) -> Tensor:
        """The stream's [T5; Llama last] tokens, then the concepts' Llama layer-i tokens for this block alone."""
        return torch.cat([concepts, self.llama_tokens(diffusion_model, index, conditioning["llama"])], dim=1)

    def text_tokens(self, block_args: dict) -> int:
        return block_args["q"].shape[1] - block_args["conditioning"]["image_tokens"]

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int = 0) -> ImageAttention:
        """q/k/v and outputs [B, L, H * D] (heads flattened), the image FIRST, the text after."""
        heads, count = diffusion_model.num_attention_heads, q.shape[1] - text_tokens
        return ImageAttention(keys=split_heads(k[:, :count], heads), values=split_heads(v[:, :count], heads),
                              outputs=out[:, :count])

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, int]:
        """The forward pads the latent to whole patches."""
        return patch_grid(x, diffusion_model.patch_size)

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """The model needs a pooled vector: zero (the caption's Llama states come with the caption)."""
        return {"pooled_output": torch.zeros(1, diffusion_model.p_embedder.pooled_embedder.linear_1.in_features)}

