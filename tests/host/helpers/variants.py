"""Every supported family and its variants, as tiny models: what tests/host/test_family_contract.py runs its
contract on. A family (keyed by its module in nodes/families/, e.g. "qwen_image") has one Variant per model
version or mode that reaches its concept stream another way: another config (Flux.1 dev's guidance embedding),
another input (Chroma Radiance's pixels), another conditioning (Qwen-Image-Edit's reference latent).

A new family in ca.nodes.families.FAMILIES needs at least one variant here, and every check's data in at least
one of its variants (the contract's coverage test fails otherwise). A variant leaves out (None) only a check
that needs what no tiny build has: Segment Image on HunyuanVideo 1.5 and HunyuanImage 2.1 (no VAE of their
latent layouts here), on the no-pooled HunyuanVideo (see its entry), and on Qwen-Image-Edit (Segment Image passes
no reference latent: its run is Qwen-Image's).
"""

import dataclasses
import inspect
from collections.abc import Callable

import comfy.ldm.qwen_image.model
import comfy.supported_models
import torch

from . import models, planted
from .models import POOLED_DIM

# `layers = auto` per family: how many of the last joint blocks it averages, or None for every block
AUTO_LAST_BLOCKS = {"flux": 4, "chroma": 4, "flux2": 3, "sd3": None, "qwen_image": 4, "hunyuan_video": 4,
                    "cogvideox": None, "z_image": 4, "krea2": 4,
                    "ideogram4": 4, "omnigen2": 4, "ernie": 4, "longcat_image": 4,
                    "mage_flow": 4, "aura_flow": 4, "lens": 4, "joyimage": 4, "hidream": 4, "mochi": 4,
                    "pixeldit": 4, "boogu": 4}


@dataclasses.dataclass(frozen=True)
class Planted:
    """A planted build of the variant (helpers/planted.py) and how its latents are drawn."""

    model: Callable[[], object]
    latent: Callable[[int, int, int], torch.Tensor]  # (cells high, cells wide, boundary token column) -> latent
    cells: int = 2  # latent cells per token side
    cell_pixels: int = 8  # pixels per latent cell
    pooled: torch.Tensor | None = None
    # an edit reference (all 'left', a grid of its own) as the conditioning carries it; None: the variant takes none
    reference: Callable[[torch.Tensor], torch.Tensor] | None = None
    # where the conditioning carries it: a list of references, or "concat_latent_image" (HiDream-E1's reference
    # beside the latent, at the latent's size, as InstructPixToPixConditioning gives it)
    reference_key: str = "reference_latents"
    conditioning: dict = dataclasses.field(default_factory=dict)  # what the prompt carries beside its states
    # the model takes whole patches only (Mochi's patch embedding asserts it, plain sampling included): no odd sizes
    whole_patches: bool = False


@dataclasses.dataclass(frozen=True)
class Segment:
    """Segment Image on the variant: its VAE, the IMAGE batch's (frames, height, width) and what comes out."""

    vae: Callable[[], object]
    image: tuple[int, int, int]
    maps: tuple[int, ...]  # the maps' shape for concepts "dog, grass"
    noise_samples: int = 2
    attributes: dict = dataclasses.field(default_factory=dict)  # ConceptMaps attributes it must have


@dataclasses.dataclass(frozen=True)
class Variant:
    family: str  # the family's module in nodes/families/
    name: str
    model: Callable[..., object]  # (seed, depth) -> a tiny MODEL
    clip: Callable[[], object]
    latent: tuple[int, ...]  # (channels, [frames,] rows, columns) of the contract's latents: non-square
    grid: tuple[int, ...]  # the maps' ([token frames,] rows, columns) on that latent
    cell_pixels: int = 8  # pixels per latent cell
    token_pixels: int = 16  # pixels per token side
    alignment: tuple[int, ...] = ()  # the positions of concept "traffic light"'s own tokens in its encoding
    available: bool = True  # whether this host has the variant
    requires: str = ""  # the oldest tested ComfyUI version that has it (named by the skip on older hosts)
    condition: Callable[[dict], dict] | None = None  # conditioning the variant adds to both prompts
    equations: dict | None = dataclasses.field(default_factory=dict)  # settings of expected_scores; None: none
    planted: Planted | None = None
    segment: Segment | None = None

    @property
    def id(self) -> str:
        return f"{self.family}-{self.name}"

    @property
    def frames(self) -> int:
        """Token frames of the maps (1 for an image)."""
        return self.grid[0] if len(self.grid) == 3 else 1

    def inputs(self, batch: int, cfg: float, **changes) -> dict:
        """KSampler's inputs on the variant's latent, with its conditioning."""
        from .sampling import sampler_inputs

        channels, *size = self.latent
        inputs = {**sampler_inputs(self.clip(), batch, cfg, size=tuple(size), channels=channels), **changes}
        return self.condition(inputs) if self.condition is not None else inputs


