"""The model-family base: everything the concept stream needs to know about one model family, with the
defaults most families share.

The method (attention over [concepts; image], scores, aggregation, maps) lives in ca_core; the stream
(nodes/stream/) installs it on a cloned MODEL through ComfyUI's hooks. Neither knows a family's internals:
they ask a ModelFamily. A family is one module in nodes/families/ with one ModelFamily subclass, listed in
nodes/families/__init__.py; it overrides only what is its own. The stream never imports a family, and a
family never imports the stream: both meet here.

How a family is used, per model call:
  1. bind_call: the wrapper's arguments, bound by parameter name (families order them differently: Flux
     passes y before guidance, Chroma has no y);
  2. concept_conditioning: whatever the concepts' modulation needs for this call (the timestep and guidance
     embedding with a zero pooled vector, or the approximator's rows), for the positive rows;
  3. per joint block i, the block's patches_replace entry receives the block's own args, and asks for the
     text stream's weights (text_stream), the concepts' modulations (concept_modulations), how many text
     tokens the joint attention holds (text_tokens) and where the image tokens sit in it (image_attention).
     The first attention call inside the block is its joint attention.
     A family whose forward calls its blocks without patches_replace entries (CogVideoX) declares
     block_entry = BlockEntry.ATTENTION: its blocks are then reached through their joint attention calls
     alone (the model call's i-th attention call is block i's), and the "block args" the family receives are
     that attention call's arguments by name (q, k, v, heads, transformer_options, ...) plus the call's
     concept_conditioning under "conditioning" (a block's step is made before its attention, with the
     conditioning alone). The concepts' steps still run on the casts of the text's own calls of the layers
     (nodes/stream/shared_casts.py); the layers a plain callable runs are named in TextStreamWeights
     (qkv_layers, proj_layers, mlp_layers).
  4. watch_call: a context entered around the model's own forward, where a family reads what the forward
     computes for the concepts too (CogVideoX's text modulation, which no pooled vector enters).

Single-stream families (Z-Image, Lumina 2, OmniGen2, Krea 2, Ideogram 4, Ernie-Image), whose text and image tokens
share every weight of a block, state themselves through the same interface: text_stream returns the block's shared
weights (the text's weights ARE those), concept_modulations the text's modulation, embed_concepts the prompt's own
path through the family's text refiner or adapter. Their blocks have no patches_replace entries and their refiners
attend first, so they use BlockEntry.ATTENTION and number their blocks' attention calls (block_of_attention_call);
a model that hands no transformer_options to its attention function gets modules that do (object_patches).
"""

import contextlib
import contextvars
import enum
import inspect
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import comfy.patcher_extension
from comfy.ldm.flux.math import apply_rope
from torch import Tensor

from ...ca_core.layers import ALL_BLOCKS, DEFAULT_LAST_BLOCKS, AutoLayers
from ...ca_core.stream import ImageAttention, Modulation, ModulationParams, Rope, TextStreamWeights
from . import tokens

__all__ = ["ALL_BLOCKS", "MODEL_CALL_OPTIONS", "BlockEntry", "Hook", "ModelCall", "ModelFamily", "TypicalCfg",
           "bind_model_call", "causal_video_frame_tokens", "generated_image_first", "keeping_outputs", "patch_grid",
           "refine_as_captions", "repeat_kv_heads", "scale_gate_modulations", "table_rope", "text_before_image"]

# The transformer_options of the model call the stream runs in, while it runs (the stream sets it): for a family's
# object patches (ModelFamily.object_patches), whose model passes no transformer_options to its attention. A
# context variable, so that threads sampling at once (MultiGPU work units) each see their own call's.
MODEL_CALL_OPTIONS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("concept_attention_call_options",
                                                                                default=None)


class Hook(enum.Enum):
    """Which ComfyUI wrapper opens the stream per model call."""

    DIFFUSION_MODEL = "DIFFUSION_MODEL"  # the diffusion model's forward
    APPLY_MODEL = "APPLY_MODEL"  # for forwards that do not pass through DIFFUSION_MODEL (SD3's)

    @property
    def wrapper_type(self) -> str:
        return getattr(comfy.patcher_extension.WrappersMP, self.value)


class BlockEntry(enum.Enum):
    """How the stream reaches the joint blocks."""

    PATCHES_REPLACE = "patches_replace"  # ComfyUI's ("double_block", i) entries
    ATTENTION = "attention"  # the forward has none: each block's joint attention call is the way in


