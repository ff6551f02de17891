import pytest
import torch
from safetensors.torch import load_file, save_file

from demo_model.codec import LATENT_CHANNELS, PatchPCACodec, fit_pca_codec, psnr
from research.shapes import IMAGE_SIZE, held_out_seeds, make_batch

PSNR_BAR_DB = 30.0


@pytest.fixture(scope="module")
def codec():
    train_images, _, _ = make_batch(range(256))
    return fit_pca_codec(train_images, channels=LATENT_CHANNELS)


@pytest.fixture(scope="module")
def held_out_images():
    images, _, _ = make_batch(held_out_seeds(32))
    return images


def test_latent_geometry_matches_flux(codec, held_out_images):
    latents = codec.encode(held_out_images[:2])
    assert latents.shape == (2, 16, IMAGE_SIZE // 8, IMAGE_SIZE // 8)
    assert codec.decode(latents).shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)
    assert codec(held_out_images[:2]).shape == (2, 3, IMAGE_SIZE, IMAGE_SIZE)


def test_buffers(codec):
    assert codec.mean.shape == (192,) and codec.components.shape == (16, 192) and codec.scale.shape == (16,)
    gram = codec.components @ codec.components.T
    assert (gram - torch.eye(16)).abs().max() < 1e-5  # orthonormal rows
    assert (codec.scale[:-1] >= codec.scale[1:]).all()  # largest variance first


def test_held_out_reconstruction_psnr(codec, held_out_images):
    reconstruction = codec.decode(codec.encode(held_out_images))
    assert 0.0 <= reconstruction.min() and reconstruction.max() <= 1.0
    measured = psnr(held_out_images, reconstruction)
    print(f"held-out PSNR with {codec.channels} channels: {measured:.2f} dB")
    assert measured >= PSNR_BAR_DB


def test_latents_have_roughly_unit_variance(codec, held_out_images):
    std = codec.encode(held_out_images).std(dim=(0, 2, 3))
    assert ((std > 0.5) & (std < 2.0)).all(), std


def test_sizes_not_a_multiple_of_8_are_refused(codec):
    with pytest.raises(ValueError, match="multiple"):
        codec.encode(torch.zeros(1, 3, 64, 60))
    with pytest.raises(ValueError, match="multiple"):
        fit_pca_codec(torch.zeros(1, 3, 12, 16))


def test_state_dict_round_trips_through_safetensors(codec, held_out_images, tmp_path):
    path = tmp_path / "codec.safetensors"
    save_file(codec.state_dict(), str(path))
    restored = PatchPCACodec.from_state_dict(load_file(str(path)))
    latents = codec.encode(held_out_images[:2])
    assert torch.equal(restored.encode(held_out_images[:2]), latents)
    assert torch.equal(restored.decode(latents), codec.decode(latents))


def test_from_state_dict_needs_every_buffer(codec):
    state = codec.state_dict()
    del state["scale"]
    with pytest.raises(ValueError, match="scale"):
        PatchPCACodec.from_state_dict(state)


def test_fit_is_deterministic():
    images, _, _ = make_batch(range(4))
    first, second = fit_pca_codec(images, channels=4), fit_pca_codec(images, channels=4)
    for key, value in first.state_dict().items():
        assert torch.equal(value, second.state_dict()[key])
