"""Tiles lie on the raster: edge tiles are shifted inwards (no half-fill tiles), and the 50 %
valid-pixel rule holds at coarse scales on declared-nodata speckle (issue 26)."""

from __future__ import annotations

import numpy as np
import pytest
from helpers import FIXTURES
from osgeo import gdal

from core.imagery.labeller import LabelParams, label_raster


@pytest.fixture(scope="module")
def engine():
    from core.model.engine import Engine

    return Engine.load(user_kb=False)


def test_a_raster_not_a_multiple_of_the_tile_is_covered_to_its_edge(engine, tmp_path):
    odd = tmp_path / "odd.tif"
    gdal.Translate(str(odd), str(FIXTURES / "rgbn_clip.tif"), srcWin=[0, 0, 201, 139], bandList=[1, 2, 3])
    res = label_raster(LabelParams(str(odd), None, gsd=5, tile=64), engine)
    assert res.tiles == 4 * 3 and res.skipped_nodata == 0 and res.labelled == 12
    ds = gdal.Open(str(odd))
    gt = ds.GetGeoTransform()
    xs = [r.bounds for r in res.records]
    assert len(xs) == 12
    assert max(b[2] for b in xs) == pytest.approx(gt[0] + 201 * gt[1])  # to the edge, not past it
    assert min(b[1] for b in xs) == pytest.approx(gt[3] + 139 * gt[5])


def test_declared_nodata_speckle_is_skipped_at_coarse_scales(engine, tmp_path):
    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    speckle = tmp_path / "speckle.tif"
    ds = gdal.GetDriverByName("GTiff").Create(str(speckle), src.RasterXSize, src.RasterYSize, 3, gdal.GDT_Byte)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    rng = np.random.default_rng(0)
    holes = rng.random((src.RasterYSize, src.RasterXSize)) < 0.9
    for b in range(1, 4):
        a = np.clip(src.GetRasterBand(b).ReadAsArray(), 1, 255).astype(np.uint8)
        a[holes] = 0
        ds.GetRasterBand(b).WriteArray(a)
        ds.GetRasterBand(b).SetNoDataValue(0)
    ds = None
    from core.errors import RsSageError

    with pytest.raises(RsSageError, match="valid pixels"):
        label_raster(LabelParams(str(speckle), None, gsd=20, tile=32), engine)
