"""Questions over a region: shares, comparisons, where, describe; and the parser on real wording."""

import json
from collections import Counter

import pytest
from helpers import FIXTURES

from core.imagery.labeller import LabelParams, label_raster
from core.model.engine import Engine
from core.questions.regions import ask_region
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


def test_shares_weight_each_tile_by_its_area_inside_the_region():
    """Two tiles wholly inside (water, land) and a land tile of which only a tenth is inside:
    water is about half, not a third, and the areas add up to the region's."""
    from core.questions.question_parse import parse_question
    from core.questions.regions import TileAnswer, region_answer

    tiles = [TileAnswer((0, 0, 1, 1), "", 0.9, "water", 10_000.0, 1.0),
             TileAnswer((1, 0, 2, 1), "", 0.9, "farmland", 10_000.0, 1.0),
             TileAnswer((2, 0, 3, 1), "", 0.9, "farmland", 1_000.0, 0.1)]
    answer, _, support, shares, text = region_answer(parse_question("How much of this area is water?"),
                                                     tiles, [], [], 1.0, ["water", "farmland"])
    assert answer == "48 %" and support == [0]
    assert shares == {"farmland": 0.5238, "water": 0.4762}
    assert "about 1.00 ha" in text  # core.imagery.units.format_area, as the panel's region size


def test_a_region_answer_never_reports_more_area_than_the_region(engine):
    """A rectangle overhanging the raster on two sides: tiles are cut to raster and region, the
    answered area is at most the region's (and the part of it on the raster)."""
    from osgeo import gdal
    from shapely.geometry import box

    ds = gdal.Open(RASTER)
    gt = ds.GetGeoTransform()
    x0, y1 = gt[0], gt[3]
    x1, y0 = gt[0] + ds.RasterXSize * gt[1], gt[3] + ds.RasterYSize * gt[5]
    region = box(x0 + 0.37 * (x1 - x0), y0 - 300, x1 + 500, y0 + 0.41 * (y1 - y0))
    res = ask_region(engine, RASTER, region, "How much of this area is water?", gsd=5, tile=64, labels=LABELS)
    on_raster = region.intersection(box(x0, y0, x1, y1)).area
    assert res.region_m2 == pytest.approx(region.area)
    assert res.valid_m2 <= on_raster + 1e-6 and res.valid_m2 > 0.5 * on_raster
    assert sum(t.weight for t in res.tiles) == pytest.approx(res.valid_m2)
    assert "Region " in res.text and "% of it answered" in res.text
    from shapely import wkt

    assert all(wkt.loads(t.footprint).within(region.buffer(1e-6)) for t in res.tiles)