def cached(builder):
    """One instance per process of a builder without arguments (text encoders are slow to build, and never
    changed by the tests that share them)."""
    built = []

    def get():
        if not built:
            built.append(builder())
        return built[0]

    return get


flux_clip, chroma_clip, flux2_clip = cached(models.tiny_clip), cached(models.tiny_chroma_clip), cached(
    models.tiny_flux2_clip)
sd3_clip, qwen_clip, cogvideox_clip = cached(models.tiny_sd3_clip), cached(models.tiny_qwen_image_clip), cached(
    models.tiny_cogvideox_clip)
z_image_clip, lumina2_clip = cached(models.tiny_z_image_clip), cached(models.tiny_lumina2_clip)
krea2_clip, ideogram4_clip = cached(models.tiny_krea2_clip), cached(models.tiny_ideogram4_clip)
omnigen2_clip, longcat_image_clip = cached(models.tiny_omnigen2_clip), cached(models.tiny_longcat_image_clip)
mage_flow_clip = cached(models.tiny_mage_flow_clip)
lens_clip = cached(models.tiny_lens_clip)
joyimage_clip = cached(models.tiny_joyimage_clip)
pixeldit_clip = cached(models.tiny_pixeldit_clip)
aura_flow_clip = cached(models.tiny_aura_flow_clip)
hidream_clip = cached(models.tiny_hidream_clip)
mochi_clip = cached(models.tiny_mochi_clip)
boogu_clip = cached(models.tiny_boogu_clip)


def with_reference(inputs: dict, source: torch.Tensor) -> dict:
    """Both prompts carry a reference latent, as ReferenceLatent (or TextEncodeQwenImageEdit) adds it."""
    return {**inputs, **{key: [[c, {**extra, "reference_latents": [source]}] for c, extra in inputs[key]]
                         for key in ("positive", "negative")}}


def with_image_beside(inputs: dict) -> dict:
    """HiDream-E1: both prompts carry their Llama states and a source image's latent beside the generated one, as
    InstructPixToPixConditioning gives it (the latent's size)."""
    source = torch.randn(1, 16, *inputs["latent_image"]["samples"].shape[-2:], generator=torch.Generator().manual_seed(4))
    inputs = with_llama_states(inputs)
    return {**inputs, **{key: [[c, {**extra, "concat_latent_image": source}] for c, extra in inputs[key]]
                         for key in ("positive", "negative")}}


def source_latent(height: int, width: int) -> torch.Tensor:
    """A source image's latent as Wan 2.1's VAE (Qwen-Image's) encodes it: [B, C, frames, H, W]."""
    return torch.randn(1, 16, 1, height, width, generator=torch.Generator().manual_seed(4))


def qwen_edit(seed: int, depth: int, method: str):
    """A tiny Qwen-Image whose reference method is `method` ("index" is every host's default, and the only
    method before ComfyUI 0.8, which has no setting for it)."""
    return models.tiny_qwen_image(seed, depth, ref_method=None if method == "index" else method)


HAS_FLUX2 = hasattr(comfy.supported_models, "Flux2")
HAS_HUNYUAN_VIDEO_15 = hasattr(comfy.supported_models, "HunyuanVideo15")
HAS_HUNYUAN_IMAGE_21 = hasattr(comfy.supported_models, "HunyuanImage21")
HAS_COGVIDEOX = hasattr(comfy.supported_models, "CogVideoX_T2V")
# Qwen-Image-Edit 2511's reference method (its tokens modulated as at t = 0), from ComfyUI 0.8 on
HAS_TIMESTEP_ZERO = "timestep_zero_index" in inspect.getsource(comfy.ldm.qwen_image.model)

