"""A trainable twin of ComfyUI's Flux: the same math and parameter names, out-of-place ops.

ComfyUI's blocks update activations in place (+=), which autograd cannot differentiate, so the
demo model trains on this twin and its weights load unchanged into ComfyUI's own Flux class
(tests compare both outputs on the same weights).
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

# The fields of TwinConfig a training run may choose (--design); the rest are fixed by the data,
# the codec and the text encoder.
DESIGN_FIELDS = ("hidden_size", "num_heads", "depth", "depth_single_blocks", "mlp_ratio")


@dataclass(frozen=True)
class TwinConfig:
    hidden_size: int = 128
    num_heads: int = 4
    depth: int = 6
    depth_single_blocks: int = 2
    mlp_ratio: float = 4.0
    context_in_dim: int = 64
    vec_in_dim: int = 64
    in_channels: int = 16
    patch_size: int = 2
    theta: int = 10000

    @property
    def axes_dim(self) -> list[int]:
        head = self.hidden_size // self.num_heads
        spatial = head * 7 // 16 // 2 * 2  # Flux.1's split of 128 is 16/56/56
        return [head - 2 * spatial, spatial, spatial]

    @classmethod
    def from_design(cls, spec: str) -> "TwinConfig":
        """A design from "hidden_size=160,num_heads=5"; the fields it leaves out keep the current design's."""
        fields: dict[str, int | float] = {}
        for part in filter(None, (piece.strip() for piece in spec.split(","))):
            name, equals, value = part.partition("=")
            name = name.strip()
            if not equals or name not in DESIGN_FIELDS:
                raise ValueError(f"design {spec!r}: cannot read {part!r}; give name=value pairs of "
                                 f"{', '.join(DESIGN_FIELDS)}, e.g. hidden_size=160,num_heads=5")
            kind = float if name == "mlp_ratio" else int
            try:
                fields[name] = kind(value)
            except ValueError:
                raise ValueError(f"design {spec!r}: {name} must be {'a number' if kind is float else 'a whole number'}, "
                                 f"not {value.strip()!r}") from None
        design = cls(**fields)
        design.check()
        return design

    def design_text(self) -> str:
        """The design as from_design reads it: "hidden_size=128,num_heads=4,..."."""
        return ",".join(f"{name}={getattr(self, name)}" for name in DESIGN_FIELDS)

    def check(self) -> None:
        """Refuse a design ComfyUI's Flux could not build, naming the field to change."""
        for name in ("hidden_size", "num_heads", "depth", "mlp_ratio"):
            if getattr(self, name) <= 0:
                raise ValueError(f"design: {name} must be positive, not {getattr(self, name)}")
        if self.depth_single_blocks < 0:
            raise ValueError(f"design: depth_single_blocks must be 0 or more, not {self.depth_single_blocks}")
        if self.hidden_size % self.num_heads:
            raise ValueError(f"design: hidden_size {self.hidden_size} does not split into {self.num_heads} heads; "
                             "make it a multiple of num_heads")
        if min(self.axes_dim) <= 0 or any(size % 2 for size in self.axes_dim):
            raise ValueError(f"design: heads of {self.hidden_size // self.num_heads} channels cannot carry Flux's "
                             f"three rotary axes (would be {self.axes_dim}); use heads of an even number of "
                             "channels, at least 6")

    def float16_megabytes(self) -> float:
        """The size of this design's transformer as shipped (float16), in MB; the text encoder and codec add ~0.1 MB."""
        with torch.device("meta"):
            parameters = sum(p.numel() for p in FluxTwin(self).parameters())
        return parameters * 2 / 1e6

    def comfy_unet_config(self) -> dict:
        """The unet_config ComfyUI's FluxSchnell class needs to build the same model."""
        return {
            "image_model": "flux", "in_channels": self.in_channels, "out_channels": self.in_channels,
            "patch_size": self.patch_size, "vec_in_dim": self.vec_in_dim, "context_in_dim": self.context_in_dim,
            "hidden_size": self.hidden_size, "mlp_ratio": self.mlp_ratio, "num_heads": self.num_heads,
            "depth": self.depth, "depth_single_blocks": self.depth_single_blocks, "axes_dim": self.axes_dim,
            "theta": self.theta, "qkv_bias": True, "guidance_embed": False,
        }


def timestep_embedding(t: Tensor, dim: int = 256, max_period: int = 10000) -> Tensor:
    t = 1000.0 * t
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=-1)


