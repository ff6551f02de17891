"""Concept maps: token grids to pixel maps, normalisation, colour and overlay."""

from dataclasses import dataclass, fields, replace

import cv2
import numpy as np
import torch
import torch.nn.functional as F
from einops import rearrange
from PIL import Image, ImageDraw, ImageFont
from torch import Tensor

from .aggregate import SPACES

NORMALISATIONS = ("per_concept", "joint", "none")
# The longer side of the images a node previews: the browser gets these, not full-size PNGs of large images.
PREVIEW_LONGEST = 1024


@dataclass(frozen=True)
class ConceptMaps:
    """Saliency maps for one generation or segmentation run.

    maps / cross_attention_maps: [P*B*F, K, h, w] float32 on the token grid of the image (the grid
    may cover a little padding past the image's bottom/right edges), for P prompts (`prompts`: the
    positive prompt's B images first, then the negative's) and F token frames per image (1 for image
    models; a clip's frames in order for video models); image_size: (H, W) pixels; token_pixels: pixels
    per token side.

    video_frames: for each frame of the decoded video, the token frame it shows (a video VAE decodes
    several frames from each latent frame); () for image models, whose maps are one per image.
    """

    names: list[str]
    maps: Tensor
    cross_attention_maps: Tensor
    image_size: tuple[int, int]
    token_pixels: int
    space: str = "output"
    layers: tuple[int, ...] = ()
    steps: tuple[int, ...] = ()  # the steps that contributed
    skipped_steps: tuple[int, ...] = ()  # steps of the chosen range whose blocks did not run (a block cache)
    softmax: bool = True
    prompts: tuple[str, ...] = ("positive",)
    # one concept with softmax asked for: the maps hold its raw scores (aggregate.softmax_over)
    one_concept_raw: bool = False
    frames: int = 1
    video_frames: tuple[int, ...] = ()
    # the raw scores' maps of each space, where the maps took a softmax over concepts (None: maps are raw)
    raw_maps: Tensor | None = None
    raw_cross_attention_maps: Tensor | None = None

    def __post_init__(self):
        if self.space not in SPACES:
            raise ValueError(f"unknown map space {self.space!r}; expected one of {SPACES}")
        if self.maps.shape[1] != len(self.names):
            raise ValueError(f"{len(self.names)} concept names for {self.maps.shape[1]} maps")
        if self.maps.shape[0] % (len(self.prompts) * self.frames):
            raise ValueError(f"{self.maps.shape[0]} map sets do not divide among the prompts {self.prompts} "
                             f"and {self.frames} frames")
        if any(not 0 <= frame < self.frames for frame in self.video_frames):
            raise ValueError(f"video frames show token frames {sorted(set(self.video_frames))}; there are {self.frames}")

    @property
    def images(self) -> int:
        """How many images (or clips) the maps cover (each prompt has a map set per image)."""
        return self.maps.shape[0] // (len(self.prompts) * self.frames)

    @property
    def output_frames(self) -> int:
        """Maps per image and concept at pixel size: the decoded video's frame count, 1 for an image."""
        return len(self.video_frames) or self.frames

    def labels(self) -> list[str]:
        """One label per pixel map, in the order Saliency Map lays them out: prompt, image, concept, frame."""
        suffix = {prompt: "" if self.prompts == ("positive",) else f" ({prompt})" for prompt in self.prompts}
        return [f"{name}{suffix[prompt]}" for prompt in self.prompts for _ in range(self.images)
                for name in self.names for _ in range(self.output_frames)]

    @property
    def score_note(self) -> str:
        """How the maps were scored, where it is not the paper's softmax over concepts ("" where it is)."""
        if self.one_concept_raw:
            return "raw score (one concept)"
        return "" if self.softmax else "raw score (softmax off)"

    def selected(self, space: str | None = None, raw: bool = False) -> Tensor:
        """The maps of one space (default: the one the user chose); raw: its raw scores' maps."""
        space = space or self.space
        maps = (self.raw_maps if space == "output" else self.raw_cross_attention_maps) if raw else None
        if maps is None:
            maps = self.maps if space == "output" else self.cross_attention_maps
        return maps

    @property
    def clips(self) -> int:
        """How many map sets of one image (one clip of `output_frames` frames for a video) there are, all prompts'."""
        return self.maps.shape[0] // self.frames

    def token_maps(self, space: str | None = None, raw: bool = False, clip: int | None = None,
                   concepts: list[int] | None = None) -> Tensor:
        """The maps on their token grid in pixel_maps' order and selection: [B, K, h, w]; for video, [B*V, K, h, w]
        with the token frame each of a clip's V decoded frames shows."""
        maps = self.selected(space, raw)
        if clip is not None:
            maps = maps[clip * self.frames:(clip + 1) * self.frames]
        if concepts is not None:
            maps = maps[:, concepts]
        if not self.video_frames:
            return maps
        clips = rearrange(maps, "(B F) K h w -> B F K h w", F=self.frames)
        shown = torch.tensor(self.video_frames, device=clips.device)
        return rearrange(clips.index_select(1, shown), "B V K h w -> (B V) K h w")

    def pixel_maps(self, space: str | None = None, raw: bool = False, clip: int | None = None,
                   concepts: list[int] | None = None) -> Tensor:
        """[B, K, H, W] float32 maps at the image's pixel size; for video, [B*V, K, H, W] with the V frames of
        each decoded clip in order. clip: that image's (clip's) maps alone, [V, K, H, W], for work image by image;
        concepts: those concepts' maps alone, in that order."""
        return token_maps_to_pixels(self.token_maps(space, raw, clip, concepts), self.image_size, self.token_pixels)


