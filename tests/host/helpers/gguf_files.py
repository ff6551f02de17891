"""Flux GGUF files as ComfyUI-GGUF's tooling writes them, for the GGUF tests (needs the gguf package).

The pack converts a checkpoint with tools/convert.py (1-D and small tensors F32, the rest F16) and
quantizes that with its patched llama.cpp (tools/lcpp.patch), which for arch "flux" leaves the input and
output layers (txt_in, img_in, time_in, vector_in, guidance_in, final_layer) at F16 and writes a K-quant
only into rows whose width is a multiple of 256 (else F16); its Q4_K_S and Q6_K mixes give every other Flux
matrix the file's type. gguf-py quantizes Q8_0 but has no K-quant quantizer, so Q6_K and Q4_K are packed
here, in the byte layouts gguf-py's dequantize_blocks read.
"""

from pathlib import Path

import gguf
import numpy as np
import torch

Q8_0, Q6_K, Q4_K = (gguf.GGMLQuantizationType.Q8_0, gguf.GGMLQuantizationType.Q6_K,
                    gguf.GGMLQuantizationType.Q4_K)
F32, F16 = gguf.GGMLQuantizationType.F32, gguf.GGMLQuantizationType.F16
FILE_TYPES = {Q8_0: gguf.LlamaFileType.MOSTLY_Q8_0, Q6_K: gguf.LlamaFileType.MOSTLY_Q6_K,
              Q4_K: gguf.LlamaFileType.MOSTLY_Q4_K_S}
QK_K = 256  # values per K-quant super-block
QUANTIZATION_THRESHOLD = 1024  # convert.py keeps tensors of at most this many values in F32
FLUX_KEPT_F16 = ("txt_in.", "img_in.", "time_in.", "vector_in.", "guidance_in.", "final_layer.")


