"""Long clips sampled through ComfyUI's context windows (comfy/context_windows.py, the Context Windows nodes).

The sampler then calls the model once per window of latent frames (transformer_options["context_window"] holds
the window's index_list) and fuses the windows' outputs frame by frame with its fuse method's weights. Each
window's scores land on their own frames of the whole clip with the same weights (aggregate.TokenWindow), so
every frame's map is the weighted mean of the steps, layers and windows that covered it.
"""

import inspect
from dataclasses import dataclass

import comfy.context_windows
import torch

from ...ca_core.aggregate import TokenWindow

RELATIVE = "relative"  # ComfyUI's ContextFuseMethods.RELATIVE: a running mean weighted by each frame's bias


@dataclass(frozen=True)
class ContextWindows:
    """A sampling run's context handler and the clip it windows: `frames` latent frames along `dim`."""

    handler: object  # comfy.context_windows.IndexListContextHandler
    dim: int
    frames: int

    @classmethod
    def of_run(cls, guider, noise) -> "ContextWindows | None":
        """The windows a sampling run's guider applies (ComfyUI's model_options["context_handler"]), if any."""
        handler = (getattr(guider, "model_options", None) or {}).get("context_handler")
        if handler is None or not hasattr(handler, "fuse_method") or not isinstance(noise, torch.Tensor):
            return None
        dim = getattr(handler, "dim", 0)
        return cls(handler, dim, noise.shape[dim]) if dim < noise.ndim else None

    def token_window(self, window, grid: tuple[int, ...], latent: torch.Tensor) -> TokenWindow:
        """Where the window's scores land: the call's token grid `grid` (frames, rows, columns) over its latent's
        frames, which are the window's frames after any causal anchor frame the sampler puts first (and drops
        from the output)."""
        if len(grid) != 3 or self.dim != 2 or latent.ndim != 5:
            raise ValueError(
                f"ConceptAttention follows context windows over a video's frames (dim 2 of its [B, C, frames, H, W] "
                f"latent), but these windows slice dim {self.dim} of a model whose tokens form a {len(grid)}-D grid: "
                "set the Context Windows node's dim to 2 on a video model, or bypass it for the maps' run")
        frames, latent_frames, device = list(window.index_list), latent.shape[2], latent.device
        anchor = getattr(window, "causal_anchor_index", None)
        anchored = anchor is not None and anchor >= 0
        if latent_frames != len(frames) + anchored or grid[0] != latent_frames:
            raise ValueError(
                f"ConceptAttention cannot place this context window's maps: its {latent_frames} latent frames make "
                f"{grid[0]} token frames (the model's tokens span several latent frames), so a window's token "
                "frames are not the clip's. Bypass the Context Windows node for the maps' run, or use a model whose "
                "tokens are one latent frame each (HunyuanVideo, CogVideoX 1.0)")
        tokens_per_frame = grid[1] * grid[2]
        weights = torch.as_tensor(self.frame_weights(frames), dtype=torch.float32)
        inside = torch.arange(tokens_per_frame)
        kept = (torch.arange(anchored, latent_frames)[:, None] * tokens_per_frame + inside).flatten()
        placed = (torch.as_tensor(frames)[:, None] * tokens_per_frame + inside).flatten()
        return TokenWindow(kept=kept.to(device), placed=placed.to(device),
                           weights=weights.repeat_interleave(tokens_per_frame).to(device),
                           total=self.frames * tokens_per_frame)

    def grid(self, window_grid: tuple[int, ...]) -> tuple[int, ...]:
        """The whole clip's token grid, from a window's."""
        return (self.frames, *window_grid[1:])

    def frame_weights(self, frames: list[int]) -> list[float]:
        """The weight the sampler gives each frame of the window when it fuses the windows' latents."""
        handler = self.handler
        if handler.fuse_method.name == RELATIVE:  # comfy.context_windows: combine_context_window_results' bias
            centre, half = (frames[0] + frames[-1]) / 2, (frames[-1] - frames[0] + 1e-2) / 2
            return [max(1e-2, 1 - abs(frame - centre) / half) for frame in frames]
        weigh = comfy.context_windows.get_context_weights
        extra = {"context_overlap": handler.context_overlap} if "context_overlap" in inspect.signature(
            weigh).parameters else {}
        weights = weigh(len(frames), self.frames, frames, handler, **extra)
        return [float(weight) for weight in weights]