MAP_FIELDS = ("maps", "cross_attention_maps", "raw_maps", "raw_cross_attention_maps")


def concatenated(parts: list[ConceptMaps]) -> ConceptMaps:
    """The maps of consecutive parts of one batch (made alike, part by part) as the maps of the whole batch:
    each prompt's images in order, the positive prompt's first."""
    first = parts[0]
    alike = {field.name for field in fields(ConceptMaps)} - set(MAP_FIELDS)
    for index, part in enumerate(parts[1:], start=1):
        differing = sorted(name for name in alike if getattr(part, name) != getattr(first, name))
        if differing:
            raise ValueError(f"the maps of part {index} differ from part 0's in {', '.join(differing)}; only the "
                             "maps of one run's settings over parts of one batch can be joined")

    def joined(name: str) -> Tensor | None:
        if getattr(first, name) is None:
            return None
        per_prompt = [rearrange(getattr(part, name), "(P R) K h w -> P R K h w", P=len(first.prompts))
                      for part in parts]
        return rearrange(torch.cat(per_prompt, dim=1), "P R K h w -> (P R) K h w")

    return replace(first, **{name: joined(name) for name in MAP_FIELDS})


def token_grid_maps(scores: Tensor, grid: tuple[int, ...]) -> Tensor:
    """[B, K, N] scores over image tokens in row-major order, frame by frame for a (frames, rows, columns)
    grid, to [B, K, h, w], or [B*F, K, h, w] with each image's F frames in order."""
    h, w = grid[-2:]
    frames = grid[0] if len(grid) == 3 else 1
    if len(grid) not in (2, 3) or scores.shape[-1] != frames * h * w:
        raise ValueError(f"{scores.shape[-1]} image tokens do not form a {'x'.join(map(str, grid))} grid")
    return rearrange(scores, "B K (F h w) -> (B F) K h w", F=frames, h=h, w=w)


