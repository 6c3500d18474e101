"""The rs_sage Processing algorithms, in-process and through qgis_process.bin."""

import json
import os
import subprocess

import pytest
from conftest import PLUGIN_LINKS, ROOT
from helpers import FIXTURES


@pytest.fixture
def provider(qgis_app, qgis_processing):
    """Registered for the test and removed after; the Python object is kept alive meanwhile
    (the registry does not own a provider created from Python)."""
    from qgis.core import QgsApplication
    from rs_sage.processing_provider.provider import RsSageProvider

    registry = QgsApplication.processingRegistry()
    existing = registry.providerById("rs_sage")
    if existing is not None:
        registry.removeProvider(existing)
    prov = RsSageProvider()
    registry.addProvider(prov)
    yield prov
    registry.removeProvider(prov)


def test_provider_lists_four_algorithms(provider):
    ids = sorted(a.id() for a in provider.algorithms())
    assert ids == ["rs_sage:ask_region", "rs_sage:classify_extent", "rs_sage:find_similar", "rs_sage:label_raster"]


def test_label_raster_through_processing(provider, tmp_path):
    import processing

    out = str(tmp_path / "tiles.gpkg")
    res = processing.run("rs_sage:label_raster", {
        "INPUT": str(FIXTURES / "rgbn_clip.tif"), "GSD": 5, "TILE": 64, "STRIDE": 0,
        "LABELS": "water, houses\ntrees", "OUTPUT": out, "OUTPUT_RASTER": str(tmp_path / "c.tif"),
        "OUTPUT_SUMMARY": str(tmp_path / "s.json")})
    assert res["TILES"] == 16
    from qgis.core import QgsVectorLayer

    layer = QgsVectorLayer(out, "t", "ogr")
    assert layer.featureCount() == 16
    assert {f["label"] for f in layer.getFeatures()} <= {"water", "houses", "trees"}
    assert json.loads((tmp_path / "s.json").read_text())


def test_classify_extent_and_ask_region_through_processing(provider, tmp_path):
    import processing
    from qgis.core import QgsFeature, QgsGeometry, QgsRasterLayer, QgsRectangle, QgsVectorLayer

    raster = QgsRasterLayer(str(FIXTURES / "rgbn_clip.tif"), "clip")
    e = raster.extent()
    half = QgsRectangle(e.xMinimum(), e.center().y(), e.xMaximum(), e.yMaximum())
    ext = f"{half.xMinimum()},{half.xMaximum()},{half.yMinimum()},{half.yMaximum()} [EPSG:32618]"
    res = processing.run("rs_sage:classify_extent", {"INPUT": raster, "EXTENT": ext, "GSD": 5, "TILE": 64,
                                                     "OUTPUT": "memory:"})
    assert res["OUTPUT"].featureCount() == 8

    regions = QgsVectorLayer("Polygon?crs=EPSG:32618&field=name:string", "regions", "memory")
    feats = []
    for name, rect in (("west", QgsRectangle(e.xMinimum(), e.yMinimum(), e.center().x(), e.yMaximum())),
                       ("east", QgsRectangle(e.center().x(), e.yMinimum(), e.xMaximum(), e.yMaximum()))):
        f = QgsFeature(regions.fields())
        f.setGeometry(QgsGeometry.fromRect(rect))
        f.setAttributes([name])
        feats.append(f)
    regions.dataProvider().addFeatures(feats)
    res = processing.run("rs_sage:ask_region", {"INPUT": raster, "REGIONS": regions,
                                                "QUESTION": "Is this a rural or an urban area?", "GSD": 5,
                                                "TILE": 64, "OUTPUT": "memory:"})
    out = list(res["OUTPUT"].getFeatures())
    assert [f["name"] for f in out] == ["west", "east"]
    assert all(f["answer"] in ("rural", "urban") and 0 <= f["confidence"] <= 1 and f["evidence"] for f in out)
    assert all(f["type"] == "rural_urban" for f in out)


def test_processing_reports_bad_input_without_traceback(provider, tmp_path):
    import processing
    from qgis.core import QgsProcessingException

    with pytest.raises(QgsProcessingException, match="does not overlap"):
        processing.run("rs_sage:label_raster", {
            "INPUT": str(FIXTURES / "rgbn_clip.tif"), "EXTENT": "0,1,0,1 [EPSG:32618]", "GSD": 5, "TILE": 64,
            "OUTPUT": str(tmp_path / "x.gpkg")})


