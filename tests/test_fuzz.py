"""Fuzz: random rasters through the labeller, random strings through ask and the knowledge-base
import. Every case ends in a result or a clear RsSageError: no other exception, no crash, no
output under a target name after a failure, inputs unchanged. ``FUZZ_CASES=1000 make test
PYTEST_ARGS=tests/test_fuzz.py`` runs a long campaign; ``make test`` runs a quick one."""

import os

import numpy as np
import pytest
from helpers import digest

from core.errors import RsSageError

CASES = int(os.environ.get("FUZZ_CASES", "12"))


@pytest.fixture(scope="module")
def engine():
    from core.model.engine import Engine

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


@pytest.mark.parametrize("seed", range(CASES))
def test_random_rasters_through_the_labeller(engine, tmp_path, seed):
    from core.imagery.labeller import LabelParams, label_raster

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
    from core.model.knowledge import KnowledgeBase, UserKnowledge, read_import_file

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


def test_seeded_campaign_of_500_images_and_500_questions(engine):
    """Issue 29's CI campaign: 500 random images (sizes 1-300 px, flat, noise, stripes, 1-4
    channels, any dtype) through classify and 500 random questions through ask: every case
    ends in answers or an RsSageError, never another exception."""
    rng = np.random.default_rng(29)
    outcomes = {"ok": 0, "refused": 0}
    for i in range(500):
        h, w = int(rng.integers(1, 300)), int(rng.integers(1, 300))
        kind = i % 5
        c = int(rng.choice([1, 2, 3, 4]))
        if kind == 0:
            img = rng.integers(0, 256, (h, w, c)).astype(np.uint8)
        elif kind == 1:
            img = np.full((h, w, c), rng.integers(0, 256), np.uint8)
        elif kind == 2:
            img = ((np.arange(w) // max(1, int(rng.integers(1, 20)))) % 2 * 255).astype(np.uint8)[None, :, None] \
                * np.ones((h, 1, c), np.uint8)
        elif kind == 3:
            img = rng.normal(0, 1e6, (h, w, c)).astype(rng.choice([np.float32, np.int16, np.uint16]))
        else:
            img = rng.integers(0, 256, (h, w)).astype(np.uint8)
        try:
            engine.classify([img], ["water", "forest"], 1)
            outcomes["ok"] += 1
        except RsSageError:
            outcomes["refused"] += 1
    words = ["is", "there", "how", "many", "much", "a", "an", "river", "rural", "urban", "what", "where", "not",
             "colour", "red", "france", "more", "than", "water", "florp", "?", "of", "this", "area", "the"]
    alphabet = list("abcdefghijklmnopqrstuvwxyz ?,'0123456789") + ["é", "水", "\udcff", "\x00"]
    img = np.full((64, 64, 3), 90, np.uint8)
    for _ in range(500):
        if rng.random() < 0.6:
            q = " ".join(rng.choice(words, int(rng.integers(0, 9))))
        else:
            q = "".join(rng.choice(alphabet, int(rng.integers(0, 80))))
        try:
            engine.ask([img], q)
            outcomes["ok"] += 1
        except RsSageError:
            outcomes["refused"] += 1
    assert outcomes["ok"] + outcomes["refused"] == 1000 and outcomes["ok"] > 0 and outcomes["refused"] > 0