def token_maps_to_pixels(maps: Tensor, image_size: tuple[int, int], token_pixels: int) -> Tensor:
    """Upsample token grids to pixels, then crop the padding past the image's bottom/right."""
    height, width = image_size
    h, w = maps.shape[-2:]
    short_h, short_w = -(-height // token_pixels) - h, -(-width // token_pixels) - w
    if short_h > 1 or short_w > 1:
        raise ValueError(
            f"a {w}x{h} token grid at {token_pixels} px/token cannot cover a {width}x{height} image"
        )
    if short_h > 0 or short_w > 0:
        # The VAE drops the last few pixels when a side is not a multiple of 8; repeat the edge.
        maps = F.pad(maps.float(), (0, max(short_w, 0), 0, max(short_h, 0)), mode="replicate")
        h, w = maps.shape[-2:]
    up = F.interpolate(maps.float(), size=(h * token_pixels, w * token_pixels), mode="bilinear", align_corners=False)
    return up[..., :height, :width].contiguous()


def normalise(maps: Tensor, mode: str = "per_concept", frames: int = 1) -> Tensor:
    """Scale [B, K, H, W] maps to 0..1 per image and concept, per image jointly, or not at all. With frames > 1
    the batch holds clips of that many frames, each scaled as one image, so that a clip's brightness means
    the same in every frame (a concept that fades out does not get stretched back to full range)."""
    if mode == "none":
        return maps
    if mode not in NORMALISATIONS:
        raise ValueError(f"unknown normalisation {mode!r}; expected one of {NORMALISATIONS}")
    clips = rearrange(maps, "(B F) K H W -> B F K H W", F=frames)
    dims = (1, -2, -1) if mode == "per_concept" else (1, 2, 3, 4)
    low = clips.amin(dim=dims, keepdim=True)
    high = clips.amax(dim=dims, keepdim=True)
    return rearrange((clips - low) / (high - low).clamp_min(1e-12), "B F K H W -> (B F) K H W")


def colourise(maps: Tensor, colormap: int = cv2.COLORMAP_INFERNO) -> Tensor:
    """[..., H, W] maps in 0..1 to [..., H, W, 3] RGB in 0..1 with a perceptual colormap."""
    lead = maps.shape[:-2]
    flat = (maps.reshape(-1, *maps.shape[-2:]).clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    rgb = np.stack([cv2.cvtColor(cv2.applyColorMap(m, colormap), cv2.COLOR_BGR2RGB) for m in flat])
    return torch.from_numpy(rgb).float().div(255).reshape(*lead, *maps.shape[-2:], 3)


def overlay(image: Tensor, heat: Tensor, alpha: float = 0.6, out: Tensor | None = None) -> Tensor:
    """Blend [..., H, W, 3] heatmap colours over an image of the same size (into `out`, where given)."""
    if image.shape[-3:-1] != heat.shape[-3:-1]:
        raise ValueError(
            f"image is {image.shape[-2]}x{image.shape[-3]} but the maps are {heat.shape[-2]}x{heat.shape[-3]}"
        )
    return torch.add((1 - alpha) * image[..., :3], alpha * heat, out=out)


def preview_sized(images: Tensor, longest: int = PREVIEW_LONGEST) -> Tensor:
    """[N, H, W, C] images or [N, H, W] masks scaled down (area averages) so that their longer side is at most
    `longest` pixels, for a node's preview; smaller ones as they are."""
    height, width = images.shape[1:3]
    if max(height, width) <= longest:
        return images
    scale = longest / max(height, width)
    size = (max(1, round(height * scale)), max(1, round(width * scale)))
    planes = images[:, None] if images.dim() == 3 else images.movedim(-1, 1)
    shrunk = F.interpolate(planes.float(), size=size, mode="area")
    return shrunk[:, 0] if images.dim() == 3 else shrunk.movedim(1, -1)


def label_font(size: int) -> ImageFont.ImageFont:
    """Pillow's own bundled font at `size` px (its bitmap font where Pillow lacks FreeType)."""
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, ImportError, OSError):
        return ImageFont.load_default()


def colour_bar(width: int, height: int, colormap: int = cv2.COLORMAP_INFERNO) -> np.ndarray:
    """[height, width, 3] uint8: the heatmaps' colormap from low (left) to high (right)."""
    ramp = np.linspace(0, 255, max(width, 1)).round().astype(np.uint8)[None].repeat(max(height, 1), axis=0)
    return cv2.cvtColor(cv2.applyColorMap(ramp, colormap), cv2.COLOR_BGR2RGB)


def label_images(images: Tensor, labels: list[str], legend: bool = False) -> Tensor:
    """Write each label in white on a dark band at the top-left of its image ([N, H, W, 3] in 0..1), so
    that saved and previewed heatmaps say which concept they show.

    legend: also draw the colormap as a small bar from "low" to "high" at the bottom-left, so that a colour
    of the image under a translucent heatmap is not read as a high value.
    """
    if images.shape[0] != len(labels):
        raise ValueError(f"{len(labels)} labels for {images.shape[0]} images")
    height, width = images.shape[1:3]
    font = label_font(max(12, round(min(height, width) / 20)))
    margin = max(1, font.size // 4) if hasattr(font, "size") else 2
    pixels = (images.clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    out = []
    for image, text in zip(pixels, labels, strict=True):
        canvas = Image.fromarray(image)
        draw = ImageDraw.Draw(canvas)
        left, top, right, bottom = draw.textbbox((margin, margin), text, font=font)
        draw.rectangle((0, 0, right + margin, bottom + margin), fill=(0, 0, 0))
        draw.text((margin, margin), text, fill=(255, 255, 255), font=font)
        if legend:
            draw_legend(canvas, draw, font, margin)
        out.append(np.asarray(canvas))
    labelled = torch.from_numpy(np.stack(out)).float().div(255)
    # untouched pixels keep their exact values (the uint8 round trip would quantise them)
    changed = torch.from_numpy(np.stack(out) != pixels).any(dim=-1, keepdim=True)
    return torch.where(changed, labelled, images.cpu().float())


def draw_legend(canvas: Image.Image, draw: ImageDraw.ImageDraw, font, margin: int) -> None:
    """"low [colour bar] high" on a dark band at the bottom-left of the canvas."""
    _, top, low_right, bottom = draw.textbbox((0, 0), "low", font=font)
    high_width = draw.textbbox((0, 0), "high", font=font)[2]
    text_height = bottom - top
    bar_width = max(8, canvas.width // 4)
    band_width = min(canvas.width, low_right + bar_width + high_width + 4 * margin)
    band_top = canvas.height - text_height - 2 * margin
    draw.rectangle((0, band_top, band_width, canvas.height), fill=(0, 0, 0))
    draw.text((margin, band_top + margin - top), "low", fill=(255, 255, 255), font=font)
    bar_left = low_right + 2 * margin
    canvas.paste(Image.fromarray(colour_bar(bar_width, text_height)), (bar_left, band_top + margin))
    draw.text((bar_left + bar_width + margin, band_top + margin - top), "high", fill=(255, 255, 255), font=font)
