"""Tile grids over a raster at a target ground sampling distance (pure geometry, no I/O)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

from ..errors import RsSageError


@dataclass(frozen=True)
class GridSpec:
    """Tiles of ``tile`` px at ``gsd`` m/px, every ``stride`` px, over a pixel window."""

    x0: float  # window in source pixel coordinates (may be fractional)
    y0: float
    width: float
    height: float
    src_per_tile: float  # source pixels across one tile
    src_per_stride: float
    cols: int
    rows: int
    raster_w: float = math.inf  # the raster's size in source pixels: tiles never hang past it
    raster_h: float = math.inf

    @property
    def count(self) -> int:
        return self.cols * self.rows

    def windows(self) -> Iterator[tuple[int, int, float, float, float]]:
        """(row, col, xoff, yoff, size) in source pixels, row-major. The last row and column are
        shifted inwards to end at the raster's edge (overlapping their neighbour) instead of hanging
        past it, so a raster whose size is not a multiple of the tile is covered to its edge and no
        tile is half fill; only a raster smaller than one tile still gets an overhanging tile."""
        for r in range(self.rows):
            y = _inside(self.y0 + r * self.src_per_stride, self.src_per_tile, self.raster_h)
            for c in range(self.cols):
                yield r, c, _inside(self.x0 + c * self.src_per_stride, self.src_per_tile, self.raster_w), y, \
                    self.src_per_tile


def _inside(off: float, size: float, limit: float) -> float:
    return max(0.0, min(off, limit - size)) if limit >= size else off


def metres_per_unit(srs, centre_lat: float | None = None) -> tuple[float, float]:
    """Metres per CRS unit along x and y; for a geographic CRS, at the raster's centre latitude."""
    if srs is None:
        raise RsSageError("The raster has no coordinate reference system; assign one first.")
    if srs.IsGeographic():
        lat = math.radians(centre_lat or 0.0)
        # WGS84 ellipsoid lengths of one degree (standard series expansions).
        m_lat = 111132.92 - 559.82 * math.cos(2 * lat) + 1.175 * math.cos(4 * lat)
        m_lon = 111412.84 * math.cos(lat) - 93.5 * math.cos(3 * lat)
        return m_lon, m_lat
    return srs.GetLinearUnits(), srs.GetLinearUnits()


def make_grid(width: float, height: float, x0: float, y0: float, native_m: float, gsd: float,
              tile: int, stride: int, raster_w: float = math.inf, raster_h: float = math.inf) -> GridSpec:
    if tile < 32:
        raise RsSageError(f"Tile size {tile} px is too small; use at least 32 px.")
    if stride <= 0 or stride > tile * 4:
        raise RsSageError(f"Stride {stride} px must be between 1 and 4x the tile size.")
    if gsd <= 0 or native_m <= 0:
        raise RsSageError("Ground sampling distance must be positive.")
    src_tile = tile * gsd / native_m
    src_stride = stride * gsd / native_m
    if width <= 0 or height <= 0:
        raise RsSageError("The extent is empty (zero width or height).")
    return GridSpec(x0, y0, width, height, src_tile, src_stride,
                    tiles_along(width, src_tile, src_stride), tiles_along(height, src_tile, src_stride),
                    raster_w, raster_h)


def tiles_along(length: float, tile: float, stride: float) -> int:
    """Tiles needed to cover ``length`` completely; the last one may overhang the end."""
    if length <= tile + 1e-6:
        return 1
    return math.ceil((length - tile) / stride - 1e-6) + 1



# Ground footprints the model was trained on: AID scenes are about 75 m to 4.8 km across, EuroSAT
# tiles 640 m. A tile is read at the labeller's scale and resized to the model's input, so at
# 30 m/px a 224 px tile is a 6.7 km scene, wider than anything in training; the default tile is
# therefore chosen by its footprint, not by its pixel count.
TRAINED_FOOTPRINT_M = (75.0, 4800.0)
DEFAULT_FOOTPRINT_M = 900.0  # 224 px at the model's default 4 m/px; 32 px (960 m) at Landsat's 30 m
MIN_TILE_PX, DEFAULT_TILE_PX = 32, 224


def footprint_tile(gsd: float, footprint_m: float = DEFAULT_FOOTPRINT_M) -> int:
    """The default tile (px, multiple of 32 from 32 to 224) whose footprint at ``gsd`` m/px is
    closest to ``footprint_m``."""
    if gsd <= 0:
        raise RsSageError("Ground sampling distance must be positive.")
    return int(min(DEFAULT_TILE_PX, max(MIN_TILE_PX, 32 * round(footprint_m / gsd / 32))))


def footprint_text(tile: int, gsd: float) -> str:
    """'a tile covers 960 m x 960 m (training: 75 m-4.8 km)', with a warning outside that range."""
    m = tile * gsd
    lo, hi = TRAINED_FOOTPRINT_M
    size = f"{m / 1000:.3g} km" if m >= 1000 else f"{m:.3g} m"
    text = f"A tile covers {size} x {size} (training scenes: {lo:g} m-{hi / 1000:g} km)."
    if m > hi:
        text += " Wider than any training scene: use a smaller tile or a finer scale."
    elif m < lo:
        text += " Smaller than any training scene: use a larger tile or a coarser scale."
    return text


def suggest_tile(width_m: float, height_m: float, gsd: float, max_tiles: int = 400,
                 default: int | None = None, smallest: int = MIN_TILE_PX, largest: int = 1024) -> int:
    """A tile size (px, multiple of 32) that gives a sensible number of tiles over an extent:
    the footprint default when it gives 9..max_tiles, larger for wide extents (up to ``largest``
    and never past the widest training scene), smaller for small ones (down to ``smallest``) so
    a small layer still gets a map, not 2 x 2 tiles."""
    def count(tile: int) -> int:
        return tiles_along(width_m, tile * gsd, tile * gsd) * tiles_along(height_m, tile * gsd, tile * gsd)

    tile = default or footprint_tile(gsd)
    largest = max(tile, min(largest, 32 * int(TRAINED_FOOTPRINT_M[1] / gsd / 32)))
    while count(tile) > max_tiles and tile < largest:
        tile = min(largest, tile + 32)
    while count(tile) < 9 and tile > smallest:
        tile = max(smallest, tile - 32)
    return tile
