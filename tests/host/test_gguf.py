"""Flux models as GGUF files, loaded through ComfyUI-GGUF's own Unet Loader (GGUF) (city96/ComfyUI-GGUF,
exported by scripts/third_party_env.sh gguf into $CA_GGUF_DIR and installed beside this extension by comfy_host).

The files are written as the pack's tools write Flux files (Q8_0 and the K-quants Q6_K and Q4_K), and the
model computes in fp32 (what a CPU picks), bf16 and fp16. As for fp8 weights (test_weight_formats.py): the
maps stay finite and agree with the fp32 model's, and the latent equals plain sampling of the same loaded model.

The model is tiny_flux at width 256: K-quants pack each row in 256-value blocks and leave a narrower row
at F16, and the text stream's layers, which the concept stream reuses, must be quantized (full Flux's
3072 is a multiple of 256). Its matrices are scaled by sqrt(64 / 256), so activations keep the width-64
model's scale (at the width-64 scale the wider random model is so sensitive that fp8 weights computing in bf16 move its
maps by 0.12). The latent is 16 x 16 (64 image tokens), so the argmax share is not one near-tied token of 20.
"""

import importlib.util
import sys
import warnings

import comfy_host
import pytest

GGUF_PACK = comfy_host.GGUF_PACK
if GGUF_PACK is None:
    _reason = "no ComfyUI-GGUF pack (set CA_GGUF_DIR, or run scripts/test.sh, which runs scripts/third_party_env.sh gguf)"
elif not (GGUF_PACK / "__init__.py").is_file():
    _reason = f"CA_GGUF_DIR={GGUF_PACK} holds no ComfyUI-GGUF pack (scripts/third_party_env.sh gguf exports one)"
elif importlib.util.find_spec("gguf") is None:
    _reason = "the gguf package is missing from this venv (requirements-dev.txt; scripts/host_env.sh installs it)"
else:
    _reason = None
if _reason:
    _message = f"GGUF TESTS SKIPPED: {_reason}"
    warnings.warn(_message, stacklevel=1)
    print(f"\n*** {_message} ***\n", file=sys.stderr)
    pytest.skip(_message, allow_module_level=True)

import gguf  # noqa: E402
import nodes  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from helpers.checkpoints import (  # noqa: E402
    SIZES,
    save_diffusion_model,
    tiny_detection,
    tiny_flux_state_dict,
)
from helpers.gguf_files import Q4_K, Q6_K, Q8_0, quantize, save_flux_gguf  # noqa: E402
from helpers.models import tiny_clip  # noqa: E402
from helpers.sampling import sampler_inputs  # noqa: E402
from helpers.weight_formats import assert_casts_shared, assert_maps_agree, sample  # noqa: E402

GGUF_SIZES = {**SIZES, "hidden": 256}
MATRIX_SCALE = (SIZES["hidden"] / GGUF_SIZES["hidden"]) ** 0.5
QUANT_TYPES = [Q8_0, Q6_K, Q4_K]


def unet_loader_gguf():
    """The pack's loader node, as ComfyUI registered it."""
    loader = nodes.NODE_CLASS_MAPPINGS.get("UnetLoaderGGUF")
    assert loader is not None, f"ComfyUI did not load ComfyUI-GGUF from {GGUF_PACK} (see its log above)"
    return loader()


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    folder = tmp_path_factory.mktemp("diffusion_models")
    weights = {key: value * MATRIX_SCALE if value.ndim > 1 else value
               for key, value in tiny_flux_state_dict(sizes=GGUF_SIZES).items()}
    names = {"fp32": save_diffusion_model(weights, folder, "tiny_flux_256.safetensors")}
    for qtype in QUANT_TYPES:
        name = f"tiny_flux_256-{qtype.name}.gguf"
        types = save_flux_gguf(weights, folder / name, qtype)
        assert types["double_blocks.0.txt_attn.qkv.weight"] == qtype.name
        names[qtype.name] = name
    return names