def rope(pos: Tensor, dim: int, theta: int) -> Tensor:
    scale = torch.linspace(0, (dim - 2) / dim, steps=dim // 2, dtype=torch.float64, device=pos.device)
    omega = 1.0 / (theta**scale)
    out = torch.einsum("...n,d->...nd", pos.to(torch.float32), omega)
    out = torch.stack([torch.cos(out), -torch.sin(out), torch.sin(out), torch.cos(out)], dim=-1)
    return rearrange(out, "b n d (i j) -> b n d i j", i=2, j=2).float()


def positional_encoding(ids: Tensor, axes_dim: list[int], theta: int) -> Tensor:
    return torch.cat([rope(ids[..., i], axes_dim[i], theta) for i in range(ids.shape[-1])], dim=-3).unsqueeze(1)


def apply_rope(x: Tensor, pe: Tensor) -> Tensor:
    x_ = x.float().reshape(*x.shape[:-1], -1, 1, 2)
    out = pe[..., 0] * x_[..., 0] + pe[..., 1] * x_[..., 1]
    return out.reshape(*x.shape).type_as(x)


def attention(q: Tensor, k: Tensor, v: Tensor, pe: Tensor) -> Tensor:
    q, k = apply_rope(q, pe), apply_rope(k, pe)
    return rearrange(F.scaled_dot_product_attention(q, k, v), "B H L D -> B L (H D)")


WORD_MAP_SIDES = ("text", "image")


def word_maps(side: str, tq: Tensor, tk: Tensor, iq: Tensor, ik: Tensor, pe: Tensor) -> Tensor:
    """[B, T, N]: each text token's map over the N image tokens in the block's own joint attention
    (softmax over text and image keys, mean over heads). side "text": the word's attention on each
    image token (text queries); side "image": each image token's attention on the word (image queries)."""
    text_len = tq.shape[2]
    keys = apply_rope(torch.cat((tk, ik), 2), pe)
    q = apply_rope(tq, pe[:, :, :text_len]) if side == "text" else apply_rope(iq, pe[:, :, text_len:])
    probs = torch.softmax(q @ keys.transpose(-1, -2) * q.shape[-1] ** -0.5, dim=-1).mean(1)
    return probs[..., text_len:] if side == "text" else probs[..., :text_len].transpose(1, 2)


class MLPEmbedder(nn.Module):
    def __init__(self, in_dim: int, hidden: int):
        super().__init__()
        self.in_layer = nn.Linear(in_dim, hidden)
        self.out_layer = nn.Linear(hidden, hidden)

    def forward(self, x: Tensor) -> Tensor:
        return self.out_layer(F.silu(self.in_layer(x)))


class RMSNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(dim))

    def forward(self, x: Tensor) -> Tensor:
        return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + 1e-6) * self.scale