def quantize_q6_k(rows: np.ndarray) -> np.ndarray:
    """Q6_K bytes of float rows (width a multiple of 256): per 256 values, 16 sub-blocks of 16 with a
    6-bit value each, an int8 scale per sub-block and an fp16 scale of those scales."""
    n_rows, width = rows.shape
    assert width % QK_K == 0, f"Q6_K packs rows in blocks of {QK_K}; width {width} is not a multiple"
    blocks = rows.astype(np.float32).reshape(-1, QK_K // 16, 16)
    sub_scales = np.abs(blocks).max(axis=-1) / 31  # the largest value maps to +-31 (codes are -32..31)
    d = (sub_scales.max(axis=-1) / 127).astype(np.float16)
    df = d.astype(np.float32)[:, None]
    scales = np.divide(sub_scales, df, out=np.zeros_like(sub_scales), where=df > 0)
    scales = np.clip(np.rint(scales), 0, 127).astype(np.int8)
    steps = (df * scales)[..., None]
    q = np.divide(blocks, steps, out=np.zeros_like(blocks), where=steps > 0)
    q = (np.clip(np.rint(q), -32, 31) + 32).astype(np.uint8).reshape(-1, QK_K)
    # value p = 128 h + r: low nibble in ql[64 h + r % 64] (bits 4 (r // 64)), top two bits in
    # qh[32 h + r % 32] (bits 2 (r // 32))
    low = (q & 0x0F).reshape(-1, 2, 2, 64)
    ql = (low[:, :, 0] | (low[:, :, 1] << 4)).reshape(-1, QK_K // 2)
    high = (q >> 4).reshape(-1, 2, 4, 32)
    qh = (high[:, :, 0] | (high[:, :, 1] << 2) | (high[:, :, 2] << 4) | (high[:, :, 3] << 6)).reshape(-1, QK_K // 4)
    packed = np.concatenate([ql, qh, scales.view(np.uint8), d.reshape(-1, 1).view(np.uint8)], axis=-1)
    return packed.reshape(n_rows, -1)


def quantize_q4_k(rows: np.ndarray) -> np.ndarray:
    """Q4_K bytes of float rows (width a multiple of 256): per 256 values, 8 sub-blocks of 32 with a
    4-bit value each over the sub-block's range, 6-bit scales and minimums, and fp16 scales of those."""
    n_rows, width = rows.shape
    assert width % QK_K == 0, f"Q4_K packs rows in blocks of {QK_K}; width {width} is not a multiple"
    blocks = rows.astype(np.float32).reshape(-1, QK_K // 32, 32)
    low = np.minimum(blocks.min(axis=-1), 0)  # each sub-block is min + step * (0..15), min <= 0
    sub_scales, sub_mins = (blocks.max(axis=-1) - low) / 15, -low
    d, dmin = ((values.max(axis=-1) / 63).astype(np.float16) for values in (sub_scales, sub_mins))
    codes = []
    for values, top in ((sub_scales, d), (sub_mins, dmin)):
        top = top.astype(np.float32)[:, None]
        codes.append(np.clip(np.rint(np.divide(values, top, out=np.zeros_like(values), where=top > 0)), 0, 63)
                     .astype(np.uint8))
    sc, m = codes
    steps = (d.astype(np.float32)[:, None] * sc)[..., None]
    offsets = (dmin.astype(np.float32)[:, None] * m)[..., None]
    q = np.divide(blocks + offsets, steps, out=np.zeros_like(blocks), where=steps > 0)
    q = np.clip(np.rint(q), 0, 15).astype(np.uint8).reshape(-1, 4, 2, 32)
    # sub-block 2 c + k: nibble k of qs[32 c + i]
    qs = (q[:, :, 0] | (q[:, :, 1] << 4)).reshape(-1, QK_K // 2)
    # 12 scale bytes: sc[0:4] and m[0:4] in the low 6 bits of bytes 0-3 and 4-7, whose top 2 bits hold
    # the top 2 bits of sc[4:8] and m[4:8]; bytes 8-11 hold their low 4 bits (sc low nibble, m high nibble)
    scales = np.concatenate([sc[:, :4] | ((sc[:, 4:] >> 4) << 6), m[:, :4] | ((m[:, 4:] >> 4) << 6),
                             (sc[:, 4:] & 0x0F) | ((m[:, 4:] & 0x0F) << 4)], axis=-1)
    packed = np.concatenate([d.reshape(-1, 1).view(np.uint8), dmin.reshape(-1, 1).view(np.uint8), scales, qs],
                            axis=-1)
    return packed.reshape(n_rows, -1)


K_QUANTIZERS = {Q6_K: quantize_q6_k, Q4_K: quantize_q4_k}


def quantize(data: np.ndarray, qtype: gguf.GGMLQuantizationType) -> np.ndarray:
    packer = K_QUANTIZERS.get(qtype)
    return packer(data) if packer else gguf.quants.quantize(data, qtype)


def flux_tensor_type(key: str, value: torch.Tensor, qtype: gguf.GGMLQuantizationType) -> gguf.GGMLQuantizationType:
    """The type the pack's convert-then-quantize path gives one fp32 Flux tensor."""
    if value.ndim == 1 or value.numel() <= QUANTIZATION_THRESHOLD:
        return F32
    if any(part in key for part in FLUX_KEPT_F16) or not key.endswith(".weight"):
        return F16
    if value.shape[-1] % gguf.GGML_QUANT_SIZES[qtype][0]:  # rows of part blocks (a patch conv): convert.py's F16
        return F16
    return qtype


def save_flux_gguf(state_dict: dict[str, torch.Tensor], path: Path, qtype: gguf.GGMLQuantizationType) -> dict[str, str]:
    """Write an fp32 Flux state dict as a GGUF file of arch "flux" quantized to qtype; returns each
    tensor's type name."""
    writer = gguf.GGUFWriter(path=None, arch="flux")
    writer.add_quantization_version(gguf.GGML_QUANT_VERSION)
    writer.add_file_type(FILE_TYPES[qtype])
    types = {}
    for key, value in state_dict.items():
        tensor_type = flux_tensor_type(key, value, qtype)
        writer.add_tensor(key, quantize(value.float().numpy(), tensor_type), raw_dtype=tensor_type)
        types[key] = tensor_type.name
    writer.write_header_to_file(path=path)
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return types
