"""Fuzz: random rasters through the labeller, random strings through ask and the knowledge-base
import. Every case ends in a result or a clear RsSageError: no other exception, no crash, no
output under a target name after a failure, inputs unchanged. ``FUZZ_CASES=1000 make test
PYTEST_ARGS=tests/test_fuzz.py`` runs a long campaign; ``make test`` runs a quick one."""

import hashlib
import os

import numpy as np
import pytest

from core.errors import RsSageError

CASES = int(os.environ.get("FUZZ_CASES", "12"))


@pytest.fixture(scope="module")
def engine():
    from core.engine import Engine

    return Engine.load(user_kb=False, views=1)


def random_raster(path, rng):
    from osgeo import gdal, osr

    dtype = rng.choice(["Byte", "UInt16", "Int16", "Float32"])
    bands = int(rng.integers(1, 6))
    w, h = int(rng.integers(1, 400)), int(rng.integers(1, 400))
    ds = gdal.GetDriverByName("GTiff").Create(str(path), w, h, bands, getattr(gdal, f"GDT_{dtype}"))
    crs = rng.choice(["none", "utm", "wgs84"])
    if crs == "utm":
        ds.SetGeoTransform((500000, float(rng.choice([0.05, 1, 5, 30, 300])), 0, 4e6, 0, -1.0 * 5))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        ds.SetProjection(srs.ExportToWkt())
    elif crs == "wgs84":
        ds.SetGeoTransform((10, 0.0001, 0, 45, 0, -0.0001))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(4326)
        ds.SetProjection(srs.ExportToWkt())
    hi = {"Byte": 255, "UInt16": 65535, "Int16": 32767, "Float32": 1e4}[dtype]
    for b in range(1, bands + 1):
        a = rng.uniform(0, hi, (h, w)).astype(np.float32)
        if rng.random() < 0.3:
            a[: h // 2] = 0
        if dtype == "Float32" and rng.random() < 0.5:
            a[rng.random((h, w)) < 0.3] = np.nan
        ds.GetRasterBand(b).WriteArray(a)
        if rng.random() < 0.3:
            ds.GetRasterBand(b).SetNoDataValue(float("nan") if dtype == "Float32" else 0)
    ds = None


def digest(path) -> str:
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.parametrize("seed", range(CASES))
def test_random_rasters_through_the_labeller(engine, tmp_path, seed):
    from core.labeller import LabelParams, label_raster

    rng = np.random.default_rng(seed)
    src = tmp_path / "in.tif"
    random_raster(src, rng)
    before = digest(src)
    out = tmp_path / "out" / "t.gpkg"
    out.parent.mkdir()
    params = LabelParams(str(src), str(out), out_tif=str(tmp_path / "out" / "c.tif"),
                         gsd=float(rng.choice([2, 5, 30])) if rng.random() < 0.7 else None,
                         tile=int(rng.choice([32, 64, 224])), max_tiles=2000,
                         labels=["water", "forest", "town"] if rng.random() < 0.5 else None)
    try:
        res = label_raster(params, engine)
        assert res.labelled > 0 and out.is_file()
    except RsSageError as exc:
        assert str(exc)
        assert list((tmp_path / "out").iterdir()) == []  # nothing under a target name, no partials
    assert digest(src) == before


@pytest.mark.parametrize("seed", range(CASES))
def test_random_strings_through_ask_and_import(engine, tmp_path, seed):
    from core.knowledge import KnowledgeBase, UserKnowledge, read_import_file

    rng = np.random.default_rng(1000 + seed)
    alphabet = list("abcdefghijklmnopqrstuvwxyz ?,;\"'\n\t0123456789") + ["é", "水", "\ufeff", "\x00"]
    text = "".join(rng.choice(alphabet, int(rng.integers(0, 120))))
    words = ["is", "there", "how", "many", "a", "river", "rural", "what", "colour", "?"]
    question = " ".join(rng.choice(words, int(rng.integers(0, 8)))) if rng.random() < 0.5 else text
    try:
        engine.ask([np.full((64, 64, 3), 90, np.uint8)], question)
    except RsSageError:
        pass
    f = tmp_path / ("kb.csv" if rng.random() < 0.5 else "kb.json")
    f.write_text("level,name,text\n" + text if f.suffix == ".csv" else text, encoding="utf-8")
    user = UserKnowledge(tmp_path / "user")
    try:
        user.add(read_import_file(f), KnowledgeBase.load(user_dir=False).entries)
    except RsSageError:
        assert not (tmp_path / "user" / "entries.jsonl").exists()
