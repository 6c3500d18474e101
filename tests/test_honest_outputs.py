"""Honest outputs: uncertain tiles are marked (field, summary, style), the threshold is chosen
by a rule that can be checked, and scales outside the model's range are brought back into it."""

import numpy as np
import pytest
from helpers import FIXTURES

from core.imagery.labeller import LabelParams, label_raster, tile_gsd
from core.model.engine import Engine, relative_score
from rs_sage_dev.calibrate import choose_threshold


@pytest.fixture(scope="module")
def engine():
    return Engine.load(user_kb=False, views=1)


def test_relative_score_is_zero_at_chance_and_one_at_certainty():
    assert relative_score(0.25, 4) == pytest.approx(0.0)
    assert relative_score(1.0, 30) == pytest.approx(1.0)
    assert relative_score(0.5, 2) == pytest.approx(0.0)


def test_threshold_separates_wrong_from_right():
    rng = np.random.default_rng(0)
    right = rng.uniform(0.4, 1.0, 400)
    wrong = rng.uniform(0.0, 0.5, 100)
    res = choose_threshold(np.concatenate([right, wrong]), np.r_[np.ones(400, bool), np.zeros(100, bool)])
    assert 0.5 <= res["threshold"] <= 0.6  # flagged answers right at most half the time
    assert res["accuracy_flagged"] <= 0.5
    assert res["wrong_flagged"] > 0.9 and res["right_flagged"] < 0.3
    assert res["accuracy_kept"] > res["accuracy_all"] > res["accuracy_flagged"]


def test_uncertain_tiles_are_flagged_in_every_output(engine, tmp_path):
    from osgeo import ogr

    shipped = engine.match_below
    engine.uncertain_below = 1.01  # every tile is under it
    try:
        res = label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "u.gpkg"), gsd=5, tile=64,
                                       labels=["water", "forest", "town"]), engine)
    finally:
        engine.uncertain_below = 0.0
    assert res.uncertain == res.labelled == 16
    ds = ogr.Open(str(tmp_path / "u.gpkg"))  # kept: the layer dies with its data source
    feats = list(ds.GetLayer(0))
    assert all(f.GetField("uncertain") == 1 for f in feats)
    assert sum(v["uncertain_tiles"] for v in res.summary.values()) == 16
    assert "uncertain_tiles" in (tmp_path / "u.csv").read_text().splitlines()[0]
    engine.match_below = -1.0  # and no 'none of these' threshold either
    try:
        res = label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), str(tmp_path / "c.gpkg"), gsd=5, tile=64,
                                       labels=["water", "forest", "town"]), engine)
    finally:
        engine.match_below = shipped
    assert res.uncertain == 0  # thresholds off: nothing is under them


def test_the_shipped_model_has_a_threshold():
    """0.2.0: 'none of these' (an absolute cosine, chosen on validation) carries the uncertainty;
    the relative 'ambiguous' rule found no threshold under which answers are wrong half the time
    (docs/uncertainty.json), so it is 0 and never fires."""
    from core.setup.presets import model_settings

    s = model_settings()
    assert 0 < s.get("match_below", -1) < 1 and 0 <= s.get("uncertain_below", 0) < 1


@pytest.mark.parametrize(("asked", "native", "expected", "noted"), [
    (None, 5.0, 5.0, False), (None, 0.02, 4.0, False), (None, 60.0, 32.0, True),
    (0.5, 0.02, 2.0, True), (100.0, 30.0, 32.0, True), (10.0, 30.0, 10.0, False),
])
def test_scale_is_kept_in_the_models_range(asked, native, expected, noted):
    gsd, note = tile_gsd(asked, native, 4.0, (2.0, 32.0))
    assert gsd == expected and (note is not None) == noted
    if note:
        assert "2-32 m/px" in note
