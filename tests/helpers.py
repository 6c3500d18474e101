"""Real imagery for tests: tiles cut from the committed GeoTIFF clips."""

from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def digest(path) -> str:
    """sha256 of a file: inputs and user files must come out byte for byte."""
    import hashlib

    return hashlib.sha256(open(path, "rb").read()).hexdigest()


def fixture_tiles(name: str = "rgbn_clip.tif", size: int = 128, bands=None) -> list[np.ndarray]:
    from core.imagery.raster import default_rgb_bands, open_raster, percentile_stretch, read_rgb

    ds = open_raster(FIXTURES / name)
    bands = bands or default_rgb_bands(ds)
    stretch = percentile_stretch(ds, bands)
    tiles = []
    for y in range(0, ds.RasterYSize - size + 1, size):
        for x in range(0, ds.RasterXSize - size + 1, size):
            rgb, _ = read_rgb(ds, bands, x, y, size, size, size, size, stretch)
            tiles.append(rgb)
    return tiles


def huge_vrt(path, size: int = 100_000) -> str:
    """A size x size px 3-band VRT with the clip's georeferencing and no sources: plans of
    millions of tiles without a byte on disk (32 px tiles at 5 m: 9,765,625 for 100,000 px)."""
    from osgeo import gdal

    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    ds = gdal.GetDriverByName("VRT").Create(str(path), size, size, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    ds = None
    return str(path)
