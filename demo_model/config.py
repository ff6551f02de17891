"""The demo model's transformer design: ComfyUI's Flux at a small width, as stored with its weights."""

from dataclasses import dataclass

# The fields of DemoConfig a training run may choose (--design); the rest are fixed by the data,
# the codec and the text encoder.
DESIGN_FIELDS = ("hidden_size", "num_heads", "depth", "depth_single_blocks", "mlp_ratio")


@dataclass(frozen=True)
class DemoConfig:
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
    def from_design(cls, spec: str) -> "DemoConfig":
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

    def comfy_unet_config(self) -> dict:
        """The unet_config ComfyUI's FluxSchnell class needs to build the same model."""
        return {
            "image_model": "flux", "in_channels": self.in_channels, "out_channels": self.in_channels,
            "patch_size": self.patch_size, "vec_in_dim": self.vec_in_dim, "context_in_dim": self.context_in_dim,
            "hidden_size": self.hidden_size, "mlp_ratio": self.mlp_ratio, "num_heads": self.num_heads,
            "depth": self.depth, "depth_single_blocks": self.depth_single_blocks, "axes_dim": self.axes_dim,
            "theta": self.theta, "qkv_bias": True, "guidance_embed": False,
        }
