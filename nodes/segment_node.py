"""Concept Attention Segment Image: concept maps for an existing image (the paper's zero-shot mode).

The image is encoded, noised to one flow time, and passed once through the model per noise
sample; the pass stops right after the last double block whose scores are needed.
"""

import comfy.model_management
import comfy.sample
import comfy.samplers
import comfy.utils
import torch
from comfy_api.latest import io

from .common import concept_inputs, prepare_patch
from .families import FAMILIES, user_text
from .schema_options import search_aliases
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
            ],
            outputs=[ConceptMapsType.Output(display_name="CONCEPT_MAPS",
                                            tooltip="One map per image and concept, at the image's size: wire into "
                                                    "Saliency Map or Concept Mask.")],
        )

    @classmethod
    def execute(cls, model, clip, vae, image, concepts, layers, space, softmax, token_pooling, noise_level,
                noise_samples, seed, caption="") -> io.NodeOutput:
        if not (isinstance(image, torch.Tensor) and image.ndim == 4 and image.shape[-1] in (3, 4)):
            shape = tuple(image.shape) if isinstance(image, torch.Tensor) else type(image).__name__
            raise ValueError(f"image must be an IMAGE batch [B, H, W, 3]; got {shape}. "
                             "Wire a LoadImage or VAE Decode output, not a MASK or LATENT.")
        _, patch, family = prepare_patch(model, clip, concepts, layers, softmax, token_pooling, (0, 1), space=space,
                                         stop_after_last_layer=True)
        patched = patch.install(model.clone())
        # as KSampler does: a video-latent family (Qwen-Image's Wan 2.1 latent) takes [B, C, frames, H, W]
        if family.video and getattr(vae, "latent_dim", 2) == 3:
            latent = encode_clip(vae, image[..., :3])
        else:
            latent = encode_images(vae, image[..., :3])
        latent = comfy.sample.fix_empty_latent_channels(model, latent)
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
        progress = comfy.utils.ProgressBar(noise_samples)
        with patch.recording() as recording:  # one recording averages every noise draw
            for sample in range(noise_samples):
                comfy.model_management.throw_exception_if_processing_interrupted()
                noise = comfy.sample.prepare_noise(latent, seed + sample)
                guider.sample(noise, latent, sampler, sigmas, disable_pbar=True, seed=seed + sample)
                progress.update(1)
        return io.NodeOutput(patch.maps_of(recording, tuple(image.shape[1:3])))


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
    """A 'sampler' that calls the model once; the patch stops the pass after its last block."""
    try:
        model(x, sigmas[0] * x.new_ones([x.shape[0]]), **(extra_args or {}))
    except StopAfterLastLayer:
        pass
    else:
        raise RuntimeError("the concept stream did not stop after its last layer")
    return x
