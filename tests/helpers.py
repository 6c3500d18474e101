"""Real imagery for tests: tiles cut from the committed GeoTIFF clips."""

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def fixture_tiles(name: str = "rgbn_clip.tif", size: int = 128, bands=None) -> list[np.ndarray]:
    from core.raster import default_rgb_bands, open_raster, percentile_stretch, read_rgb

    ds = open_raster(FIXTURES / name)
    bands = bands or default_rgb_bands(ds)
    stretch = percentile_stretch(ds, bands)
    tiles = []
    for y in range(0, ds.RasterYSize - size + 1, size):
        for x in range(0, ds.RasterXSize - size + 1, size):
            rgb, _ = read_rgb(ds, bands, x, y, size, size, size, size, stretch)
            tiles.append(rgb)
    return tiles