HAS_Z_IMAGE = hasattr(comfy.supported_models, "ZImage")
HAS_Z_IMAGE_PIXEL_SPACE = hasattr(comfy.supported_models, "ZImagePixelSpace")
HAS_KREA2 = hasattr(comfy.supported_models, "Krea2")
HAS_IDEOGRAM4 = hasattr(comfy.supported_models, "Ideogram4")
HAS_ERNIE = hasattr(comfy.supported_models, "ErnieImage")
HAS_LONGCAT_IMAGE = hasattr(comfy.supported_models, "LongCatImage")
HAS_MAGE_FLOW = hasattr(comfy.supported_models, "MageFlow")
HAS_LENS = hasattr(comfy.supported_models, "Lens")
HAS_JOYIMAGE = hasattr(comfy.supported_models, "JoyImage")
HAS_HIDREAM = hasattr(comfy.supported_models, "HiDream")
HAS_PIXELDIT = hasattr(comfy.supported_models, "PixelDiTT2I")
HAS_BOOGU = hasattr(comfy.supported_models, "Boogu")
# NextDiT's first caption position: 1 from ComfyUI 0.8 on (the release that added Z-Image), 0 before
CAPTION_START = 1 if HAS_Z_IMAGE else 0


def with_attention_mask(inputs: dict) -> dict:
    """Both prompts carry their attention mask, as CLIPTextEncode passes Lumina 2's (ComfyUI before 0.8 takes the
    caption's length from it)."""
    return {**inputs, **{key: [[c, {**extra, "attention_mask": torch.ones(1, c.shape[1], dtype=torch.long)}]
                               for c, extra in inputs[key]] for key in ("positive", "negative")}}


def with_newbie_pooled(inputs: dict) -> dict:
    """with_attention_mask, and a pooled CLIP vector on both prompts, as NewBie's text encoders give one."""
    pooled = torch.randn(1, POOLED_DIM, generator=torch.Generator().manual_seed(6))
    inputs = with_attention_mask(inputs)
    return {**inputs, **{key: [[c, {**extra, "pooled_output": pooled}] for c, extra in inputs[key]]
                         for key in ("positive", "negative")}}


def with_low_resolution_latent(inputs: dict) -> dict:
    """Both prompts carry a low-resolution image's latent and its degrade sigma, as PiDConditioning adds them."""
    latent = torch.randn(1, 16, 2, 3, generator=torch.Generator().manual_seed(7))
    extras = {"lq_latent": latent, "degrade_sigma": torch.tensor([0.2])}
    return {**inputs, **{key: [[c, {**extra, **extras}] for c, extra in inputs[key]] for key in ("positive", "negative")}}


def with_prompt_masks(inputs: dict) -> dict:
    """Both prompts carry their encoder's attention mask, as CLIPTextEncode passes Mochi's (its T5 pads to 256 tokens;
    the model pools the valid ones and cuts the text to them)."""
    clip, changed = mochi_clip(), dict(inputs)
    for key, text in (("positive", "a red dog on green grass"), ("negative", "blurry")):  # sampler_inputs' prompts
        encoded = clip.encode_from_tokens(clip.tokenize(text), return_dict=True)
        [[cond, extra]] = inputs[key]
        assert torch.equal(cond, encoded["cond"]), f"the {key} prompt is not {text!r}"
        changed[key] = [[cond, {**extra, "attention_mask": encoded["attention_mask"]}]]
    return changed


def with_llama_states(inputs: dict) -> dict:
    """Both prompts carry their Llama states, as CLIPTextEncode passes HiDream's (sampler_inputs' prompts)."""
    clip = hidream_clip()
    texts = {"positive": "a red dog on green grass", "negative": "blurry"}
    return {**inputs, **{key: [[c, {**extra, "conditioning_llama3": clip.encode_from_tokens(
        clip.tokenize(texts[key]), return_dict=True)["conditioning_llama3"]}] for c, extra in inputs[key]]
        for key in texts}}


IMAGE_SEGMENT = Segment(models.random_vae, (1, 48, 80), (1, 2, 3, 5))
T5_ALIGNMENT = (0, 1)  # "traffic light": T5's two word pieces, first
GEMMA_ALIGNMENT = (1, 2)  # after Gemma's start token (Lumina 2's tokenizer over its stand-in vocabulary)