@dataclass
class ModelCall:
    """One call of a diffusion model, its arguments bound by name (inspect.signature)."""

    diffusion_model: Any
    arguments: inspect.BoundArguments
    # APPLY_MODEL passes the sigma: the model sampling's sigma -> timestep conversion (None for DIFFUSION_MODEL)
    timestep_of_sigma: Any = None
    compute_dtype: Any = None  # APPLY_MODEL: the dtype the model casts its input to (None: x's own)

    def get(self, name: str, default=None):
        """An argument by name, also among the keyword arguments the function gathers (**kwargs), as
        APPLY_MODEL passes the model's extra conditions (guidance, ...)."""
        arguments = self.arguments.arguments
        if name in arguments:
            return arguments[name]
        for parameter in self.arguments.signature.parameters.values():
            if parameter.kind is inspect.Parameter.VAR_KEYWORD:
                return arguments.get(parameter.name, {}).get(name, default)
        return default

    @property
    def x(self) -> Tensor:
        """The latent the diffusion model receives: `x`, or `hidden_states` (JoyImage's _forward names it so)."""
        arguments = self.arguments.arguments
        return arguments["x"] if "x" in arguments else arguments["hidden_states"]

    @property
    def dtype(self):
        """The dtype the diffusion model computes in."""
        return self.compute_dtype or self.x.dtype

    @property
    def timestep(self) -> Tensor:
        """The timestep the diffusion model receives: `timestep` for DIFFUSION_MODEL; for APPLY_MODEL, its
        sigma `t` through the model sampling (SD3's timestep is 1000 sigma, Flux's is its sigma)."""
        arguments = self.arguments.arguments
        for name in ("timestep", "timesteps"):  # Qwen-Image's _forward names it timesteps
            if name in arguments:
                return arguments[name]
        sigma = arguments["t"]
        return self.timestep_of_sigma(sigma).float() if self.timestep_of_sigma is not None else sigma

    @property
    def transformer_options(self) -> dict:
        return self.get("transformer_options") or {}

    def with_transformer_options(self, options: dict) -> tuple[tuple, dict]:
        """The call's (args, kwargs) with its transformer_options replaced, everything else as passed (among the
        gathered keyword arguments where the function takes it by **kwargs: Lumina 2's before ComfyUI 0.8)."""
        arguments = self.arguments.arguments
        if "transformer_options" not in self.arguments.signature.parameters:
            gathered = next((p.name for p in self.arguments.signature.parameters.values()
                             if p.kind is inspect.Parameter.VAR_KEYWORD), None)
            if gathered is not None:
                arguments[gathered] = {**arguments.get(gathered, {}), "transformer_options": options}
                return self.arguments.args, self.arguments.kwargs
        arguments["transformer_options"] = options
        return self.arguments.args, self.arguments.kwargs


def bind_model_call(executor, args: tuple, kwargs: dict) -> ModelCall:
    """Bind a DIFFUSION_MODEL or APPLY_MODEL executor's arguments to the names of the function it wraps."""
    signature = inspect.signature(executor.original)
    owner = executor.class_obj  # the diffusion model, or for APPLY_MODEL the BaseModel around it
    if not hasattr(owner, "diffusion_model"):
        return ModelCall(owner, signature.bind(*args, **kwargs))
    # BaseModel._apply_model: sigma -> timestep by the model sampling, x cast to the inference dtype
    dtype = getattr(owner, "manual_cast_dtype", None) or owner.get_dtype()
    return ModelCall(owner.diffusion_model, signature.bind(*args, **kwargs), owner.model_sampling.timestep, dtype)