class QKNorm(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.query_norm = RMSNorm(dim)
        self.key_norm = RMSNorm(dim)


class SelfAttention(nn.Module):
    def __init__(self, dim: int, heads: int):
        super().__init__()
        self.qkv = nn.Linear(dim, dim * 3)
        self.norm = QKNorm(dim // heads)
        self.proj = nn.Linear(dim, dim)


class Modulation(nn.Module):
    def __init__(self, dim: int, double: bool):
        super().__init__()
        self.multiplier = 6 if double else 3
        self.lin = nn.Linear(dim, self.multiplier * dim)

    def forward(self, vec: Tensor) -> list[Tensor]:
        return self.lin(F.silu(vec))[:, None].chunk(self.multiplier, dim=-1)


def layer_norm(x: Tensor) -> Tensor:
    return F.layer_norm(x, x.shape[-1:], eps=1e-6)


def mlp(hidden: int, ratio: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(hidden, int(hidden * ratio)), nn.GELU(approximate="tanh"),
                         nn.Linear(int(hidden * ratio), hidden))


class DoubleStreamBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.num_heads = heads
        for stream in ("img", "txt"):
            setattr(self, f"{stream}_mod", Modulation(hidden, double=True))
            setattr(self, f"{stream}_attn", SelfAttention(hidden, heads))
            setattr(self, f"{stream}_mlp", mlp(hidden, mlp_ratio))

    def _qkv(self, x: Tensor, attn: SelfAttention, shift: Tensor, scale: Tensor):
        q, k, v = rearrange(attn.qkv(layer_norm(x) * (1 + scale) + shift), "B L (K H D) -> K B H L D",
                            K=3, H=self.num_heads)
        return attn.norm.query_norm(q).to(v), attn.norm.key_norm(k).to(v), v

    def forward(self, img: Tensor, txt: Tensor, vec: Tensor, pe: Tensor,
                maps: tuple[str, list[Tensor]] | None = None) -> tuple[Tensor, Tensor]:
        """maps: (side, list): this block's word_maps of that side are appended to the list (training's
        grounding loss)."""
        im = self.img_mod(vec)
        tm = self.txt_mod(vec)
        iq, ik, iv = self._qkv(img, self.img_attn, im[0], im[1])
        tq, tk, tv = self._qkv(txt, self.txt_attn, tm[0], tm[1])
        if maps is not None:
            maps[1].append(word_maps(maps[0], tq, tk, iq, ik, pe))
        attn = attention(torch.cat((tq, iq), 2), torch.cat((tk, ik), 2), torch.cat((tv, iv), 2), pe)
        txt_attn, img_attn = attn[:, : txt.shape[1]], attn[:, txt.shape[1]:]
        img = img + im[2] * self.img_attn.proj(img_attn)
        img = img + im[5] * self.img_mlp(layer_norm(img) * (1 + im[4]) + im[3])
        txt = txt + tm[2] * self.txt_attn.proj(txt_attn)
        txt = txt + tm[5] * self.txt_mlp(layer_norm(txt) * (1 + tm[4]) + tm[3])
        return img, txt


class SingleStreamBlock(nn.Module):
    def __init__(self, hidden: int, heads: int, mlp_ratio: float):
        super().__init__()
        self.num_heads = heads
        self.hidden_size = hidden
        self.mlp_hidden_dim = int(hidden * mlp_ratio)
        self.linear1 = nn.Linear(hidden, hidden * 3 + self.mlp_hidden_dim)
        self.linear2 = nn.Linear(hidden + self.mlp_hidden_dim, hidden)
        self.norm = QKNorm(hidden // heads)
        self.modulation = Modulation(hidden, double=False)

    def forward(self, x: Tensor, vec: Tensor, pe: Tensor) -> Tensor:
        shift, scale, gate = self.modulation(vec)
        qkv, hidden = torch.split(self.linear1(layer_norm(x) * (1 + scale) + shift),
                                  [3 * self.hidden_size, self.mlp_hidden_dim], dim=-1)
        q, k, v = rearrange(qkv, "B L (K H D) -> K B H L D", K=3, H=self.num_heads)
        q, k = self.norm.query_norm(q).to(v), self.norm.key_norm(k).to(v)
        out = self.linear2(torch.cat((attention(q, k, v, pe), F.gelu(hidden, approximate="tanh")), 2))
        return x + gate * out


class LastLayer(nn.Module):
    def __init__(self, hidden: int, out: int):
        super().__init__()
        self.linear = nn.Linear(hidden, out)
        self.adaLN_modulation = nn.Sequential(nn.SiLU(), nn.Linear(hidden, 2 * hidden))

    def forward(self, x: Tensor, vec: Tensor) -> Tensor:
        shift, scale = self.adaLN_modulation(vec)[:, None].chunk(2, dim=-1)
        return self.linear(layer_norm(x) * (1 + scale) + shift)


class FluxTwin(nn.Module):
    """Flux (schnell-style: no guidance embedding) predicting the flow velocity."""

    def __init__(self, config: TwinConfig):
        super().__init__()
        self.config = config
        c = config
        patch_dim = c.in_channels * c.patch_size**2
        self.img_in = nn.Linear(patch_dim, c.hidden_size)
        self.time_in = MLPEmbedder(256, c.hidden_size)
        self.vector_in = MLPEmbedder(c.vec_in_dim, c.hidden_size)
        self.txt_in = nn.Linear(c.context_in_dim, c.hidden_size)
        self.double_blocks = nn.ModuleList(
            DoubleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio) for _ in range(c.depth))
        self.single_blocks = nn.ModuleList(
            SingleStreamBlock(c.hidden_size, c.num_heads, c.mlp_ratio) for _ in range(c.depth_single_blocks))
        self.final_layer = LastLayer(c.hidden_size, patch_dim)

    def forward(self, x: Tensor, t: Tensor, context: Tensor, pooled: Tensor, word_maps_side: str | None = None,
                text_states: bool = False) -> Tensor | tuple[Tensor, ...]:
        """The velocity [B, C, H, W], followed, when asked, by: with word_maps_side, [blocks, B, T, N], each
        double block's word_maps of that side; with text_states, [B, T, hidden], the text tokens' states
        after the double blocks (training's auxiliary losses)."""
        c = self.config
        b, _, h, w = x.shape
        p = c.patch_size
        img = self.img_in(rearrange(x, "b c (h ph) (w pw) -> b (h w) (c ph pw)", ph=p, pw=p))
        vec = self.time_in(timestep_embedding(t)) + self.vector_in(pooled)
        txt = self.txt_in(context)
        rows = torch.arange(h // p, device=x.device, dtype=torch.float32)
        cols = torch.arange(w // p, device=x.device, dtype=torch.float32)
        img_ids = torch.stack([torch.zeros(h // p, w // p, device=x.device),
                               rows[:, None].expand(-1, w // p), cols[None].expand(h // p, -1)], dim=-1)
        ids = torch.cat([torch.zeros(b, txt.shape[1], 3, device=x.device),
                         img_ids.reshape(1, -1, 3).expand(b, -1, -1)], dim=1)
        pe = positional_encoding(ids, c.axes_dim, c.theta)
        maps: list[Tensor] = []
        for block in self.double_blocks:
            img, txt = block(img, txt, vec, pe, (word_maps_side, maps) if word_maps_side else None)
        after_double = txt
        joint = torch.cat((txt, img), 1)
        for block in self.single_blocks:
            joint = block(joint, vec, pe)
        out = self.final_layer(joint[:, txt.shape[1]:], vec)
        velocity = rearrange(out, "b (h w) (c ph pw) -> b c (h ph) (w pw)", h=h // p, w=w // p, ph=p, pw=p)
        extras = ((torch.stack(maps),) if word_maps_side else ()) + ((after_double,) if text_states else ())
        return (velocity, *extras) if extras else velocity
