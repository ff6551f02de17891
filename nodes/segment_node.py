"""Concept Attention Segment Image: concept maps for an existing image (the paper's zero-shot mode).

The image is encoded, noised to one flow time, and passed once through the model per noise
sample; the pass stops right after the last double block whose scores are needed. A batch of images goes
through in chunks that fit in memory, each with the noise the whole batch's draw gives its images, so the
maps do not depend on the chunk size.
"""

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from ..ca_core.maps import ConceptMaps, concatenated
from .common import concept_inputs, prepare_patch
from .families import FAMILIES, user_text
from .schema_options import advanced, search_aliases
from .socket_types import ConceptMapsType
from .stream import StopAfterLastLayer


class ConceptAttentionSegmentImage(io.ComfyNode):
    @classmethod
    def define_schema(cls) -> io.Schema:
        return io.Schema(
            node_id="ConceptAttentionSegmentImage",
            display_name="Concept Attention Segment Image",
            category="conceptattention",
            description="Maps where each concept is in an existing image (zero-shot segmentation): encode, "
                        "add noise, one partial model pass per noise sample.",
            **search_aliases("segment", "segmentation", "zero-shot segmentation", "heatmap", "attention map", "saliency"),
            inputs=[
                io.Model.Input("model", tooltip=user_text.model_tooltip(FAMILIES, copy=False)),
                io.Clip.Input("clip", tooltip="The model's text encoder; encodes the concepts and the caption."),
                io.Vae.Input("vae", tooltip="The model's VAE, to encode the image."),
                io.Image.Input("image", tooltip="The image (or batch of images) to segment; for a video model, the "
                                                "frames of one clip (e.g. from Load Video)."),
                *concept_inputs(),
                io.Float.Input("noise_level", default=0.5, min=0.0, max=1.0, step=0.01,
                               tooltip="Flow time of the added noise: 0 = the clean image, 1 = pure noise. "
                                       "The paper uses 0.5."),
                io.Int.Input("noise_samples", default=1, min=1, max=64,
                             tooltip="How many noise draws to average; more is smoother and slower."),
                io.Int.Input("seed", default=0, min=0, max=0xFFFFFFFFFFFFFFFF,
                             tooltip="Seed of the first noise draw (the next draws use seed+1, ...)."),
                io.String.Input("caption", multiline=True, default="", optional=True,
                                tooltip="Optional description of the image for the text stream. The paper's "
                                        "segmentation experiments name the objects present, e.g. 'a dog, a cat'."),
                advanced(io.Int.Input("batch_size", default=0, min=0, max=4096, optional=True,
                                      tooltip="Images per model call: 0 = as many as fit in free memory, N = N at a "
                                              "time. The maps are the same either way; fewer use less memory. A "
                                              "video model's clip always goes in one call (its frames belong "
                                              "together).")),
            ],
            outputs=[ConceptMapsType.Output(display_name="CONCEPT_MAPS",
                                            tooltip="One map per image and concept, at the image's size: wire into "
                                                    "Saliency Map or Concept Mask.")],
        )

    @classmethod
    def execute(cls, model, clip, vae, image, concepts, layers, space, softmax, token_pooling, noise_level,
                noise_samples, seed, caption="", batch_size=0) -> io.NodeOutput:
        if not (isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[-1] in (3, 4)):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image must be an IMAGE batch [B, H, W, 3]; got {shape}. "
                             "Wire a LoadImage or VAE Decode output, not a MASK or LATENT.")
        if batch_size < 0:
            raise ValueError(f"batch_size must be 0 (as many images per model call as fit in free memory) or the "
                             f"number of images per call; got {batch_size}. Set it to 0 or more")
        _, patch, family = prepare_patch(model, clip, concepts, layers, softmax, token_pooling, (0, 1), space=space,
                                         stop_after_last_layer=True)
        patched = patch.install(model.clone())
        pixels = image[..., :3]
        # as KSampler does: a video-latent family (Qwen-Image's Wan 2.1 latent) takes [B, C, frames, H, W]
        one_clip = family.video and getattr(vae, "latent_dim", 2) == 3

        def encode(images: torch.Tensor) -> torch.Tensor:
            latent = encode_clip(vae, images) if one_clip else encode_images(vae, images)
            return comfy.sample.fix_empty_latent_channels(model, latent)

        diffusion_model = model.get_model_object("diffusion_model")
        encoded = clip.encode_from_tokens(clip.tokenize(caption or ""), return_dict=True)
        # what CLIPTextEncode passes beside the states: the attention mask (Lumina 2 before ComfyUI 0.8 needs it),
        # HiDream's Llama states
        extras = {key: encoded[key] for key in ("attention_mask", "conditioning_llama3") if encoded.get(key) is not None}
        conditioning = [[encoded["cond"], {**extras, **family.segmentation_conditioning(diffusion_model)}]]
        guider = comfy.samplers.CFGGuider(patched)
        guider.set_conds(conditioning, conditioning)
        guider.set_cfg(1.0)
        sampler = comfy.samplers.KSAMPLER(one_partial_pass)
        sigmas = torch.tensor([noise_level, 0.0])
        items = 1 if one_clip else pixels.shape[0]  # a clip's frames go through the model together
        per_call = 1 if items == 1 else batch_size or images_per_call(model, encode(pixels[:1]), items)
        noise = BatchNoise(seed, noise_samples, items)
        progress = comfy.utils.ProgressBar(items * noise_samples)

        def chunk_maps(start: int) -> ConceptMaps:
            """The maps of the chunk of images from `start`; only its latent and activations are held meanwhile."""
            latent = encode(pixels if one_clip else pixels[start:start + per_call])
            with patch.recording() as recording:  # one recording averages the chunk's noise draws
                for sample in range(noise_samples):
                    comfy.model_management.throw_exception_if_processing_interrupted()
                    guider.sample(noise.rows(latent, sample, start), latent, sampler, sigmas, disable_pbar=True,
                                  seed=seed + sample)
                    progress.update(latent.shape[0])
            return patch.maps_of(recording, tuple(image.shape[1:3]))

        parts = []
        for start in range(0, items, per_call):
            comfy.model_management.throw_exception_if_processing_interrupted()
            parts.append(chunk_maps(start))
        return io.NodeOutput(concatenated(parts))