def causal_video_frame_tokens(latent_frames: int, temporal_stride: int = 4, patch_frames: int = 1) -> tuple[int, ...]:
    """For each frame a causal video VAE decodes from `latent_frames` latent frames, the token frame that covers
    it: the first video frame comes alone from latent frame 0, each later latent frame gives `temporal_stride`
    frames; a token spans `patch_frames` latent frames."""
    video_frames = 1 + (latent_frames - 1) * temporal_stride
    return tuple((0 if frame == 0 else (frame - 1) // temporal_stride + 1) // patch_frames
                 for frame in range(video_frames))


def table_rope(table: Tensor) -> Rope:
    """The concepts' RoPE from a table in ComfyUI's Flux layout ([..., K, D / 2, 2, 2], what a family's own position
    embedder makes for their positions): queries and keys [B, H, K, D] turned by apply_rope, the queries back in
    the keys' dtype."""

    def rope(q: Tensor, k: Tensor) -> tuple[Tensor, Tensor]:
        q, k = apply_rope(q, k, table)
        return q.to(k.dtype), k

    return rope


@contextlib.contextmanager
def keeping_outputs(modules, outputs: dict):
    """While within: the first output each module gives is kept in `outputs` (by module); emptied on the way out.
    A family's watch_call reads what the model's own call computed (a modulation layer's output) this way."""

    def keep(module, args, output):
        outputs.setdefault(module, output)

    handles = [module.register_forward_hook(keep) for module in modules]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()
        outputs.clear()


def refine_as_captions(refiner, concepts: Tensor, table: Tensor) -> Tensor:
    """Concepts [B, K, C] through a single-stream family's caption refiner (layers called as layer(x, mask, rope)),
    each as a caption of its own one token at its row of the model's RoPE table ([K, 1, 1, D / 2, 2, 2])."""
    batch, count, _ = concepts.shape
    captions, table = concepts.reshape(batch * count, 1, -1), table.repeat(batch, 1, 1, 1, 1, 1)  # b * K + k
    for layer in refiner:
        captions = layer(captions, None, table)
    return captions.reshape(batch, count, -1)


def scale_gate_modulations(output: Tensor) -> tuple[Modulation, Modulation]:
    """Lumina 2's modulation (Z-Image, OmniGen2, Ideogram 4 share it): a layer's modulation output [rows, 4C] (or
    [rows, 1, 4C]) as (attention, MLP) modulations: a scale each and a tanh gate, no shift."""
    scale_msa, gate_msa, scale_mlp, gate_mlp = (output if output.ndim == 3 else output[:, None]).chunk(4, dim=-1)
    return Modulation(0.0, scale_msa, gate_msa.tanh()), Modulation(0.0, scale_mlp, gate_mlp.tanh())


def repeat_kv_heads(t: Tensor, kv_heads: int, heads: int, head_dim: int) -> Tensor:
    """[..., KV * D] -> [..., H * D]: each grouped key/value head repeated for the query heads it serves, as grouped
    query attention repeats it (head h reads key/value head h // (H / KV))."""
    repeat = heads // kv_heads
    if repeat == 1:
        return t
    return t.unflatten(-1, (kv_heads, 1, head_dim)).expand(*t.shape[:-1], kv_heads, repeat, head_dim).flatten(-3)


def generated_image_first(keys: Tensor, values: Tensor, outputs: Tensor, generated: int) -> ImageAttention:
    """The image stream's keys/values [B, H, N, D] and outputs [B, N, C] with the generated image's `generated`
    tokens, which come last in the block (after reference images'), rolled to the front."""
    reference = outputs.shape[1] - generated
    if generated <= 0 or reference <= 0:
        return ImageAttention(keys=keys, values=values, outputs=outputs)
    return ImageAttention(keys=keys.roll(-reference, dims=2), values=values.roll(-reference, dims=2),
                          outputs=outputs.roll(-reference, dims=1))


def patch_grid(latent: Tensor, patch: int) -> tuple[int, int]:
    """Rows and columns of patches once a forward pads the latent to whole patches (pad_to_patch_size)."""
    return -(-latent.shape[-2] // patch), -(-latent.shape[-1] // patch)


def text_before_image(block_args: dict) -> int:
    """A single-stream family's text tokens in an attention call over [text; image] (queries [B, H, L, D]): the
    call's tokens less the image tokens its concept_conditioning counted."""
    return block_args["q"].shape[2] - block_args["conditioning"]["image_tokens"]


def split_heads(t: Tensor, heads: int) -> Tensor:
    """[B, L, H*D] (heads flattened, as some joint attentions take them) -> [B, H, L, D]."""
    return t.reshape(t.shape[0], t.shape[1], heads, -1).transpose(1, 2)


class TypicalCfg(NamedTuple):
    """The cfg a family's models are usually sampled at, as the sampler's cfg tooltip names it."""

    value: str  # as users type it: "1.0", "2.5"
    about: bool = False  # a rough value ("about 4")


class ModelFamily:
    """One model family (Flux.1, Flux.2, Chroma, ...). Family code holds no method math: it hands ca_core the
    family's own modules and tensors. The defaults here fit a double-stream DiT over patch_size x patch_size
    latent cells whose text tokens carry no RoPE; a family overrides what differs."""

    # What users call it. Every text that names families (tooltips, translations, help pages, errors) is built
    # from these by families/user_text.py, in each language: "Flux.1 (dev, schnell, Kontext)", "Qwen-Image (and
    # Edit)"; proper nouns only, the words around them are user_text's.
    short_name: str  # "Flux.1"
    variants: tuple[str, ...] = ()  # the models it is, after short_name: ("dev", "schnell", "Kontext")
    also: tuple[str, ...] = ()  # further models it covers: ("Edit",) for Qwen-Image-Edit
    since_comfyui: str | None = None  # the first ComfyUI release that has it, where older supported ones do not
    typical_cfg: TypicalCfg | None = None  # None: the cfg tooltip leaves it out
    available = True  # whether this host has the family's model class (FAMILIES lists only those)
    video = False  # a video model: an IMAGE batch is one clip, and the maps have a time axis
    # how many of the last joint blocks `layers = auto` averages, or ALL_BLOCKS
    default_layers: int | AutoLayers = DEFAULT_LAST_BLOCKS
    hook = Hook.DIFFUSION_MODEL
    block_entry = BlockEntry.PATCHES_REPLACE
    # whether the model hands transformer_options to its attention function, so that an attention override another
    # node set runs there (the stream's own override chains it); False where only object_patches pass them on
    passes_attention_options = True
    # whether embed_concepts takes this call's conditioning (HunyuanVideo's token refiner takes the timestep); where
    # it does not, the concepts are embedded once per sampling run and the refiners and adapters run once
    concept_embedding_per_call = False
    vae_scale = 8  # pixels per latent cell, where the latent format does not say
    # how a concept's own tokens are found in its encoding (families/tokens.py)
    token_alignment = staticmethod(tokens.word_pieces)

    # -- what every family states

    def matches(self, diffusion_model) -> bool:
        """Whether this diffusion model belongs to the family."""
        raise NotImplementedError

    def joint_blocks(self, diffusion_model) -> Sequence:
        """The joint text-image blocks, in order; index i is patches_replace's ("double_block", i)."""
        raise NotImplementedError

    def concept_modulations(self, diffusion_model, index: int, block_args: dict, conditioning: Any, rows
                            ) -> tuple[ModulationParams, ModulationParams]:
        """(attention, MLP) modulations of the concepts in joint block `index`; MLP None where the text stream
        ends in the block (see text_stream)."""
        raise NotImplementedError

    def text_stream(self, diffusion_model, index: int) -> TextStreamWeights:
        """The text stream's modules of joint block `index`, which the concepts reuse. qkv may be a plain
        callable over separate q/k/v layers (Qwen-Image); proj, norm2 and mlp are None in a block whose text
        stream ends there (SD3's last context block): the concepts score in it but are not updated."""
        raise NotImplementedError

    def embed_concepts(self, diffusion_model, concept_context: Tensor, conditioning: Any,
                       positions: list[int] | None = None) -> Tensor:
        """Encoded concepts [B, K, C_text] into the text stream's width, as the family embeds its prompt;
        conditioning: this call's concept_conditioning (HunyuanVideo's token refiner takes the timestep);
        positions: each concept's text position (concept_position), for refiners whose text carries RoPE."""
        raise NotImplementedError

    def image_attention(self, diffusion_model, index: int, q: Tensor, k: Tensor, v: Tensor, out: Tensor,
                        text_tokens: int, image_tokens: int) -> ImageAttention:
        """The image tokens' keys, values and outputs, cut out of the block's joint attention, the generated
        image's `image_tokens` first (reference images' tokens, which the concepts also attend over, after)."""
        raise NotImplementedError

    # -- shared defaults

    def bind_call(self, executor, args: tuple, kwargs: dict) -> ModelCall:
        """The model call's arguments by name."""
        return bind_model_call(executor, args, kwargs)

    def concept_conditioning(self, call: ModelCall, rows) -> Any:
        """What concept_modulations needs for this call's batch rows `rows` (the positive prompt); None where
        the modulation arrives with each block's args."""
        return None

    def block_of_attention_call(self, number: int, attention_kwargs: dict, conditioning: Any) -> int | None:
        """BlockEntry.ATTENTION: the joint block whose joint attention is the model call's attention call `number`
        (counted from 0), or None for a call outside the joint blocks (a single-stream model's text and image
        refiners attend before its first joint block). attention_kwargs: the call's keyword arguments
        (transformer_options, ...); conditioning: this model call's concept_conditioning."""
        return number

    def concept_position(self, index: int, length: int) -> int:
        """The text RoPE position the model gives token `index` of an encoding `length` tokens long."""
        return index

    def concept_rope(self, diffusion_model, call: ModelCall, positions: list[int]) -> Rope:
        """The concepts' RoPE, or None where their positions are zero or the text has none (the identity).
        positions: each concept's token position in its own encoding (stream/encoding.py)."""
        return None

    def release_after_stream(self, diffusion_model, last: int) -> list[tuple[str, int]]:
        """Memory workaround: blocks after the stream whose replacement empties the dict the stream's last
        block returned (where the family's forward keeps it alive). [] when not needed."""
        return []

    def modulation_layers(self, diffusion_model, index: int) -> list:
        """The layers inside joint block `index` whose call computes the text stream's modulation (the concepts'
        modulation reuses their cast weights, stream/shared_casts.py); [] where it comes from outside the block."""
        return []

    def text_tokens(self, block_args: dict) -> int:
        """How many text tokens the block's joint attention holds: the block's context."""
        return block_args["txt"].shape[1]

    def token_grid(self, diffusion_model, x: Tensor) -> tuple[int, ...]:
        """Rows and columns of the generated image's token grid for latent x, rounded to whole patches as Flux's
        and Qwen-Image's forward do; (frames, rows, columns) for a video family, whose image tokens run frame by
        frame, each frame row-major."""
        p = diffusion_model.patch_size
        return (x.shape[-2] + p // 2) // p, (x.shape[-1] + p // 2) // p

    def scored_image_tokens(self, call: ModelCall, grid: tuple[int, ...]) -> int | Tensor:
        """The generated image's tokens among the joint attention's image tokens: how many come first (any
        reference images' tokens after them), or their indices in grid order where a reference interleaves with
        them (HiDream-E1's, beside the image in every row)."""
        return math.prod(grid)

    def latent_pixels(self, model) -> int:
        """Image pixels per latent cell side, from the MODEL's latent format where the host states it."""
        return getattr(model.get_model_object("latent_format"), "spacial_downscale_ratio", self.vae_scale)

    def token_pixels(self, model) -> int:
        """Image pixels per token side."""
        return model.get_model_object("diffusion_model").patch_size * self.latent_pixels(model)

    def video_frame_tokens(self, diffusion_model, latent_frames: int) -> tuple[int, ...]:
        """For each frame the family's VAE decodes from `latent_frames` latent frames, the token frame that covers
        it (causal_video_frame_tokens); () for image families."""
        return ()

    def object_patches(self, diffusion_model) -> dict[str, Any]:
        """Modules to put in place of the diffusion model's own on the patched clone (ModelPatcher.add_object_patch,
        by their path under the diffusion model), for a model with no hook the stream can use: Ernie-Image's
        attention, which passes no transformer_options to its attention function. {} for the rest."""
        return {}

    def watch_call(self, diffusion_model, conditioning: Any) -> contextlib.AbstractContextManager:
        """Entered around the model's forward once the stream is open: where the concepts' modulation is the
        text tokens' own (CogVideoX), the family keeps the modulation layers' outputs in conditioning as they
        run, rather than running those layers again for the concepts."""
        return contextlib.nullcontext()

    def segmentation_conditioning(self, diffusion_model) -> dict:
        """Conditioning extras for the caption when an existing image is segmented (no pooled vector, no
        guidance by default)."""
        return {}

    def concept_states(self, clip, tokens: dict) -> Tensor:
        """A concept's encoding [1, T, C] that its own tokens (concept_token_indices) are pooled from: the text
        encoder's context; a family whose blocks take more of the encoding (HiDream's Llama layer states) adds it
        in further channels, which its embed_concepts reads. tokens: clip.tokenize(name, return_word_ids=True)."""
        return clip.encode_from_tokens(tokens)

    def block_concepts(self, diffusion_model, index: int, concepts: Tensor, conditioning: Any) -> Tensor:
        """The concept tokens joint block `index` runs: the stream's own [B, K', C] (the default), then any the
        block takes for itself alone, as its prompt does (HiDream's concepts' Llama layer-i states); those leave
        with the block."""
        return concepts

    def concept_token_indices(self, clip, name: str, tokens: dict, length: int) -> list[int]:
        """Positions of the concept's own tokens (no start, end, padding or chat-template tokens) in its
        encoder output of `length` positions; tokens: clip.tokenize(name, return_word_ids=True)."""
        return self.token_alignment(clip, name, tokens, length)
