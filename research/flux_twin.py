"""A trainable twin of ComfyUI's Flux: the same math and parameter names, out-of-place ops.

ComfyUI's blocks update activations in place (+=), which autograd cannot differentiate, so the
demo model trains on this twin and its weights load unchanged into ComfyUI's own Flux class
(tests compare both outputs on the same weights).
"""

import math

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from demo_model.config import DemoConfig


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

    def __init__(self, config: DemoConfig):
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


def float16_megabytes(config: DemoConfig) -> float:
    """The size of a design's transformer as shipped (float16), in MB; the text encoder and codec add ~0.1 MB."""
    with torch.device("meta"):
        parameters = sum(p.numel() for p in FluxTwin(config).parameters())
    return parameters * 2 / 1e6
