"""One rule for valid pixels: declared and user nodata, NaN, mask, fill collars; the stretch from
valid pixels only; collar tiles never labelled; a message that names the real reason."""

import numpy as np
import pytest
from helpers import FIXTURES

from core.errors import RsSageError
from core.imagery.units import format_area
from core.imagery.valid_pixels import PixelRule, detect_fill, pixel_rule, valid_stretch


@pytest.fixture(scope="module")
def engine():
    from core.model.engine import Engine

    return Engine.load(user_kb=False)


COLLAR = FIXTURES / "landsat_collar.tif"  # uint16, zero collar on about half, no nodata declared


def full_read(path):
    from osgeo import gdal

    return gdal.Open(str(path)).ReadAsArray()


def expected_tiles(arrays, invalid, tile=64, min_valid=0.5):
    """(row, col) of the tiles a 1:1 read should label: at least ``min_valid`` valid pixels."""
    _, h, w = arrays.shape
    keep = set()
    for r in range(h // tile):
        for c in range(w // tile):
            if 1 - invalid[r * tile:(r + 1) * tile, c * tile:(c + 1) * tile].mean() >= min_valid:
                keep.add((r, c))
    return keep


def labelled_tiles(gpkg):
    from osgeo import ogr

    ds = ogr.Open(str(gpkg))
    return {(f.GetField("tile_row"), f.GetField("tile_col")): f.GetField("label") for f in ds.GetLayer(0)}


def test_the_collar_fixture_has_a_collar_and_declares_nothing():
    from osgeo import gdal

    ds = gdal.Open(str(COLLAR))
    assert all(ds.GetRasterBand(b).GetNoDataValue() is None for b in (1, 2, 3))
    zero = (full_read(COLLAR) == 0).all(axis=0).mean()
    assert 0.3 < zero < 0.7


def test_fill_is_found_along_the_border_and_the_stretch_ignores_it():
    from osgeo import gdal

    a = full_read(COLLAR)
    ds = gdal.Open(str(COLLAR))
    stretch, rule = valid_stretch(ds, [1, 2, 3])
    assert rule.fill == 0 and rule.fill_detected
    valid = ~(a == 0).all(axis=0)
    for i in range(3):  # the fixture is under the sample size, so the sample is every pixel
        lo, hi = np.percentile(a[i][valid].astype(np.float64), [2, 98])
        assert stretch.low[i] == pytest.approx(lo) and stretch.high[i] == pytest.approx(hi)
        assert stretch.low[i] > 1000  # the zero-counting stretch would start at 0
    naive_low = np.percentile(a[0].astype(np.float64), 2)
    assert naive_low == 0


def test_detect_fill_needs_an_extreme_value_on_the_border():
    img = np.full((3, 20, 20), 50, np.uint8)
    img[:, 5:15, 5:15] = np.arange(100, 200).reshape(10, 10)
    assert detect_fill(img) == 50  # constant border at the minimum
    img[0, 0, :] = 10  # the minimum is now elsewhere; 50 is no longer an extreme
    assert detect_fill(img) is None
    stripes = np.random.default_rng(0).integers(0, 255, (3, 20, 20)).astype(np.uint8)
    assert detect_fill(stripes) is None  # no value shared by all bands along the border


def test_the_rule_covers_declared_user_nan_fill_and_mask():
    a = np.array([[[1.0, 2.0, 0.0, np.nan, 5.0, 7.0]], [[1.0, 9.0, 0.0, 1.0, 5.0, 7.0]]], np.float32)
    rule = PixelRule((1, 2), declared=(2.0, None), user=((), ((6.5, 7.5),)), fill=0.0)
    mask = np.array([[1, 1, 1, 1, 0, 1]])
    assert rule.valid(a, mask).tolist() == [[True, False, False, False, False, False]]
    assert "declared nodata 2" in rule.describe() and "6.5-7.5" in rule.describe()
    partial_zero = np.array([[[0]], [[5]]], np.uint8)  # one band at zero is still imagery
    assert PixelRule((1, 2), (None, None)).valid(partial_zero).all()


def test_user_nodata_joins_the_rule(tmp_path):
    from osgeo import gdal

    ds = gdal.Open(str(COLLAR))
    rule = pixel_rule(ds, [1, 2, 3], {1: [(7000.0, 7600.0)]})
    assert rule.user[0] == ((7000.0, 7600.0),) and rule.user[1] == ()


def test_collar_tiles_are_not_labelled(engine, tmp_path):
    from core.imagery.labeller import LabelParams, label_raster

    a = full_read(COLLAR)
    expected = expected_tiles(a, (a == 0).all(axis=0))
    assert 4 <= len(expected) <= 12  # the fixture really mixes collar and scene
    res = label_raster(LabelParams(str(COLLAR), str(tmp_path / "t.gpkg"), gsd=30, tile=64,
                                   labels=["water", "cropland", "forest", "urban area"]), engine)
    assert set(labelled_tiles(tmp_path / "t.gpkg")) == expected
    assert res.skipped_nodata == 16 - len(expected)
    assert "fill 0" in res.nodata_rule


def test_user_nodata_skips_tiles_in_the_labeller(engine, tmp_path):
    from core.imagery.labeller import LabelParams, label_raster

    a = full_read(COLLAR)
    valid_blue = a[0][~(a == 0).all(axis=0)]
    lo, hi = float(valid_blue.min()), float(np.percentile(valid_blue, 60))
    invalid = (a == 0).all(axis=0) | ((a[0] >= lo) & (a[0] <= hi))
    expected = expected_tiles(a, invalid)
    assert expected != expected_tiles(a, (a == 0).all(axis=0))  # the range changes the answer
    label_raster(LabelParams(str(COLLAR), str(tmp_path / "t.gpkg"), gsd=30, tile=64, labels=["water", "forest"],
                             nodata={1: [(lo, hi)]}), engine)
    assert set(labelled_tiles(tmp_path / "t.gpkg")) == expected


def test_nothing_to_label_names_the_real_reason(engine, tmp_path):
    from core.imagery.labeller import LabelParams, label_raster

    with pytest.raises(RsSageError, match=r"The layer is .* smaller than one scene the model can read.*64 m"):
        label_raster(LabelParams(str(FIXTURES / "uav_clip.tif"), str(tmp_path / "u.gpkg")), engine)
    assert not list(tmp_path.iterdir())  # nothing written, no empty outputs
    with pytest.raises(RsSageError, match=r"all 4 tiles have under 50% valid pixels.*fill 0"):
        label_raster(LabelParams(str(COLLAR), str(tmp_path / "c.gpkg"), gsd=30, tile=64,
                                 extent=_top_right_extent()), engine)
    assert not list(tmp_path.iterdir())


def _top_right_extent():
    """The fixture's top-right 128 x 128 px: collar only."""
    from osgeo import gdal

    gt = gdal.Open(str(COLLAR)).GetGeoTransform()
    x0, y1 = gt[0] + 128 * gt[1], gt[3]
    return (x0, y1 + 128 * gt[5], x0 + 128 * gt[1], y1)


def test_cli_label_matches_the_library(engine, tmp_path, capsys):
    from core.cli import main
    from core.imagery.labeller import LabelParams, label_raster

    labels = ["water", "cropland", "forest", "urban area"]
    label_raster(LabelParams(str(COLLAR), str(tmp_path / "lib.gpkg"), gsd=30, tile=64, labels=labels), engine)
    assert main(["label", str(COLLAR), "--out", str(tmp_path / "cli.gpkg"), "--gsd", "30", "--tile", "64",
                 "--labels", *labels]) == 0
    assert labelled_tiles(tmp_path / "cli.gpkg") == labelled_tiles(tmp_path / "lib.gpkg")


@pytest.mark.parametrize(("m2", "text"), [(0, "0 m²"), (0.5, "0.50 m²"), (950, "950 m²"), (12_345, "1.23 ha"),
                                          (2_500_000, "250 ha"), (36_000_000, "36.0 km²"),
                                          (1.2e9, "1,200 km²")])
def test_areas_read_in_m2_ha_km2(m2, text):
    assert format_area(m2) == text


@pytest.mark.parametrize("declare", [True, False])
def test_nan_pixels_are_nodata_declared_or_not(engine, tmp_path, declare):
    from osgeo import gdal

    from core.imagery.labeller import LabelParams, label_raster

    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    path = str(tmp_path / "nan.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 256, 256, 3, gdal.GDT_Float32)
    ds.SetGeoTransform(src.GetGeoTransform())
    ds.SetProjection(src.GetProjection())
    for b in (1, 2, 3):
        a = src.GetRasterBand(b).ReadAsArray().astype(np.float32)
        a[:, :128] = np.nan  # the left half
        ds.GetRasterBand(b).WriteArray(a)
        if declare:
            ds.GetRasterBand(b).SetNoDataValue(float("nan"))
    ds = None
    res = label_raster(LabelParams(path, str(tmp_path / "n.gpkg"), gsd=5, tile=64), engine)
    assert res.labelled == 8 and res.skipped_nodata == 8
    assert {c for _, c in labelled_tiles(tmp_path / "n.gpkg")} == {2, 3}
    assert sum(v["tiles"] for v in res.summary.values()) == 8  # NaN never enters the area summary
