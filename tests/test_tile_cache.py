"""Encode once, answer many: a second question about the same region reuses the encoded tiles."""

import numpy as np
import pytest
from helpers import FIXTURES

from core.imagery.tile_cache import EncodedTileCache
from core.model.engine import Engine
from core.questions.regions import ask_region

RASTER = str(FIXTURES / "rgbn_clip.tif")


@pytest.fixture(scope="module")
def engine():
    return Engine.load(user_kb=False)


def _region():
    from osgeo import gdal
    from shapely.geometry import box

    ds = gdal.Open(RASTER)
    gt = ds.GetGeoTransform()
    return box(gt[0], gt[3] + 200 * gt[5], gt[0] + 200 * gt[1], gt[3])


def test_second_question_reuses_every_tile_and_answers_the_same(engine, monkeypatch):
    cache = EncodedTileCache()
    region = _region()
    first = ask_region(engine, RASTER, region, "Is there a river?", gsd=5, tile=64, cache=cache)
    n = len(first.tiles)
    assert n > 1 and len(cache) == n and cache.misses == n

    def no_encoding(*_a, **_k):
        raise AssertionError("the encoder ran again")

    monkeypatch.setattr(engine, "encode_images", no_encoding)
    again = ask_region(engine, RASTER, region, "Is there a river?", gsd=5, tile=64, cache=cache)
    other = ask_region(engine, RASTER, region, "Is this a rural or an urban area?", gsd=5, tile=64, cache=cache)
    assert cache.hits == 2 * n
    assert (again.answer, again.confidence, again.text) == (first.answer, first.confidence, first.text)
    monkeypatch.undo()
    fresh = ask_region(engine, RASTER, region, "Is this a rural or an urban area?", gsd=5, tile=64)
    assert (other.answer, other.confidence) == (fresh.answer, fresh.confidence)


def test_other_pixels_are_other_keys(engine):
    cache = EncodedTileCache()
    region = _region()
    ask_region(engine, RASTER, region, "Is there a river?", gsd=5, tile=64, cache=cache)
    n = len(cache)
    ask_region(engine, RASTER, region, "Is there a river?", gsd=5, tile=64, bands=[3, 2, 1], cache=cache)
    assert len(cache) == 2 * n and cache.hits == 0


def test_cache_is_bounded_by_bytes():
    cache = EncodedTileCache(max_bytes=3 * 1000 * 4)
    for i in range(10):
        cache.put(("k", i), np.zeros(900, np.float32), np.zeros(100, np.float32))
    assert len(cache) == 3 and cache.nbytes <= cache.max_bytes
    assert cache.get(("k", 0)) is None and cache.get(("k", 9)) is not None
