"""The argmax mask of edge-refined maps, with full-size work only where the winner can change.

A refined map is q = a . I + b clamped to the map's range, a and b bilinear from the guided filter's coarse grid
(refine.Guide). Over a tile of TILE_CELLS x TILE_CELLS coarse cells, a and b stay between the min and max of the
tile's cells and the ring of cells around it (bilinear weights are convex), and the image's colours between the
tile's own min and max; so every concept's q has bounds worked out on the coarse grid. Where the bounds settle
which concept wins and whether it is present, the tile is settled whole. The other tiles, along the objects'
edges, are filtered at full size as Guide.applied filters whole planes (the same bilinear weights), a batch of
tiles at a time. The mask is the one masks.concept_mask cuts from the full-size maps, without those maps: at
4096 x 4096 they are K planes of 64 MiB, and most of their pixels decide nothing.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from .masks import ONE_CONCEPT_CUT, winning
from .refine import Guide, combined, fitted_token_maps

# A tile's side in coarse cells (32 pixels, two tokens of Flux, on a grid 4 pixels fine): smaller tiles have
# tighter bounds, larger ones less overhead per tile.
TILE_CELLS = 8
# Unsettled tiles filtered at full size in one batch: K x 4 planes of (TILE_CELLS + 2) x subsample squared each.
TILES_AT_ONCE = 256
# Bounds are widened by this share of their terms' magnitude, so that a tile settled by them is settled for the
# rounded values of the full-size arithmetic too (a few float32 ulps per term).
ROUNDING_MARGIN = 1e-5
# The same for the presence cut, on values scaled to 0..1.
CUT_MARGIN = 1e-6


@dataclass(frozen=True)
class Filtered:
    """A map set through the guided filter short of its full-size output: the coefficients [B, K, 4, h, w] on the
    guide's coarse grid and the range [B, K, 1, 1] of each map that its values are clamped to (refine.edge_aware_maps'
    clamp)."""

    coefficients: Tensor
    low: Tensor
    high: Tensor

    @classmethod
    def of(cls, guide: Guide, pixel_maps: Tensor) -> "Filtered":
        low, high = torch.aminmax(pixel_maps.detach().flatten(-2).to(torch.float32), dim=-1)
        return cls(guide.coefficients(pixel_maps), low[..., None, None], high[..., None, None])

    @classmethod
    def of_tokens(cls, guide: Guide, token_maps: Tensor, image_size: tuple[int, int], token_pixels: int) -> "Filtered":
        """Token maps [B, K, h, w] filtered as refine.refined_token_maps filters them: no map at full size."""
        coefficients, (low, high) = fitted_token_maps(token_maps, guide, image_size, token_pixels)
        return cls(coefficients, low, high)


def refined_argmax_mask(guide: Guide, maps: Filtered, selected: list[int], raw: Filtered | None = None,
                        raw_concepts: list[int] = ()) -> Tensor | None:
    """[B, H, W] bool: where a selected concept wins the argmax of the refined maps (the first of equal maxima, as
    masks.winning) and, for the concepts of raw_concepts, is present there (masks.concept_presence of the refined raw
    maps in the range of the raw maps as made; raw's i-th map is concept raw_concepts[i]'s). None where the image is
    not a whole number of coarse cells: filter the maps whole instead."""
    factor = guide.subsample
    height, width = guide.full.shape[-2:]
    rows, columns = maps.coefficients.shape[-2:]
    if (rows * factor, columns * factor) != (height, width):
        return None
    return torch.stack([_ImageTiles(guide, b, rows, columns).mask(maps, selected, raw, list(raw_concepts))
                        for b in range(guide.full.shape[0])])


class _ImageTiles:
    """One image of the batch cut into tiles: the colours' bounds per tile and each tile's pixels."""

    def __init__(self, guide: Guide, index: int, rows: int, columns: int):
        self.index, self.factor, self.cells = index, guide.subsample, TILE_CELLS
        self.tiles = (math.ceil(rows / self.cells), math.ceil(columns / self.cells))
        self.shape = (rows * self.factor, columns * self.factor)
        side = self.cells * self.factor
        colours = guide.full[index]  # [3, H, W]
        spare = (self.tiles[0] * side - colours.shape[-2], self.tiles[1] * side - colours.shape[-1])
        if any(spare):  # past the image's edge, the edge pixels again: they change no tile's min or max
            colours = F.pad(colours[None], (0, spare[1], 0, spare[0]), mode="replicate")[0]
        # [tiles, tiles, 3, side, side], a view
        self.colour_tiles = colours.unflatten(-1, (self.tiles[1], side)).unflatten(1, (self.tiles[0], side)) \
            .permute(1, 3, 0, 2, 4)
        # each tile's min and max colour [3, tiles, tiles]: along the rows first, where the pixels lie together
        low, high = colours.unflatten(-1, (self.tiles[1], side)).aminmax(dim=-1)  # [3, H, tiles]
        self.colour_low = low.unflatten(1, (self.tiles[0], side)).amin(dim=2)
        self.colour_high = high.unflatten(1, (self.tiles[0], side)).amax(dim=2)

    def ringed(self, filtered: Filtered) -> Tensor:
        """The coefficient planes [K * 4, rows + 2, columns + 2] of this image, a ring of replicated cells around
        them (the edge pixels' bilinear weights clamp to the edge cells) and up to whole tiles."""
        planes = filtered.coefficients[self.index].flatten(0, 1)
        rows, columns = planes.shape[-2:]
        pad = (1, self.tiles[1] * self.cells - columns + 1, 1, self.tiles[0] * self.cells - rows + 1)
        return F.pad(planes[None], pad, mode="replicate")[0]

    def bounds(self, filtered: Filtered, ringed: Tensor) -> tuple[Tensor, Tensor]:
        """Each map's low and high bounds of its refined values per tile, [K, tiles, tiles], widened for rounding and
        clamped as the values are.

        q = a . (I - c) + (b + a . c) for the tile's mid colour c: the second term is bilinear in the cells' own
        b + a . c, the first within |a| times half the tile's colour range, which is 0 on a flat tile (a and b are
        large and of opposite sign along edges; bounding a . I and b apart would lose their cancelling)."""
        size = self.cells + 2
        windows = ringed.unfold(1, size, self.cells).unfold(2, size, self.cells).unflatten(0, (-1, 4))
        middle = (self.colour_low + self.colour_high) / 2  # [3, tiles, tiles]
        half = (self.colour_high - self.colour_low) / 2
        shifted = windows[:, 3].clone()  # [K, tiles, tiles, size, size]
        for c in range(3):
            shifted.addcmul_(windows[:, c], middle[c][..., None, None])
        lowest, highest = shifted.flatten(-2).aminmax(dim=-1)
        # [K, 4, tiles, tiles]: a max pool over the tiles' windows, not a copy of every window
        largest = F.max_pool2d(ringed.abs()[None], size, stride=self.cells)[0].unflatten(0, (-1, 4))
        brightest = torch.maximum(self.colour_low.abs(), self.colour_high.abs())
        spread = (largest[:, :3] * half).sum(dim=1)
        margin = ROUNDING_MARGIN * (largest[:, 3] + (largest[:, :3] * brightest).sum(dim=1))
        clamp_low, clamp_high = filtered.low[self.index], filtered.high[self.index]  # [K, 1, 1]
        lowest = torch.minimum(torch.maximum(lowest - spread - margin, clamp_low), clamp_high)
        highest = torch.minimum(torch.maximum(highest + spread + margin, clamp_low), clamp_high)
        return lowest, highest

    def values(self, ringed: Tensor, within: tuple[Tensor, Tensor], tile_rows: Tensor, tile_columns: Tensor,
               concepts: list[int]) -> Tensor:
        """The refined values [n, len(concepts), side, side] of those concepts' maps on the n tiles at (tile_rows,
        tile_columns), from the ringed planes [K * 4, ...], clamped to within's (low, high) [K, 1, 1], as
        Guide.applied writes them."""
        size, side = self.cells + 2, self.cells * self.factor
        planes = torch.tensor([4 * k + j for k in concepts for j in range(4)], device=ringed.device)
        # only the tiles' patches of the concepts' planes are gathered, never whole planes
        patches = ringed.unfold(1, size, self.cells).unfold(2, size, self.cells)[
            planes[:, None], tile_rows[None], tile_columns[None]]
        planes = F.interpolate(patches.transpose(0, 1), size=(size * self.factor,) * 2, mode="bilinear",
                               align_corners=False)
        inner = slice(self.factor, self.factor + side)
        planes = planes[..., inner, inner].unflatten(1, (-1, 4))  # [n, k, 4, side, side]
        out = torch.empty(planes.shape[0], planes.shape[1], side, side, device=planes.device)
        combined(planes, self.colour_tiles[tile_rows, tile_columns][:, None], out,
                 (within[0][concepts][None], within[1][concepts][None]))
        return out

    def within(self, filtered: Filtered, concepts: list[int] | None = None) -> tuple[Tensor, Tensor]:
        """The clamp (low, high) [K, 1, 1] of this image's maps (of those concepts alone)."""
        low, high = filtered.low[self.index], filtered.high[self.index]
        return (low, high) if concepts is None else (low[concepts], high[concepts])

    def mask(self, maps: Filtered, selected: list[int], raw: Filtered | None, raw_concepts: list[int]) -> Tensor:
        ringed = self.ringed(maps)
        low, high = self.bounds(maps, ringed)  # [K, tiles, tiles]
        concepts = low.shape[0]
        settled_in = torch.zeros(self.tiles, dtype=torch.bool, device=low.device)
        settled_out = torch.ones(self.tiles, dtype=torch.bool, device=low.device)
        raw_ringed = raw_low = raw_high = cut_low = cut_span = None
        if raw is not None and raw_concepts:
            raw_ringed = self.ringed(raw)
            raw_low, raw_high = self.bounds(raw, raw_ringed)
            cut_low, cut_high = (bound[:, 0, 0] for bound in self.within(raw))  # the raw maps' range, as made
            cut_span = (cut_high - cut_low).clamp_min(1e-12)  # masks.concept_presence's scaling
        for s in selected:
            others = [k for k in range(concepts) if k != s]
            if others:
                wins, loses = low[s] > high[others].amax(dim=0), high[s] < low[others].amax(dim=0)
            else:  # one concept wins its own argmax everywhere
                wins, loses = torch.ones_like(settled_in), torch.zeros_like(settled_in)
            if s in raw_concepts:
                j = raw_concepts.index(s)
                present = (raw_low[j] - cut_low[j]) / cut_span[j] >= ONE_CONCEPT_CUT + CUT_MARGIN
                absent = (raw_high[j] - cut_low[j]) / cut_span[j] < ONE_CONCEPT_CUT - CUT_MARGIN
                wins, loses = wins & present, loses | absent
            settled_in |= wins
            settled_out &= loses
        side = self.cells * self.factor
        out = settled_in.repeat_interleave(side, dim=0).repeat_interleave(side, dim=1)
        tiles_view = out.unflatten(1, (self.tiles[1], side)).unflatten(0, (self.tiles[0], side)).permute(0, 2, 1, 3)
        tile_rows, tile_columns = (~(settled_in | settled_out)).nonzero(as_tuple=True)
        # The concepts that can win somewhere on each unsettled tile: the others stay below one concept's low bound
        # all over it, so they neither win nor tie there, and their maps are not filtered on it. Tiles are filtered
        # in groups of the same candidates.
        maps_within = self.within(maps)
        raw_within = self.within(raw) if raw is not None else None
        top = low[:, tile_rows, tile_columns].amax(dim=0)
        can_win = (high[:, tile_rows, tile_columns] >= top).T  # [n, K]
        patterns, pattern_of = torch.unique(can_win, dim=0, return_inverse=True)
        for index, pattern in enumerate(patterns.tolist()):
            candidates = [k for k in range(concepts) if pattern[k]]
            shown = [s for s in selected if s in candidates]
            if not shown:  # no selected concept can win on these tiles: they stay out of the mask
                continue
            group = (pattern_of == index).nonzero()[:, 0]
            places = [candidates.index(s) for s in shown]
            # the shown concepts with a presence cut: their place among the shown and among the raw maps
            cut = [(i, raw_concepts.index(s)) for i, s in enumerate(shown) if s in raw_concepts]
            raw_places = [j for _, j in cut]
            if cut:
                cut_from, cut_by = cut_low[raw_places, None, None], cut_span[raw_places, None, None]
            for start in range(0, len(group), TILES_AT_ONCE):
                part = group[start:start + TILES_AT_ONCE]
                rows, columns = tile_rows[part], tile_columns[part]
                won = winning(self.values(ringed, maps_within, rows, columns, candidates), places)
                if cut:
                    raw_values = self.values(raw_ringed, raw_within, rows, columns, raw_places)
                    present = raw_values.sub_(cut_from).div_(cut_by) >= ONE_CONCEPT_CUT
                    for place, (i, _) in enumerate(cut):
                        won[:, i] &= present[:, place]
                tiles_view[rows, columns] = won.any(dim=1)
        return out[:self.shape[0], :self.shape[1]]
