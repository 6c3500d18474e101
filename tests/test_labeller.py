"""Streaming labeller: outputs, tiling, nodata, masks, cancel and failure leave nothing behind."""

import json
import subprocess
import sys

import numpy as np
import pytest
from helpers import FIXTURES

from core.imagery.labeller import Cancelled, LabelParams, label_raster
from core.imagery.tiling import tiles_along
from core.model.engine import Engine
from core.setup.paths import PROJECT_ROOT


@pytest.fixture(scope="module")
def engine():
    return Engine.load(user_kb=False)


def test_tiles_cover_the_extent():
    assert tiles_along(256, 64, 64) == 4
    assert tiles_along(257, 64, 64) == 5  # the last tile overhangs rather than leaving a gap
    assert tiles_along(50, 64, 64) == 1
    assert tiles_along(256, 64, 32) == 7


def test_label_raster_writes_gpkg_tif_and_summary(engine, tmp_path):
    from osgeo import gdal, ogr

    p = LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "t.gpkg"), str(tmp_path / "t.tif"),
                    gsd=5, tile=64, labels=["water", "houses", "trees", "fields", "bare ground"])
    res = label_raster(p, engine)
    assert res.tiles == 16 and res.labelled == 16 and res.skipped_nodata == 0
    ds = ogr.Open(str(tmp_path / "t.gpkg"))
    layer = ds.GetLayer(0)
    assert layer.GetFeatureCount() == 16
    assert layer.GetSpatialRef().GetAuthorityCode(None) == "32618"
    f = layer.GetNextFeature()
    assert f.GetField("label") in p.labels and f.GetField("top3") and f.GetField("object_cues")
    assert abs(sum(json.loads(f.GetField("router")).values()) - 1) < 1e-3
    env = layer.GetExtent()
    assert abs((env[1] - env[0]) - 1280) < 1e-6  # 4 tiles x 64 px x 5 m
    tif = gdal.Open(str(tmp_path / "t.tif"))
    arr = tif.ReadAsArray()
    assert arr.shape == (4, 4) and set(np.unique(arr)) <= set(range(len(p.labels)))
    assert json.loads(tif.GetMetadataItem("RS_SAGE_CLASSES")) == p.labels
    assert tif.GetRasterBand(1).GetColorTable().GetCount() >= len(p.labels)
    summary = (tmp_path / "t.csv").read_text().splitlines()
    assert summary[0] == "label,tiles,area_ha,percent,uncertain_tiles" and len(summary) >= 2
    total_ha = sum(v["area_ha"] for v in res.summary.values())
    assert abs(total_ha - 16 * 320 * 320 / 1e4) < 0.1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv", "t.gpkg", "t.tif", "t.tif.aux.xml"]


def test_nodata_tiles_are_skipped_and_reported(engine, tmp_path):
    from osgeo import gdal

    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    path = str(tmp_path / "nd.tif")
    ds = gdal.GetDriverByName("GTiff").CreateCopy(path, src)
    for b in range(1, 5):
        band = ds.GetRasterBand(b)
        band.SetNoDataValue(0)
        arr = band.ReadAsArray()
        arr[:, :128] = 0  # the left half is nodata
        band.WriteArray(arr)
    ds = None
    res = label_raster(LabelParams(path, str(tmp_path / "nd.gpkg"), gsd=5, tile=64), engine)
    assert res.skipped_nodata == 8 and res.labelled == 8


def test_mask_polygons_limit_the_tiles(engine, tmp_path):
    from osgeo import ogr, osr

    src = ogr.GetDriverByName("GPKG").CreateDataSource(str(tmp_path / "mask.gpkg"))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    lyr = src.CreateLayer("mask", srs, ogr.wkbPolygon)
    from osgeo import gdal

    gt = gdal.Open(str(FIXTURES / "rgbn_clip.tif")).GetGeoTransform()
    x, y = gt[0] + 10, gt[3] - 10  # a small square inside the top-left tile only
    f = ogr.Feature(lyr.GetLayerDefn())
    f.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x} {y},{x+50} {y},{x+50} {y-50},{x} {y-50},{x} {y}))"))
    lyr.CreateFeature(f)
    src = None
    res = label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "m.gpkg"), gsd=5, tile=64,
                                   mask=str(tmp_path / "mask.gpkg")), engine)
    assert res.labelled == 1 and res.skipped_mask == 15