def test_label_raster_through_qgis_process(tmp_path):
    """The documented headless command: enable the plugin, then run the algorithm."""
    qp = "/usr/bin/qgis_process.bin"
    if not os.path.exists(qp):
        pytest.skip("qgis_process.bin not installed")
    site = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen",
           "QGIS_PLUGINPATH": str(PLUGIN_LINKS), "PYTHONPATH": f"{site}", "HF_HUB_OFFLINE": "1"}
    enable = subprocess.run([qp, "plugins", "enable", "rs_sage"], env=env, capture_output=True, text=True,
                            timeout=120)
    # exit 1 with "already enabled" is the state we want, not a failure
    assert enable.returncode == 0 or "already enabled" in enable.stdout + enable.stderr, enable.stdout + enable.stderr
    out = tmp_path / "qp.gpkg"
    run = subprocess.run([qp, "run", "rs_sage:label_raster", "--json", "--",
                          f"INPUT={FIXTURES / 'rgbn_clip.tif'}", "GSD=5", "TILE=128", f"OUTPUT={out}"],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    payload = json.loads(run.stdout[run.stdout.index("{"):])
    assert payload["results"]["TILES"] == 4 and out.is_file()
    assert "Traceback" not in run.stderr


def test_huge_plans_need_the_allow_large_flag_in_processing(provider, tmp_path):
    import processing
    from helpers import huge_vrt
    from qgis.core import QgsProcessingException

    vrt = huge_vrt(tmp_path / "huge.vrt")
    out = tmp_path / "h.gpkg"
    with pytest.raises(QgsProcessingException, match="9,765,625 tiles.*Allow very large runs"):
        processing.run("rs_sage:label_raster", {"INPUT": vrt, "GSD": 5, "TILE": 32, "OUTPUT": str(out)})
    assert not out.exists()


def test_label_raster_on_dask_through_processing(provider, tmp_path):
    pytest.importorskip("distributed")
    import processing

    out = str(tmp_path / "dask.gpkg")
    res = processing.run("rs_sage:label_raster", {
        "INPUT": str(FIXTURES / "rgbn_clip.tif"), "GSD": 5, "TILE": 64, "STRIDE": 0, "SCHEDULER": "local:2",
        "LABELS": "water, houses\ntrees", "OUTPUT": out})
    assert res["TILES"] == 16


def test_processing_output_gets_the_panels_style(provider, tmp_path):
    from qgis.core import (
        QgsApplication,
        QgsCategorizedSymbolRenderer,
        QgsProcessingContext,
        QgsProcessingFeedback,
        QgsProject,
        QgsVectorLayer,
    )

    from core.imagery.palette import label_colours

    out = str(tmp_path / "styled.gpkg")
    ctx = QgsProcessingContext()
    ctx.setProject(QgsProject.instance())
    ctx.addLayerToLoadOnCompletion(out, QgsProcessingContext.LayerDetails("tiles", QgsProject.instance(), "OUTPUT"))
    alg = QgsApplication.processingRegistry().algorithmById("rs_sage:label_raster")
    feedback = QgsProcessingFeedback()
    res, ok = alg.run({"INPUT": str(FIXTURES / "rgbn_clip.tif"), "GSD": 5, "TILE": 64, "LABELS": "water, forest, road",
                       "OUTPUT": out}, ctx, feedback)
    assert ok and res["TILES"] == 16
    styler = ctx.layerToLoadOnCompletionDetails(out).postProcessor()
    assert styler is not None
    layer = QgsVectorLayer(out, "tiles", "ogr")
    styler.postProcessLayer(layer, ctx, feedback)
    renderer = layer.renderer()
    assert isinstance(renderer, QgsCategorizedSymbolRenderer)
    colours = dict(zip(["water", "forest", "road"], label_colours(["water", "forest", "road"]), strict=True))
    cats = {c.value(): c.symbol().color().getRgb()[:3] for c in renderer.categories() if c.value() in colours}
    assert cats and all(tuple(colours[k]) == v for k, v in cats.items())


def test_an_unexpected_error_is_a_message_not_a_traceback(provider, tmp_path, monkeypatch):
    import processing
    import rs_sage.core.imagery.labeller as labeller
    from qgis.core import QgsProcessingException

    def broken(*_a, **_k):
        raise KeyError("boom")

    monkeypatch.setattr(labeller, "label_raster", broken)
    with pytest.raises(QgsProcessingException, match=r"Unexpected error \(KeyError: 'boom'\).*RS-SAGE log"):
        processing.run("rs_sage:label_raster", {"INPUT": str(FIXTURES / "rgbn_clip.tif"), "GSD": 5, "TILE": 64,
                                                "OUTPUT": str(tmp_path / "x.gpkg")})
    assert not (tmp_path / "x.gpkg").exists()


def test_ask_region_never_writes_over_its_regions_file(tmp_path):
    """The sweep's case, through qgis_process as the sweep ran it: OUTPUT equal to the REGIONS
    GeoPackage exited 0 and left one empty layer; an existing GeoPackage with other layers was
    replaced whole. Both are refused now and the files stay byte for byte."""
    import hashlib
    import shutil

    from osgeo import gdal, ogr, osr

    qp = "/usr/bin/qgis_process.bin"
    if not os.path.exists(qp):
        pytest.skip("qgis_process.bin not installed")
    src = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    gt = src.GetGeoTransform()
    x0, y1, x1, y0 = gt[0], gt[3], gt[0] + src.RasterXSize * gt[1], gt[3] + src.RasterYSize * gt[5]
    src = None
    gpkg = tmp_path / "regions.gpkg"
    ds = ogr.GetDriverByName("GPKG").CreateDataSource(str(gpkg))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32618)
    for name in ("regions", "roads"):
        lyr = ds.CreateLayer(name, srs, ogr.wkbPolygon)
        f = ogr.Feature(lyr.GetLayerDefn())
        f.SetGeometry(ogr.CreateGeometryFromWkt(f"POLYGON(({x0} {y0},{x1} {y0},{x1} {y1},{x0} {y0}))"))
        lyr.CreateFeature(f)
        f = lyr = None
    ds = None
    other = tmp_path / "other.gpkg"
    shutil.copy(gpkg, other)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (gpkg, other)}
    site = ROOT / ".venv" / "lib" / "python3.11" / "site-packages"
    env = {**os.environ, "HOME": str(tmp_path / "home"), "QT_QPA_PLATFORM": "offscreen",
           "QGIS_PLUGINPATH": str(PLUGIN_LINKS), "PYTHONPATH": f"{site}", "HF_HUB_OFFLINE": "1"}
    subprocess.run([qp, "plugins", "enable", "rs_sage"], env=env, capture_output=True, text=True, timeout=120)
    for out in (gpkg, other):
        run = subprocess.run([qp, "run", "rs_sage:ask_region", "--", f"INPUT={FIXTURES / 'rgbn_clip.tif'}",
                              f"REGIONS={gpkg}|layername=regions", "QUESTION=Is there a river?", "GSD=5",
                              "TILE=64", f"OUTPUT={out}"], env=env, capture_output=True, text=True, timeout=300)
        assert run.returncode != 0 and ("input layer" in run.stdout + run.stderr
                                        or "already holds" in run.stdout + run.stderr), run.stdout + run.stderr
        assert "Traceback" not in run.stderr
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in (gpkg, other)} == before

def test_find_similar_through_processing_ranks_as_the_cli(provider, tmp_path, capsys):
    """Panel-free path of issue 27: Processing and the CLI give the same ranking for the same examples."""
    import processing

    from core.cli import main
    from core.imagery.labeller import LabelParams, label_raster

    emb = tmp_path / "emb.gpkg"
    label_raster(LabelParams(str(FIXTURES / "rgbn_clip.tif"), None, gsd=5, tile=64, labels=["water", "forest"],
                             embeddings=str(emb)))
    res = processing.run("rs_sage:find_similar", {"EMBEDDINGS": str(emb), "EXAMPLES": "3, 7", "NOT": "5", "K": 6,
                                                  "OUTPUT": "memory:"})
    got = [f["tile_id"] for f in sorted(res["OUTPUT"].getFeatures(), key=lambda f: f["rank"])]
    assert main(["similar", str(emb), "--example", "3", "7", "--not", "5", "-k", "6", "--json"]) == 0
    cli = [json.loads(line)["fid"] for line in capsys.readouterr().out.splitlines()]
    assert got == cli and len(got) == 6 and not {3, 5, 7} & set(got)