@pytest.fixture(scope="module")
def fp32_run(ca, checkpoints):
    clip = tiny_clip()
    inputs = sampler_inputs(clip, 1, 3.5, size=(16, 16))
    with tiny_detection(sizes=GGUF_SIZES):
        (model,) = nodes.UNETLoader().load_unet(checkpoints["fp32"], "default")
    assert model.model.diffusion_model.double_blocks[0].txt_attn.qkv.weight.dtype == torch.float32
    return clip, inputs, sample(ca, model, clip, inputs)


@pytest.mark.parametrize("qtype, sub_block, codes", [(Q6_K, 16, 31), (Q4_K, 32, 15)], ids=["Q6_K", "Q4_K"])
def test_k_quant_packers_round_trip_through_gguf_py(qtype, sub_block, codes):
    rng = np.random.default_rng(0)
    # sub-blocks at scales from 0.01 to 1, one all-zero block and one all-positive block
    rows = rng.standard_normal((8, 512)) * np.repeat(rng.uniform(0.01, 1, (8, 32)), 16, axis=1)
    rows[0, :256] = 0
    rows[1, :256] = np.abs(rows[1, :256])
    rows = rows.astype(np.float32)
    back = gguf.quants.dequantize(quantize(rows, qtype), qtype)
    error = np.abs(back - rows).reshape(-1, 256).max(axis=1)
    # the step of each block's widest sub-block: Q6_K spans -31..31 steps, Q4_K min(0, low)..high in 15
    sub_blocks = rows.reshape(-1, 256 // sub_block, sub_block)
    spans = np.abs(sub_blocks).max(-1) if qtype == Q6_K else sub_blocks.max(-1) - np.minimum(sub_blocks.min(-1), 0)
    widest_step = spans.max(axis=1) / codes
    # half that step, plus the rounding of the sub-block scales (7 bits for Q6_K, 6 for Q4_K)
    bound = 0.5 * (1 + 1 / 63) * widest_step
    assert (error <= bound).all(), (error / np.maximum(bound, 1e-30)).max()
    assert error[0] == 0


@pytest.mark.parametrize("compute_dtype", [None, torch.bfloat16, torch.float16], ids=["fp32", "bf16", "fp16"])
@pytest.mark.parametrize("qtype", QUANT_TYPES, ids=[q.name for q in QUANT_TYPES])
def test_gguf_weights(ca, checkpoints, fp32_run, qtype, compute_dtype):
    clip, inputs, (_, _, reference) = fp32_run
    with tiny_detection(compute_dtype, sizes=GGUF_SIZES):
        (model,) = unet_loader_gguf().load_unet(checkpoints[qtype.name])
    qkv = model.model.diffusion_model.double_blocks[0].txt_attn.qkv
    # the text stream's weights, which the concepts reuse, stay quantized until each layer's call
    assert type(qkv.weight).__name__ == "GGMLTensor" and qkv.weight.tensor_type == qtype
    assert (model.model.manual_cast_dtype or model.model.get_dtype()) == (compute_dtype or torch.float32)
    plain, latent, maps = sample(ca, model, clip, inputs)
    assert torch.equal(latent, plain)
    difference, agreement = assert_maps_agree(maps, reference)
    print(f"{qtype.name} {compute_dtype or torch.float32}: max soft difference {difference:.4f}, "
          f"argmax agreement {agreement:.3f}")


def test_the_concepts_reuse_the_text_streams_dequantized_weights(ca, checkpoints, fp32_run, monkeypatch):
    """A GGUF layer dequantizes its weight each time it runs; the concepts reuse the text stream's own."""
    clip, inputs, _ = fp32_run
    with tiny_detection(sizes=GGUF_SIZES):
        (model,) = unet_loader_gguf().load_unet(checkpoints[Q8_0.name])
    assert_casts_shared(ca, model, clip, inputs, monkeypatch)