# ComfyUI batches a model call's conds while its memory estimate x 1.5 fits in free memory (comfy.samplers)
MEMORY_MARGIN = 1.5


def images_per_call(model, latent: torch.Tensor, images: int) -> int:
    """How many images of this [1, ...] latent's size one model call can take: the device's free memory, less the
    weights still to load, over ComfyUI's estimate for one image with the margin its own batching keeps."""
    free = comfy.model_management.get_free_memory(model.load_device)
    free -= max(model.model_size() - model.loaded_size(), 0)
    one_image = model.model.memory_required([1, *latent.shape[1:]]) * MEMORY_MARGIN
    return max(1, min(images, int(free // one_image) if one_image > 0 else images))


class BatchNoise:
    """The noise comfy.sample.prepare_noise gives a whole batch's latent for seed + sample, drawn chunk by chunk.

    torch's CPU normal sampler turns uniform draws into normals in blocks of 16 values, so where an image's
    latent holds a multiple of 16 values, consecutive draws from one generator continue one another exactly;
    elsewhere each chunk takes its rows from a draw of the whole batch."""

    def __init__(self, seed: int, samples: int, images: int):
        self.seed, self.images = seed, images
        self.generators = [torch.Generator().manual_seed(seed + sample) for sample in range(samples)]
        self.drawn = [0] * samples  # images drawn so far, per sample

    def rows(self, latent: torch.Tensor, sample: int, start: int) -> torch.Tensor:
        """The noise of images start..start + len(latent) for one sample; chunks come in order."""
        if start != self.drawn[sample]:
            raise RuntimeError(f"noise for images from {start} asked after {self.drawn[sample]} were drawn")
        self.drawn[sample] += latent.shape[0]
        if latent[0].numel() % 16:
            whole = torch.empty((self.images, *latent.shape[1:]), dtype=latent.dtype, device="meta")
            return comfy.sample.prepare_noise(whole, self.seed + sample)[start:start + latent.shape[0]]
        draw = getattr(comfy.sample, "prepare_noise_inner", None)  # ComfyUI 0.8+
        if draw is not None:
            return draw(latent, self.generators[sample])
        # ComfyUI 0.3's prepare_noise draws in the latent's own dtype
        return torch.randn(latent.size(), dtype=latent.dtype, layout=latent.layout,
                           generator=self.generators[sample], device="cpu")


def encode_images(vae, images: torch.Tensor) -> torch.Tensor:
    """One latent per image. A video VAE (Qwen-Image's Wan 2.1) reads a batch of images as the frames of one
    video, so for an image model it encodes them one at a time: [B, C, 1, H, W]."""
    if getattr(vae, "latent_dim", 2) != 3:
        return vae.encode(images)
    return torch.cat([vae.encode(image[None]) for image in images])


def encode_clip(vae, frames: torch.Tensor) -> torch.Tensor:
    """The frames of one clip as one video latent [1, C, T, H, W]. A causal video VAE encodes 1 + 4k frames
    (HunyuanVideo's, CogVideoX's, Wan's); another count would lose its last frames, and the maps with them."""
    ratios = getattr(vae, "downscale_ratio", None)
    to_latent = ratios[0] if isinstance(ratios, tuple) and callable(ratios[0]) else None
    to_frames = getattr(vae, "upscale_ratio", (None,))[0]
    count = frames.shape[0]
    if to_latent is not None and callable(to_frames) and to_frames(to_latent(count)) != count:
        shorter = to_frames(to_latent(count))
        longer = next(n for n in range(count + 1, count + 64) if to_frames(to_latent(n)) == n)
        raise ValueError(f"this video VAE cannot encode a clip of {count} frames: it takes {to_frames(1)} + a multiple "
                         f"of {to_frames(2) - to_frames(1)} frames. Trim the clip to {shorter} frames (Image From Batch, "
                         f"or Load Video's frame_load_cap) or extend it to {longer}")
    return vae.encode(frames)


def one_partial_pass(model, x, sigmas, extra_args=None, callback=None, disable=None):
    """A 'sampler' that calls the model once; the patch stops the pass after its last block (in context windows,
    the sampler goes on to the next window, and the pass runs to its end)."""
    extra_args = extra_args or {}
    try:
        model(x, sigmas[0] * x.new_ones([x.shape[0]]), **extra_args)
    except StopAfterLastLayer:
        pass
    else:
        if "context_handler" not in extra_args.get("model_options", {}):
            raise RuntimeError("the concept stream did not stop after its last layer")
    return x