def test_cancel_leaves_nothing_under_the_output_names(engine, tmp_path):
    calls = []

    def cancelled():
        calls.append(1)
        return len(calls) > 1

    p = LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "c.gpkg"), str(tmp_path / "c.tif"),
                    gsd=1, tile=32, batch=8)
    with pytest.raises(Cancelled):
        label_raster(p, engine, cancelled=cancelled)
    assert list(tmp_path.iterdir()) == []


def test_failure_mid_run_leaves_nothing(engine, tmp_path, monkeypatch):
    real = engine.classify
    state = {"n": 0}

    def flaky(*a, **k):
        state["n"] += 1
        if state["n"] == 2:
            raise RuntimeError("disk on fire")
        return real(*a, **k)

    monkeypatch.setattr(engine, "classify", flaky)
    p = LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "f.gpkg"), gsd=2, tile=32, batch=8)
    with pytest.raises(RuntimeError):
        label_raster(p, engine)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("kwargs,message", [
    ({"raster": "/no/such.tif"}, "not found"),
    ({"extent": (0, 0, 1, 1)}, "does not overlap"),
    ({"bands": [1, 2, 9]}, "not three bands"),
    ({"tile": 8}, "too small"),
    ({"gsd": 2, "tile": 32, "max_tiles": 100}, "tiles"),  # 20 x 20 tiles
    ({"out_gpkg": "/no/such/folder/x.gpkg"}, "Output folder"),
])
def test_bad_parameters_give_clear_errors(engine, tmp_path, kwargs, message):
    args = {"raster": str(FIXTURES / "rgbn_clip.tif"), "out_gpkg": str(tmp_path / "x.gpkg"), "gsd": 5, "tile": 64}
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        label_raster(LabelParams(**args), engine)
    assert not (tmp_path / "x.gpkg").exists()


@pytest.mark.parametrize("views", [None, "1"])
def test_label_cli(tmp_path, views):
    proc = subprocess.run([sys.executable, "-m", "core", "label", str(FIXTURES / "landsat_clip.tif"),
                           "--out", str(tmp_path / "l.gpkg"), "--tif", str(tmp_path / "l.tif"),
                           "--gsd", "30", "--tile", "128", "--bands", "3", "2", "1",
                           *(["--views", views] if views else [])],
                          capture_output=True, text=True, cwd=PROJECT_ROOT, timeout=180)
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout)
    assert out["labelled"] == 4 and out["outputs"]["gpkg"].endswith("l.gpkg")
    assert out["views"] == (int(views) if views else 4)
    assert (tmp_path / "l.tif").is_file()


def test_a_guessed_band_order_is_said_not_silent(engine, tmp_path):
    """Three bands without colour interpretation (a Landsat B-G-R stack, for one) are read as
    R, G, B; the result says so and how to change it. Declared RGB or given bands: no note."""
    from osgeo import gdal

    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    bare = str(tmp_path / "bgr.tif")
    ds = gdal.Translate(bare, src, bandList=[3, 2, 1])
    for i in (1, 2, 3):
        ds.GetRasterBand(i).SetColorInterpretation(gdal.GCI_Undefined)
    ds = None

    def notes(raster, bands=None):
        p = LabelParams(raster, None, gsd=5, tile=64, bands=bands, labels=["water", "trees", "houses"])
        return label_raster(p, engine).notes

    assert any("which of its 3 bands are red, green and blue" in n for n in notes(bare))
    assert not any("red, green and blue" in n for n in notes(bare, [3, 2, 1]))
    assert not any("red, green and blue" in n for n in notes(str(FIXTURES / "rgbn_clip.tif")))