VARIANTS = (
    Variant("flux", "dev", lambda seed, depth: models.tiny_flux(seed, True, depth=depth), flux_clip, (16, 8, 12),
            (4, 6), alignment=T5_ALIGNMENT, segment=IMAGE_SEGMENT,
            planted=Planted(lambda: planted.planted_flux(guidance_embed=True), planted.planted_latent,
                            pooled=torch.zeros(1, models.POOLED_DIM), reference=lambda latent: latent)),  # Kontext
    Variant("flux", "schnell", lambda seed, depth: models.tiny_flux(seed, False, depth=depth), flux_clip,
            (16, 8, 12), (4, 6), alignment=T5_ALIGNMENT, segment=IMAGE_SEGMENT,
            planted=Planted(planted.planted_flux, planted.planted_latent, pooled=torch.zeros(1, models.POOLED_DIM))),
    Variant("chroma", "chroma", lambda seed, depth: models.tiny_chroma(seed, depth=depth), chroma_clip, (16, 8, 12),
            (4, 6), alignment=T5_ALIGNMENT, segment=IMAGE_SEGMENT,
            planted=Planted(planted.planted_chroma, planted.planted_latent, pooled=torch.zeros(1, models.POOLED_DIM))),
    # Radiance: the 'latent' is the image; 16-pixel patches, a grid that rounds up (40 x 72 pixels: 3 x 5 tokens)
    Variant("chroma", "radiance", lambda seed, depth: models.tiny_chroma(seed, radiance=True, depth=depth),
            chroma_clip, (3, 40, 72), (3, 5), cell_pixels=1, alignment=T5_ALIGNMENT,
            segment=Segment(models.pixel_space_vae, (1, 48, 80), (1, 2, 3, 5)),
            planted=Planted(planted.planted_chroma_radiance, planted.planted_pixels, cells=16, cell_pixels=1,
                            pooled=torch.zeros(1, models.POOLED_DIM))),
    Variant("flux2", "klein", lambda seed, depth: models.tiny_flux2(seed, depth=depth), flux2_clip, (128, 4, 6),
            (4, 6), cell_pixels=16, alignment=(3, 4), available=HAS_FLUX2, requires="0.8",
            segment=Segment(models.random_flux2_vae, (1, 64, 96), (1, 2, 4, 6)),
            planted=Planted(planted.planted_flux2, lambda h, w, boundary: planted.planted_cells(h, w, boundary, 128),
                            cells=1, cell_pixels=16, reference=lambda latent: latent)),
    # SD3 medium's geometry, SD3.5 large's q/k RMSNorm, SD3.5 medium's extra image self-attention
    *(Variant("sd3", name, lambda seed, depth, settings=settings: models.tiny_sd3(seed, depth, **settings), sd3_clip,
              (16, 8, 12), (4, 6), alignment=(1, 2), segment=IMAGE_SEGMENT,
              planted=Planted(lambda settings=settings: planted.planted_sd3(**settings), planted.planted_latent,
                              pooled=torch.zeros(1, models.POOLED_DIM)))
      for name, settings in (("sd3", {}), ("sd3.5-large", {"qk_norm": "rms"}),
                             ("sd3.5-medium", {"qk_norm": "rms", "x_block_self_attn_layers": (0, 1)}))),
    # HiDream-I1 (Full, Dev and Fast share one architecture): T5's 128 tokens, every Llama layer in the conditioning
    Variant("hidream", "hidream-i1", lambda seed, depth: models.tiny_hidream(seed, depth), hidream_clip, (16, 8, 12),
            (4, 6), alignment=T5_ALIGNMENT, available=HAS_HIDREAM, requires="0.3.64", condition=with_llama_states,
            segment=IMAGE_SEGMENT,
            planted=Planted(planted.planted_hidream, planted.planted_latent,
                            pooled=torch.zeros(1, models.HIDREAM_POOLED_DIM), conditioning={
                                "conditioning_llama3": torch.zeros(1, models.HIDREAM_LLAMA_LAYERS, 4,
                                                                   models.HIDREAM_LLAMA_WIDTH)})),
    # HiDream-E1: the edit reference beside the latent, so each token row holds the generated image's, then its own
    Variant("hidream", "hidream-e1", lambda seed, depth: models.tiny_hidream(seed, depth), hidream_clip, (16, 8, 12),
            (4, 6), alignment=T5_ALIGNMENT, available=HAS_HIDREAM, requires="0.3.64", condition=with_image_beside,
            planted=Planted(planted.planted_hidream, planted.planted_latent,
                            pooled=torch.zeros(1, models.HIDREAM_POOLED_DIM), reference=lambda latent: latent,
                            reference_key="concat_latent_image", conditioning={
                                "conditioning_llama3": torch.zeros(1, models.HIDREAM_LLAMA_LAYERS, 4,
                                                                   models.HIDREAM_LLAMA_WIDTH)})),
    # AuraFlow: SDXL's 4-channel latent; the prompt padded to 256 Pile-T5 tokens, "traffic light" its first two
    Variant("aura_flow", "auraflow", lambda seed, depth: models.tiny_aura_flow(seed, depth), aura_flow_clip,
            (4, 8, 12), (4, 6), alignment=(0, 1),
            segment=Segment(lambda: models.random_vae(channels=4), (1, 48, 80), (1, 2, 3, 5)),
            planted=Planted(planted.planted_aura_flow,
                            lambda h, w, boundary: planted.planted_latent(h, w, boundary, channels=4))),
    Variant("qwen_image", "qwen-image", lambda seed, depth: models.tiny_qwen_image(seed, depth), qwen_clip,
            (16, 8, 12), (4, 6), alignment=(0, 1),
            segment=Segment(models.random_wan21_vae, (1, 48, 80), (1, 2, 3, 5)),
            planted=Planted(planted.planted_qwen_image, planted.planted_latent,
                            pooled=torch.zeros(1, models.POOLED_DIM))),
    # Qwen-Image-Edit: a reference latent (a grid of another size) on both prompts; "index" places it as a frame
    # of its own, 2511's "index_timestep_zero" (ComfyUI 0.8 on) also modulates its tokens as at t = 0
    *(Variant("qwen_image", f"edit-{method}", lambda seed, depth, method=method: qwen_edit(seed, depth, method),
              qwen_clip, (16, 8, 12), (4, 6), alignment=(0, 1), available=available, requires="0.8",
              condition=lambda inputs: with_reference(inputs, source_latent(6, 8)),
              equations={"timestep_zero": method == "index_timestep_zero"},
              planted=Planted(lambda method=method: planted.planted_qwen_image(None if method == "index" else method),
                              planted.planted_latent, pooled=torch.zeros(1, models.POOLED_DIM),
                              reference=lambda latent: latent.unsqueeze(2)))  # Wan 2.1's [B, C, frames, H, W]
      for method, available in (("index", True), ("index_timestep_zero", HAS_TIMESTEP_ZERO))),
    # LongCat-Image (ComfyUI 0.33 on): Flux.1's latent; the prompt padded to 512 tokens, "traffic light" its first two
    Variant("longcat_image", "longcat-image", lambda seed, depth: models.tiny_longcat_image(seed, depth),
            longcat_image_clip, (16, 8, 12), (4, 6), alignment=(0, 1), available=HAS_LONGCAT_IMAGE, requires="0.33",
            segment=IMAGE_SEGMENT, planted=Planted(planted.planted_longcat_image, planted.planted_latent)),
    # Mage-Flow (ComfyUI 0.33 on): Qwen-Image's blocks on Flux.2's latent, one token per latent cell
    Variant("mage_flow", "mage-flow", lambda seed, depth: models.tiny_mage_flow(seed, depth), mage_flow_clip,
            (128, 4, 6), (4, 6), cell_pixels=16, alignment=(0, 1), available=HAS_MAGE_FLOW, requires="0.33",
            segment=Segment(models.random_flux2_vae, (1, 64, 96), (1, 2, 4, 6)),
            planted=Planted(planted.planted_mage_flow, lambda h, w, boundary: planted.planted_cells(h, w, boundary, 128),
                            cells=1, cell_pixels=16)),
    # Lens (ComfyUI 0.33 on): Flux.2's latent, one token per latent cell; its encoder drops the Harmony template's
    # head, so "traffic light" is the context's first two tokens (over the stand-in vocabulary: one token a word)
    Variant("lens", "lens", lambda seed, depth: models.tiny_lens(seed, depth), lens_clip, (128, 4, 6), (4, 6),
            cell_pixels=16, alignment=(0, 1), available=HAS_LENS, requires="0.33",
            segment=Segment(models.random_flux2_vae, (1, 64, 96), (1, 2, 4, 6)),
            planted=Planted(planted.planted_lens, lambda h, w, boundary: planted.planted_cells(h, w, boundary, 128),
                            cells=1, cell_pixels=16)),
    # JoyImage (ComfyUI 0.33 on): Wan 2.1's latent as one frame; its encoder keeps "user\n" before the prompt, so
    # "traffic light" is the context's tokens 2 and 3
    Variant("joyimage", "joyimage", lambda seed, depth: models.tiny_joyimage(seed, depth), joyimage_clip, (16, 8, 12),
            (4, 6), alignment=(2, 3), available=HAS_JOYIMAGE, requires="0.33",
            segment=Segment(models.random_wan21_vae, (1, 48, 80), (1, 2, 3, 5))),
    # JoyImage-Edit: a reference latent (a grid of another size, at a frame of its own) on both prompts
    Variant("joyimage", "edit", lambda seed, depth: models.tiny_joyimage(seed, depth), joyimage_clip, (16, 8, 12),
            (4, 6), alignment=(2, 3), available=HAS_JOYIMAGE, requires="0.33",
            condition=lambda inputs: with_reference(inputs, source_latent(6, 8)),
            planted=Planted(planted.planted_joyimage, planted.planted_latent,
                            reference=lambda latent: latent.unsqueeze(2))),  # Wan 2.1's [B, C, frames, H, W]
    # PixelDiT (ComfyUI 0.33 on): pixel space, 16-pixel patches, a grid that rounds up (40 x 72 pixels: 3 x 5 tokens);
    # its encoder keeps the start token and the chi prompt's last piece (over the stand-in vocabulary: one a word)
    Variant("pixeldit", "pixeldit", lambda seed, depth: models.tiny_pixeldit(seed, depth), pixeldit_clip, (3, 40, 72),
            (3, 5), cell_pixels=1, alignment=(2, 3), available=HAS_PIXELDIT, requires="0.33",
            segment=Segment(models.pixel_space_vae, (1, 48, 80), (1, 2, 3, 5)),
            planted=Planted(planted.planted_pixeldit, planted.planted_pixels, cells=16, cell_pixels=1)),
    # PiD: PixelDiT's blocks, and a low-resolution image's latent (PiDConditioning's) on both prompts; its reference
    # equations would be PixelDiT's with the latent's features added to the image, which no check here needs
    Variant("pixeldit", "pid", lambda seed, depth: models.tiny_pixeldit(seed, depth, pid=True), pixeldit_clip,
            (3, 40, 72), (3, 5), cell_pixels=1, alignment=(2, 3), available=HAS_PIXELDIT, requires="0.33",
            condition=with_low_resolution_latent, equations=None),
    # Z-Image (Turbo and Base share one architecture): captions and images padded to 32 tokens with pad tokens
    Variant("z_image", "turbo", lambda seed, depth: models.tiny_z_image(seed, depth), z_image_clip, (16, 8, 12), (4, 6),
            alignment=(3, 4), available=HAS_Z_IMAGE, requires="0.8", segment=IMAGE_SEGMENT,
            equations={"caption_start": CAPTION_START},
            planted=Planted(planted.planted_z_image, planted.planted_latent)),
    # Lumina 2: grouped key/value heads, the modulation's SiLU, no pad tokens; every host
    Variant("z_image", "lumina2", lambda seed, depth: models.tiny_lumina2(seed, depth), lumina2_clip, (16, 7, 11),
            (4, 6), alignment=GEMMA_ALIGNMENT, condition=with_attention_mask, segment=IMAGE_SEGMENT,
            equations={"caption_start": CAPTION_START}),
    # NewBie (Lumina 2 with a pooled CLIP vector in its modulation; ComfyUI 0.8 on): zero for the concepts
    Variant("z_image", "newbie", lambda seed, depth: models.tiny_lumina2(seed, depth, clip_text_dim=POOLED_DIM),
            lumina2_clip, (16, 8, 12), (4, 6), alignment=GEMMA_ALIGNMENT, available=HAS_Z_IMAGE, requires="0.8",
            condition=with_newbie_pooled, equations={"caption_start": CAPTION_START}),
    # Krea 2 (ComfyUI 0.33 on): Wan 2.1's latent, as Qwen-Image's
    Variant("krea2", "krea2", lambda seed, depth: models.tiny_krea2(seed, depth), krea2_clip, (16, 8, 12), (4, 6),
            alignment=(0, 1), available=HAS_KREA2, requires="0.33",
            segment=Segment(models.random_wan21_vae, (1, 48, 80), (1, 2, 3, 5)),
            planted=Planted(planted.planted_krea2, planted.planted_latent)),
    # Ideogram 4 (ComfyUI 0.33 on): Flux.2's latent, one token per latent cell
    Variant("ideogram4", "ideogram4", lambda seed, depth: models.tiny_ideogram4(seed, depth), ideogram4_clip,
            (128, 4, 6), (4, 6), cell_pixels=16, alignment=(3, 4), available=HAS_IDEOGRAM4, requires="0.33",
            segment=Segment(models.random_flux2_vae, (1, 64, 96), (1, 2, 4, 6)),
            planted=Planted(planted.planted_ideogram4,
                            lambda h, w, boundary: planted.planted_cells(h, w, boundary, 128),
                            cells=1, cell_pixels=16)),
    # Ernie-Image (ComfyUI 0.33 on): Flux.2's latent in 1 x 1 patches; the tiny T5 stands in for Ministral 3, whose
    # tokenizer comes with the model's weights
    Variant("ernie", "ernie", lambda seed, depth: models.tiny_ernie(seed, depth), flux_clip, (128, 4, 6), (4, 6),
            cell_pixels=16, alignment=T5_ALIGNMENT, available=HAS_ERNIE, requires="0.33",
            segment=Segment(models.random_flux2_vae, (1, 64, 96), (1, 2, 4, 6)),
            planted=Planted(planted.planted_ernie, lambda h, w, boundary: planted.planted_cells(h, w, boundary, 128),
                            cells=1, cell_pixels=16)),
    # OmniGen2: every host; its model takes the caption's length from the attention mask
    Variant("omnigen2", "omnigen2", lambda seed, depth: models.tiny_omnigen2(seed, depth), omnigen2_clip, (16, 7, 11),
            (4, 6), alignment=(23, 24), condition=with_attention_mask, segment=IMAGE_SEGMENT,
            planted=Planted(planted.planted_omnigen2, planted.planted_latent,
                            conditioning={"attention_mask": torch.ones(1, 4, dtype=torch.long)})),
    # Boogu (ComfyUI 0.33 on): OmniGen2's inputs; "traffic light" after its chat template's system prompt
    Variant("boogu", "boogu", lambda seed, depth: models.tiny_boogu(seed, depth), boogu_clip, (16, 7, 11), (4, 6),
            alignment=(29, 30), available=HAS_BOOGU, requires="0.33", condition=with_attention_mask,
            segment=IMAGE_SEGMENT,
            planted=Planted(planted.planted_boogu, planted.planted_latent,
                            conditioning={"attention_mask": torch.ones(1, 4, dtype=torch.long)})),
    # 5 latent frames (17 video frames): a causal video VAE's first frame alone, then 4 per latent frame
    Variant("hunyuan_video", "1.0", lambda seed, depth: models.tiny_hunyuan_video(seed, depth), flux_clip,
            (16, 5, 8, 12), (5, 4, 6), alignment=T5_ALIGNMENT,
            segment=Segment(models.random_wan21_vae, (17, 32, 48), (5, 2, 2, 3), noise_samples=1,
                            attributes={"frames": 5, "output_frames": 17}),
            planted=Planted(planted.planted_hunyuan_video, planted.planted_latent,
                            pooled=torch.zeros(1, models.POOLED_DIM))),
    # HunyuanVideo 1.5's and HunyuanImage 2.1's conditioning (no pooled vector or guidance) on every host
    Variant("hunyuan_video", "no-pooled",
            lambda seed, depth: models.tiny_hunyuan_video(seed, depth, pooled=False, guidance_embed=False), flux_clip,
            (16, 5, 8, 12), (5, 4, 6), alignment=T5_ALIGNMENT,
            segment=Segment(models.random_wan21_vae, (17, 32, 48), (5, 2, 2, 3), noise_samples=1,
                            attributes={"frames": 5, "output_frames": 17}),
            planted=Planted(lambda: planted.planted_hunyuan_video("no-pooled"), planted.planted_latent)),
    # HunyuanVideo 1.5: 32 latent channels, 16 pixels per latent cell
    Variant("hunyuan_video", "1.5", models.tiny_hunyuan_video_15, flux_clip, (32, 5, 8, 12), (5, 4, 6),
            cell_pixels=16, token_pixels=32, alignment=T5_ALIGNMENT, available=HAS_HUNYUAN_VIDEO_15, requires="0.8",
            planted=Planted(lambda: planted.planted_hunyuan_video("1.5"),
                            lambda h, w, boundary: planted.planted_latent(h, w, boundary, channels=32),
                            cell_pixels=16)),
    # HunyuanImage 2.1: one frame of 2-D 1 x 1 patches, 32 pixels per latent cell
    Variant("hunyuan_video", "image-2.1", models.tiny_hunyuan_image_21, flux_clip, (64, 6, 10), (6, 10),
            cell_pixels=32, token_pixels=32, alignment=T5_ALIGNMENT, available=HAS_HUNYUAN_IMAGE_21, requires="0.3.64",
            planted=Planted(lambda: planted.planted_hunyuan_video("image-2.1"),
                            lambda h, w, boundary: planted.planted_cells(h, w, boundary, 64), cells=1,
                            cell_pixels=32)),
    # CogVideoX (ComfyUI 0.33 on): 1.0 2B (sincos positions), 1.0 5B (RoPE), 1.5 5B (RoPE, 2 latent frames per
    # token frame: 3 latent frames pad to 2 token frames)
    *(Variant("cogvideox", version, lambda seed, depth, version=version: models.tiny_cogvideox(seed, version,
                                                                                               depth=depth),
              cogvideox_clip, (16, 3, 8, 12), (2 if version == "1.5" else 3, 4, 6), alignment=T5_ALIGNMENT,
              available=HAS_COGVIDEOX, requires="0.33",
              # 5 frames give 2 latent frames: 1.0's 2 token frames (the first frame alone, then 4), 1.5's one pair
              segment=Segment(models.random_wan21_vae, (5, 32, 48), (1 if version == "1.5" else 2, 2, 2, 3),
                              noise_samples=1, attributes={"images": 1, "output_frames": 5, **(
                                  {"frames": 1, "video_frames": (0,) * 5} if version == "1.5" else
                                  {"frames": 2, "video_frames": (0, 1, 1, 1, 1)})}),
              planted=Planted(lambda version=version: planted.planted_cogvideox(version), planted.planted_latent))
      for version in models.COGVIDEOX_VERSIONS),
    # Mochi: 12 latent channels, 3 latent frames (13 video frames: the first alone, then 6 per latent frame); the
    # prompts' T5 masks cut the text to its valid tokens. 7 frames give 2 latent frames.
    Variant("mochi", "mochi", lambda seed, depth: models.tiny_mochi(seed, depth), mochi_clip, (12, 3, 8, 12),
            (3, 4, 6), alignment=T5_ALIGNMENT, condition=with_prompt_masks,
            segment=Segment(models.random_mochi_vae, (7, 32, 48), (2, 2, 2, 3), noise_samples=1,
                            attributes={"frames": 2, "output_frames": 7, "video_frames": (0, 1, 1, 1, 1, 1, 1)}),
            planted=Planted(planted.planted_mochi,
                            lambda h, w, boundary: planted.planted_latent(h, w, boundary, channels=12),
                            conditioning=planted.MOCHI_PROMPT_MASK, whole_patches=True)),
)

FAMILY_NAMES = tuple(dict.fromkeys(variant.family for variant in VARIANTS))
# the families whose joint blocks have no patches_replace entries: the stream reaches them through their attention
# calls (BlockEntry.ATTENTION; test_family_contract.py checks this list against the families)
ATTENTION_ENTRY_FAMILIES = ("cogvideox", "z_image", "krea2", "ideogram4", "ernie", "omnigen2", "hidream",
                            "pixeldit", "boogu")
