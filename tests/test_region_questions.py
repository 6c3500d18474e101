"""Questions over a region: shares, comparisons, where, describe; and the parser on real wording."""

import json
from collections import Counter

import pytest
from helpers import FIXTURES

from core.engine import Engine
from core.labeller import LabelParams, label_raster
from core.regions import ask_region
from rs_sage_dev.question_coverage import outcome

RASTER = str(FIXTURES / "rgbn_clip.tif")
LABELS = ["water", "forest", "farmland", "houses", "road"]


@pytest.fixture(scope="module")
def engine():
    return Engine.load(user_kb=False)


@pytest.fixture(scope="module")
def region():
    from osgeo import gdal
    from shapely.geometry import box

    ds = gdal.Open(RASTER)
    gt = ds.GetGeoTransform()
    return box(gt[0], gt[3] + ds.RasterYSize * gt[5], gt[0] + ds.RasterXSize * gt[1], gt[3])


@pytest.fixture(scope="module")
def labeller_counts(engine, region, tmp_path_factory):
    """The labeller's own per-tile labels for the same region, scale, tiles and labels."""
    out = tmp_path_factory.mktemp("lab") / "t.gpkg"
    res = label_raster(LabelParams(RASTER, str(out), gsd=5, tile=64, labels=LABELS, extent=region.bounds), engine)
    return Counter({k: v["tiles"] for k, v in res.summary.items()}), res.labelled


def test_rsvqa_lr_sample_parses_to_the_benchmark_type_or_is_refused():
    sample = json.loads((FIXTURES / "rsvqa_lr_sample.json").read_text())["questions"]
    assert len(sample) == 50
    got = [(q["question"], outcome(q["question"])) for q in sample]
    wrong = [(q, o, s["expected"]) for (q, o), s in zip(got, sample, strict=True) if o != s["expected"]]
    assert not wrong, wrong


@pytest.mark.parametrize("thing", ["forest", "road", "houses"])
def test_area_share_agrees_with_the_labeller(engine, region, labeller_counts, thing):
    counts, n = labeller_counts
    res = ask_region(engine, RASTER, region, f"How much of this area is {thing}?", gsd=5, tile=64, labels=LABELS)
    assert res.type == "share" and len(res.tiles) == n
    assert res.answer == f"{100 * counts[thing] / n:.0f} %"
    assert len(res.supporting) == counts[thing]
    assert f"({counts[thing]} of {n} tiles" in res.text


@pytest.mark.parametrize("a, b, relation", [("road", "houses", "more"), ("forest", "houses", "less"),
                                            ("water", "farmland", "equal")])
def test_comparison_agrees_with_the_labeller(engine, region, labeller_counts, a, b, relation):
    counts, _ = labeller_counts
    question = {"more": f"Are there more {a} than {b}?", "less": f"Is there less {a} than {b}?",
                "equal": f"Is the number of {a} equal to the number of {b}?"}[relation]
    res = ask_region(engine, RASTER, region, question, gsd=5, tile=64, labels=LABELS)
    want = {"more": counts[a] > counts[b], "less": counts[a] < counts[b], "equal": counts[a] == counts[b]}[relation]
    assert res.type == "comparison" and res.answer == ("yes" if want else "no")
    assert len(res.supporting) == counts[a] + counts[b]


def test_where_highlights_the_tiles_that_have_it(engine, region, labeller_counts):
    counts, n = labeller_counts
    # one of the labels: the tiles the labeller gives that label, so the map and the answer agree
    res = ask_region(engine, RASTER, region, "Where are the houses?", gsd=5, tile=64, labels=LABELS)
    labelled = [i for i, t in enumerate(res.tiles) if t.scene == "houses"]
    assert res.type == "where" and res.supporting == labelled and len(labelled) == counts["houses"]
    assert res.answer == (f"{len(labelled)} of {n} tiles" if labelled else "not found")
    # anything else: the tiles where the presence head says yes
    other = ask_region(engine, RASTER, region, "Where are the boats?", gsd=5, tile=64, labels=LABELS)
    yes = [i for i, t in enumerate(other.tiles) if t.answer == "yes"]
    assert other.supporting == yes and "model sees it" in other.text


def test_describe_names_the_main_scenes_with_shares(engine, region, labeller_counts):
    counts, n = labeller_counts
    res = ask_region(engine, RASTER, region, "What is in this region?", gsd=5, tile=64, labels=LABELS)
    top, k = counts.most_common(1)[0]
    assert res.answer == top and f"{top} {100 * k / n:.0f} %" in res.text
    assert "mostly rural" in res.text or "mostly urban" in res.text
