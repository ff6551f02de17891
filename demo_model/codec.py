"""A fixed linear latent codec with Flux's VAE geometry: 16 channels at 1/8 resolution.

Each non-overlapping 8x8 RGB patch (192 numbers) is projected onto its top principal
components, fitted once on training images. Being linear and fixed, it stands in for Flux's
VAE in the demo without a second network to train.
"""

import torch
from einops import rearrange
from torch import Tensor, nn

PATCH_SIZE = 8
IMAGE_CHANNELS = 3
PATCH_DIM = PATCH_SIZE * PATCH_SIZE * IMAGE_CHANNELS  # 192
LATENT_CHANNELS = 16
STATE_KEYS = ("mean", "components", "scale")


def _check_size(height: int, width: int) -> None:
    if height % PATCH_SIZE or width % PATCH_SIZE:
        raise ValueError(f"image size {height}x{width} is not a multiple of the {PATCH_SIZE}-pixel patch")


def image_patches(images: Tensor) -> Tensor:
    """[B, 3, H, W] -> [B, H/8, W/8, 192] patch vectors, ordered (channel, row, column)."""
    _check_size(images.shape[-2], images.shape[-1])
    return rearrange(images, "b c (h p1) (w p2) -> b h w (c p1 p2)", p1=PATCH_SIZE, p2=PATCH_SIZE)


class PatchPCACodec(nn.Module):
    """encode: images [B, 3, H, W] in [0, 1] -> latents [B, C, H/8, W/8]; decode inverts.

    Buffers: mean [192] (the mean patch), components [C, 192] (orthonormal rows, largest
    variance first) and scale [C] (each channel's standard deviation on the fitting set, so
    latents come out with roughly unit variance, as a diffusion model expects).
    """

    mean: Tensor
    components: Tensor
    scale: Tensor

    def __init__(self, mean: Tensor, components: Tensor, scale: Tensor) -> None:
        super().__init__()
        channels = components.shape[0]
        if mean.shape != (PATCH_DIM,) or components.shape != (channels, PATCH_DIM) or scale.shape != (channels,):
            raise ValueError(
                f"expected mean [{PATCH_DIM}], components [C, {PATCH_DIM}], scale [C]; got "
                f"{tuple(mean.shape)}, {tuple(components.shape)}, {tuple(scale.shape)}"
            )
        self.register_buffer("mean", mean.detach().float().clone(memory_format=torch.contiguous_format))
        self.register_buffer("components", components.detach().float().clone(memory_format=torch.contiguous_format))
        self.register_buffer("scale", scale.detach().float().clone(memory_format=torch.contiguous_format))

    @property
    def channels(self) -> int:
        return self.components.shape[0]

    @classmethod
    def from_state_dict(cls, state: dict[str, Tensor]) -> "PatchPCACodec":
        """Rebuild a codec from `state_dict()` (e.g. as read back by safetensors' load_file)."""
        missing = [key for key in STATE_KEYS if key not in state]
        if missing:
            raise ValueError(f"codec state lacks {missing}")
        return cls(state["mean"], state["components"], state["scale"])

    def encode(self, images: Tensor) -> Tensor:
        patches = image_patches(images.to(self.mean.dtype))
        latents = (patches - self.mean) @ self.components.T / self.scale
        return rearrange(latents, "b h w c -> b c h w").contiguous()

    def decode(self, latents: Tensor) -> Tensor:
        if latents.shape[1] != self.channels:
            raise ValueError(f"expected {self.channels} latent channels, got {latents.shape[1]}")
        vectors = rearrange(latents.to(self.mean.dtype), "b c h w -> b h w c")
        patches = (vectors * self.scale) @ self.components + self.mean
        images = rearrange(patches, "b h w (c p1 p2) -> b c (h p1) (w p2)", c=IMAGE_CHANNELS, p1=PATCH_SIZE, p2=PATCH_SIZE)
        return images.clamp(0.0, 1.0)

    def forward(self, images: Tensor) -> Tensor:
        """Round trip: decode(encode(images))."""
        return self.decode(self.encode(images))


def fit_pca_codec(images: Tensor, channels: int = LATENT_CHANNELS) -> PatchPCACodec:
    """Fit mean, top-`channels` principal components and per-channel scale on all 8x8 patches.

    images: [N, 3, H, W] in [0, 1]. The covariance is accumulated and diagonalised in float64:
    the trailing eigenvalues are small and float32 would blur which components come first.
    """
    if not 1 <= channels <= PATCH_DIM:
        raise ValueError(f"channels must be in 1..{PATCH_DIM}, got {channels}")
    patches = image_patches(images).reshape(-1, PATCH_DIM).double()
    mean = patches.mean(dim=0)
    centred = patches - mean
    covariance = centred.T @ centred / max(centred.shape[0] - 1, 1)
    eigenvalues, eigenvectors = torch.linalg.eigh(covariance)  # ascending
    order = eigenvalues.argsort(descending=True)[:channels]
    components = eigenvectors[:, order].T
    # Eigenvectors have an arbitrary sign; fix it (largest entry positive) so fits are reproducible.
    largest = components.abs().argmax(dim=1, keepdim=True)
    components = components * components.gather(1, largest).sign()
    scale = eigenvalues[order].clamp_min(1e-12).sqrt()
    return PatchPCACodec(mean, components, scale)


def psnr(reference: Tensor, reconstruction: Tensor) -> float:
    """Peak signal-to-noise ratio in dB for images in [0, 1], over all pixels together."""
    mse = (reference.double() - reconstruction.double()).pow(2).mean().item()
    return float("inf") if mse == 0 else 10.0 * torch.log10(torch.tensor(1.0 / mse, dtype=torch.float64)).item()
