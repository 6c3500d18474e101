"""The dock panel driven like a user: pick a layer, set the extent, click, wait for the task."""

import time

import pytest
from helpers import FIXTURES
from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateReferenceSystem,
    QgsGeometry,
    QgsPointXY,
    QgsProject,
    QgsRasterLayer,
    QgsRectangle,
)
from qgis.gui import QgsMapMouseEvent
from qgis.PyQt.QtCore import QEvent, QPoint, Qt
from rs_sage.ui import result_layers


def wait_for_task(dock, timeout=120):
    start = time.time()
    while dock.task is not None:
        QgsApplication.processEvents()
        time.sleep(0.01)
        assert time.time() - start < timeout, "task did not finish"
    QgsApplication.processEvents()


def messages(iface, level):
    return " | ".join(str(m) for m in iface.messageBar().get_messages(level))


@pytest.fixture
def dock(qgis_iface, qgis_new_project):
    from rs_sage.ui.dock import RsSageDock

    qgis_iface.messageBar().clear_messages()
    d = RsSageDock(qgis_iface)
    yield d
    d.shutdown()
    d.deleteLater()


def add_raster(path, name="clip"):
    layer = QgsRasterLayer(str(path), name)
    assert layer.isValid(), path
    QgsProject.instance().addMapLayer(layer)
    return layer


def show(iface, layer, extent=None):
    canvas = iface.mapCanvas()
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(extent or layer.extent())
    canvas.refresh()
    QgsApplication.processEvents()


def classes_layers():
    return QgsProject.instance().mapLayersByName(result_layers.CLASSES_LAYER)


def set_up(dock, iface, layer, gsd, tile, extent=None):
    """What a user does first: show the layer, pick it in the panel, set scale and tile size."""
    show(iface, layer, extent)
    dock.layer_combo.setLayer(layer)
    dock.gsd.setValue(gsd)
    dock.tile.setValue(tile)


def run_classify(dock, iface, layer, gsd, tile, extent=None):
    set_up(dock, iface, layer, gsd, tile, extent)
    dock.classify_button.click()
    wait_for_task(dock)


def test_classify_extent_on_a_real_clip(dock, qgis_iface):
    layer = add_raster(FIXTURES / "rgbn_clip.tif")  # 256 px at 5 m: 4 x 4 tiles of 64 px
    set_up(dock, qgis_iface, layer, 5, 64)
    assert dock.estimate.text() == "about 16 tiles in the visible extent"
    run_classify(dock, qgis_iface, layer, gsd=5, tile=64)
    assert messages(qgis_iface, Qgis.Warning) == ""
    (out,) = classes_layers()
    assert out.crs() == layer.crs()
    assert out.featureCount() == 16
    for f in out.getFeatures():
        for name in ("label", "score", "top3", "scene_cues", "object_cues", "router"):
            assert f[name] not in (None, ""), name
        assert f["label"] in dock.labels()
    assert out.renderer().type() == "categorizedSymbol" and out.labelsEnabled()
    assert 0 < out.opacity() < 1
    assert dock.summary.rowCount() >= 1
    total = sum(float(dock.summary.item(r, 2).text()) for r in range(dock.summary.rowCount()))
    assert abs(total - 100) < 0.5
    assert QgsProject.instance().layerTreeRoot().findGroup("RS-SAGE") is not None
    assert "16 tiles" in messages(qgis_iface, Qgis.Success)


def _single_band(tmp_path):
    from osgeo import gdal

    path = str(tmp_path / "one_band.tif")
    gdal.Translate(path, str(FIXTURES / "rgbn_clip.tif"), bandList=[2])
    return path


def _geographic(tmp_path):
    from osgeo import gdal

    path = str(tmp_path / "wgs84.tif")
    gdal.Warp(path, str(FIXTURES / "rgbn_clip.tif"), dstSRS="EPSG:4326")
    return path


@pytest.mark.parametrize("make,gsd,tile,expected", [
    (lambda tmp: _single_band(tmp), 5, 64, 16),
    (lambda tmp: str(FIXTURES / "landsat_clip.tif"), 30, 64, 16),  # uint16, 3 bands
    (lambda tmp: str(FIXTURES / "rgbn_clip.tif"), 5, 128, 4),  # 4 bands
    (lambda tmp: _geographic(tmp), 5, 64, None),  # EPSG:4326
], ids=["1-band", "16-bit-3-band", "4-band", "epsg4326"])
def test_layer_kinds_classify(dock, qgis_iface, tmp_path, make, gsd, tile, expected):
    layer = add_raster(make(tmp_path))
    run_classify(dock, qgis_iface, layer, gsd, tile)
    assert messages(qgis_iface, Qgis.Warning) == ""
    (out,) = classes_layers()
    assert out.crs() == layer.crs()
    n = out.featureCount()
    if expected is not None:
        assert n == expected
    else:  # 256 px x 5 m = 1.28 km: 4 x 4 tiles give or take the lat/lon rounding
        assert 9 <= n <= 25
        assert layer.crs().isGeographic()
    labels = {f["label"] for f in out.getFeatures()}
    assert labels <= set(dock.labels())


def test_sixteen_bit_layer_stretch_from_valid_pixels_unless_set_by_hand():
    from qgis.core import QgsContrastEnhancement, QgsRasterMinMaxOrigin
    from rs_sage.qgis_adapter.layer_source import layer_source

    layer = QgsRasterLayer(str(COLLAR), "landsat")
    assert layer.renderer().redContrastEnhancement().minimumValue() == 0  # QGIS counts the collar
    src = layer_source(layer)
    assert src.bands == [1, 2, 3]
    assert src.stretch_low is None and "valid pixels" in src.contrast_note()  # core computes it
    r = layer.renderer().clone()
    for i, ce in enumerate((r.redContrastEnhancement(), r.greenContrastEnhancement(),
                            r.blueContrastEnhancement())):
        ce.setMinimumValue(7000 + i)
        ce.setMaximumValue(9000 + i)
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)  # what "user defined" min/max is in QGIS
    r.setMinMaxOrigin(origin)
    layer.setRenderer(r)
    src = layer_source(layer)
    assert src.stretch_low == [7000, 7001, 7002] and src.stretch_high == [9000, 9001, 9002]
    assert "set by hand (7000-9000" in src.contrast_note()


COLLAR = FIXTURES / "landsat_collar.tif"  # uint16, zero collar, no nodata declared
LANDCOVER = ["water", "cropland", "forest", "urban area"]


def tile_labels(features, layer, tile_m):
    """{(row, col): label} from tile polygons, by where their centres fall on the tile grid."""
    e = layer.extent()
    out = {}
    for f in features:
        c = f.geometry().centroid().asPoint()
        out[(int((e.yMaximum() - c.y()) // tile_m), int((c.x() - e.xMinimum()) // tile_m))] = f["label"]
    return out


def cli_labels(tmp_path, *extra):
    from osgeo import ogr
    from rs_sage.core.cli import main

    out = tmp_path / f"cli{len(extra)}.gpkg"
    assert main(["label", str(COLLAR), "--out", str(out), "--gsd", "30", "--tile", "64",
                 "--labels", *LANDCOVER, *extra]) == 0
    ds = ogr.Open(str(out))
    return {(f.GetField("tile_row"), f.GetField("tile_col")): f.GetField("label") for f in ds.GetLayer(0)}


def processing_labels(tmp_path, layer):
    import processing
    from qgis.core import QgsVectorLayer
    from rs_sage.processing_provider.provider import RsSageProvider

    registry = QgsApplication.processingRegistry()
    if registry.providerById("rs_sage") is None:
        prov = RsSageProvider()
        registry.addProvider(prov)
    else:
        prov = None
    try:
        out = str(tmp_path / f"proc{len(list(tmp_path.iterdir()))}.gpkg")
        processing.run("rs_sage:label_raster", {"INPUT": layer, "GSD": 30, "TILE": 64, "STRIDE": 0,
                                                "LABELS": ", ".join(LANDCOVER), "OUTPUT": out})
        vl = QgsVectorLayer(out, "t", "ogr")
        return {(f["tile_row"], f["tile_col"]): f["label"] for f in vl.getFeatures()}
    finally:
        if prov is not None:
            registry.removeProvider(prov)


def panel_labels(dock, iface, layer):
    for old in classes_layers():
        QgsProject.instance().removeMapLayer(old)
    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText("\n".join(LANDCOVER))
    run_classify(dock, iface, layer, gsd=30, tile=64)
    assert messages(iface, Qgis.Warning) == ""
    (out,) = classes_layers()
    return tile_labels(out.getFeatures(), layer, 64 * 30)


def test_panel_processing_and_cli_agree_and_skip_the_collar(dock, qgis_iface, qgis_processing, tmp_path):
    from osgeo import gdal

    layer = add_raster(COLLAR, "landsat collar")
    a = gdal.Open(str(COLLAR)).ReadAsArray()
    fill = (a == 0).all(axis=0)
    scene = {(r, c) for r in range(4) for c in range(4)
             if fill[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64].mean() <= 0.5}
    panel = panel_labels(dock, qgis_iface, layer)
    assert set(panel) == scene  # the collar is never labelled
    assert processing_labels(tmp_path, layer) == panel
    assert cli_labels(tmp_path) == panel
    assert "mostly-nodata tiles skipped (fill 0" in messages(qgis_iface, Qgis.Success)


def test_nodata_set_in_qgis_is_honoured_by_panel_and_processing(dock, qgis_iface, qgis_processing, tmp_path):
    import numpy as np
    from osgeo import gdal
    from qgis.core import QgsRasterRange

    layer = add_raster(COLLAR, "landsat collar")
    a = gdal.Open(str(COLLAR)).ReadAsArray()
    fill = (a == 0).all(axis=0)
    hi = float(np.percentile(a[0][~fill], 60))
    layer.dataProvider().setUserNoDataValue(1, [QgsRasterRange(1, hi)])
    bad = fill | ((a[0] >= 1) & (a[0] <= hi))
    expected = {(r, c) for r in range(4) for c in range(4)
                if bad[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64].mean() <= 0.5}
    without = {(r, c) for r in range(4) for c in range(4)
               if fill[r * 64:(r + 1) * 64, c * 64:(c + 1) * 64].mean() <= 0.5}
    assert expected and expected != without
    panel = panel_labels(dock, qgis_iface, layer)
    assert set(panel) == expected
    assert set(processing_labels(tmp_path, layer)) == expected


def test_too_small_a_layer_names_the_reason(dock, qgis_iface):
    layer = add_raster(FIXTURES / "uav_clip.tif", "uav")
    run_classify(dock, qgis_iface, layer, gsd=4, tile=224)
    text = messages(qgis_iface, Qgis.Warning)
    # how big the layer is, how big a scene must be, and no advice the controls cannot follow
    assert "smaller than one scene the model can read" in text and "at least 64 m across" in text
    assert "finer scale" not in text
    assert classes_layers() == []


def test_region_size_in_hectares(dock, qgis_iface):
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    e = layer.extent()  # 1,280 m square: 164 ha
    dock.set_region(QgsGeometry.fromRect(QgsRectangle(e.xMinimum(), e.yMinimum(), e.xMinimum() + 1000,
                                                      e.yMinimum() + 500)), layer.crs())
    assert dock.region_label.text() == "Region: 50.0 ha"


def _drag(tool, canvas, a: QgsPointXY, b: QgsPointXY):
    to_px = canvas.getCoordinateTransform().transform
    pa, pb = to_px(a), to_px(b)
    press = QgsMapMouseEvent(canvas, QEvent.MouseButtonPress, QPoint(int(pa.x()), int(pa.y())), Qt.LeftButton)
    release = QgsMapMouseEvent(canvas, QEvent.MouseButtonRelease, QPoint(int(pb.x()), int(pb.y())), Qt.LeftButton)
    tool.canvasPressEvent(press)
    tool.canvasReleaseEvent(release)


def test_ask_on_a_drawn_region(dock, qgis_iface):
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    set_up(dock, qgis_iface, layer, 5, 64)
    dock.rect_button.click()
    e = layer.extent()
    _drag(dock.map_tool, qgis_iface.mapCanvas(),
          QgsPointXY(e.xMinimum() + 100, e.yMaximum() - 100), QgsPointXY(e.xMinimum() + 700, e.yMaximum() - 700))
    assert dock.region is not None and dock.region.area() > 0
    annotations_before = len(QgsProject.instance().annotationManager().annotations())
    dock.question.setCurrentText("Is there a river?")
    dock.ask_button.click()
    wait_for_task(dock)
    assert messages(qgis_iface, Qgis.Warning) == ""
    res = dock.last_answer
    assert res.answer in ("yes", "no") and res.type == "presence" and len(res.tiles) >= 2
    assert len(QgsProject.instance().annotationManager().annotations()) == annotations_before + 1
    (log,) = QgsProject.instance().mapLayersByName(result_layers.QUESTIONS_LAYER)
    (f,) = list(log.getFeatures())
    assert f["question"] == "Is there a river?" and f["answer"] == res.answer
    assert f["type"] == "presence" and f["layer"] == "clip" and f["timestamp"]
    assert res.answer in dock.answer_view.toPlainText()
    assert len(dock.highlights) == len(res.supporting) >= 1


def test_cancel_stops_and_leaves_no_layer(dock, qgis_iface):
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    dock.confirm_large = lambda n: True
    set_up(dock, qgis_iface, layer, 2, 32)  # 64 m tiles every 32 m over 1,280 m: 39 x 39 tiles
    dock.overlap.setValue(50)
    dock.classify_button.click()
    assert dock.busy()
    dock.classify_button.click()  # a second click while running starts nothing
    assert "already running" in messages(qgis_iface, Qgis.Info) or not dock.classify_button.isEnabled()
    time.sleep(0.5)
    dock.cancel_button.click()
    wait_for_task(dock)
    assert classes_layers() == []
    assert "Cancelled" in messages(qgis_iface, Qgis.Info)
    assert dock.classify_button.isEnabled()


def test_errors_are_plain_messages_and_inputs_are_kept(dock, qgis_iface):
    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText("harbor\nforest")
    dock.classify_button.click()
    assert "no raster layer" in messages(qgis_iface, Qgis.Warning)

    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    dock.layer_combo.setLayer(layer)
    e = layer.extent()
    show(qgis_iface, layer, QgsRectangle(e.xMaximum() + 5000, e.yMaximum() + 5000,
                                         e.xMaximum() + 6000, e.yMaximum() + 6000))
    dock.classify_button.click()
    assert "outside the raster" in messages(qgis_iface, Qgis.Warning)

    asked = []
    dock.confirm_large = lambda n: asked.append(n) or False
    show(qgis_iface, layer)
    dock.gsd.setValue(2)
    dock.tile.setValue(32)
    dock.overlap.setValue(50)
    dock.classify_button.click()
    assert asked and asked[0] > dock.max_tiles() and dock.task is None

    dock.gsd.setValue(5)
    dock.question.setCurrentText("   ")
    dock.ask_button.click()
    assert "question is empty" in messages(qgis_iface, Qgis.Warning)
    dock.question.setCurrentText("Is there a harbour?")
    dock.ask_button.click()
    assert "Draw a region first" in messages(qgis_iface, Qgis.Warning)

    broken = QgsRasterLayer("/nonexistent/file.tif", "missing")
    QgsProject.instance().addMapLayer(broken, False)
    dock.layer_combo.setLayer(layer)
    dock.set_region(QgsGeometry.fromRect(layer.extent()), layer.crs())
    dock.layer_combo.setAdditionalLayers([])
    from rs_sage.core.errors import RsSageError
    from rs_sage.qgis_adapter.layer_source import layer_source

    with pytest.raises(RsSageError, match="not valid"):
        layer_source(broken)
    wms = QgsRasterLayer("url=http://127.0.0.1:9/wms&layers=x&format=image/png&crs=EPSG:4326&styles=",
                         "remote", "wms")
    with pytest.raises(RsSageError):
        layer_source(wms)

    far = QgsCoordinateReferenceSystem("EPSG:3031")  # Antarctic polar stereographic
    dock.set_region(QgsGeometry.fromRect(QgsRectangle(0, 0, 10, 10)), far)
    dock.ask_button.click()
    assert "outside the raster" in messages(qgis_iface, Qgis.Warning) or \
        "cannot be transformed" in messages(qgis_iface, Qgis.Warning)
    assert dock.labels_edit.toPlainText() == "harbor\nforest"
    assert dock.question.currentText() == "Is there a harbour?"
    assert dock.task is None and classes_layers() == []


def test_estimate_matches_the_tiles_classified(dock, qgis_iface):
    """256 px at 5 m with 96 px tiles: 3 x 3 tiles cover it; the last row and column are shifted
    inwards to end at the raster's edge, so none is half fill and all nine are labelled."""
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    set_up(dock, qgis_iface, layer, 5, 96)
    assert dock.estimate.text() == "about 9 tiles in the visible extent"
    dock.classify_button.click()
    wait_for_task(dock)
    (out,) = classes_layers()
    assert out.featureCount() == 9
    assert "mostly-nodata tiles skipped" not in messages(qgis_iface, Qgis.Success)


def test_answer_annotation_frame_grows_with_the_text():
    """A fixed frame clipped long evidence on the map; the frame now fits the wrapped text."""
    from qgis.PyQt.QtGui import QTextDocument

    def frame(text):
        doc = QTextDocument()
        doc.setPlainText(text)
        return result_layers.annotation_frame(doc)

    short, long_ = frame("Yes (0.91)"), frame("Yes (0.91): harbour scene; " + "boats, piers, water; " * 12)
    assert short.width() == long_.width() == result_layers.ANNOTATION_WIDTH_MM
    assert 8 <= short.height() < long_.height() <= 80


def test_unsupported_question_is_refused_in_the_panel(dock, qgis_iface):
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    set_up(dock, qgis_iface, layer, 5, 64)
    dock.set_region(QgsGeometry.fromRect(layer.extent()), layer.crs())
    dock.question.setCurrentText("What colour are the roofs?")
    dock.ask_button.click()
    assert "cannot answer questions about colours" in messages(qgis_iface, Qgis.Warning)
    assert dock.task is None and dock.question.currentText() == "What colour are the roofs?"


def test_install_buttons_only_when_packages_are_missing_and_diagnostics_copied(dock, monkeypatch):
    import rs_sage.ui.dock as dock_module
    from qgis.PyQt.QtWidgets import QApplication
    from rs_sage.core.setup.status import plugin_status

    assert dock.install_button.isHidden() and dock.install_wheels_button.isHidden()
    missing = plugin_status()
    missing.missing_modules = ["tokenizers"]
    monkeypatch.setattr(dock_module, "plugin_status", lambda: missing)
    dock.refresh_status()
    assert not dock.install_button.isHidden() and not dock.install_wheels_button.isHidden()
    assert "tokenizers" in dock.status_label.text()

    dock.diagnostics()
    wait_for_task(dock)
    assert "checksums" in dock.last_diagnostics and "model: ok" in dock.last_diagnostics
    assert QApplication.clipboard().text() == dock.last_diagnostics


def test_processing_sees_the_layer_as_the_panel_does(dock, qgis_iface, qgis_processing, tmp_path):
    """Band mapping (3, 2, 1) and a hand-set stretch: Processing feeds the model what the panel does."""
    import processing
    from qgis.core import QgsContrastEnhancement, QgsMultiBandColorRenderer, QgsRasterMinMaxOrigin, QgsVectorLayer
    from rs_sage.processing_provider.provider import RsSageProvider

    layer = add_raster(COLLAR, "landsat collar swapped")
    r = QgsMultiBandColorRenderer(layer.dataProvider(), 3, 2, 1)
    for i, setter in enumerate((r.setRedContrastEnhancement, r.setGreenContrastEnhancement,
                                r.setBlueContrastEnhancement)):
        ce = QgsContrastEnhancement(layer.dataProvider().dataType(3 - i))
        ce.setMinimumValue(7500)
        ce.setMaximumValue(10500 + 500 * i)
        ce.setContrastEnhancementAlgorithm(QgsContrastEnhancement.StretchToMinimumMaximum)
        setter(ce)
    origin = QgsRasterMinMaxOrigin()
    origin.setLimits(QgsRasterMinMaxOrigin.None_)
    r.setMinMaxOrigin(origin)
    layer.setRenderer(r)

    for old in classes_layers():
        QgsProject.instance().removeMapLayer(old)
    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText("\n".join(LANDCOVER))
    run_classify(dock, qgis_iface, layer, gsd=30, tile=64)
    (panel_layer,) = classes_layers()
    panel = {k: v for k, v in zip(tile_labels(panel_layer.getFeatures(), layer, 64 * 30),
                                  [round(f["score"], 3) for f in panel_layer.getFeatures()], strict=True)}
    registry = QgsApplication.processingRegistry()
    prov = RsSageProvider() if registry.providerById("rs_sage") is None else None
    if prov:
        registry.addProvider(prov)
    try:
        outs = {}
        import shutil

        plain = tmp_path / "plain_copy.tif"  # a path of its own: Processing would reuse the styled layer
        shutil.copy(COLLAR, plain)
        for name, lay in (("styled", layer), ("plain", str(plain))):
            out = str(tmp_path / f"{name}.gpkg")
            processing.run("rs_sage:label_raster", {"INPUT": lay, "GSD": 30, "TILE": 64, "STRIDE": 0,
                                                    "LABELS": ", ".join(LANDCOVER), "OUTPUT": out})
            vl = QgsVectorLayer(out, name, "ogr")
            outs[name] = {k: v for k, v in zip(tile_labels(vl.getFeatures(), layer, 64 * 30),
                                               [round(f["score"], 3) for f in vl.getFeatures()], strict=True)}
    finally:
        if prov:
            registry.removeProvider(prov)
    assert outs["styled"] == panel
    assert outs["plain"] != panel  # the styling matters, so the equality above means something


def test_one_line_comma_labels_are_four_classes_everywhere(dock):
    from rs_sage.core.model.label_text import parse_labels
    from rs_sage.processing_provider.common import parse_labels as processing_labels

    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText("water, cropland, forest, urban area")
    assert dock.labels() == ["water", "cropland", "forest", "urban area"]
    assert dock.labels_parsed.text().startswith("4 classes: water")
    dock.labels_edit.setPlainText("water; Water\n  urban   area ,\n\nforest")
    assert dock.labels() == ["water", "urban area", "forest"]
    assert processing_labels("water; urban area\nforest, Forest") == dock.labels()
    assert parse_labels(["water, cropland", "forest"]) == ["water", "cropland", "forest"]  # the CLI's args


def test_a_30_m_layer_opens_at_30_m_and_runs_without_the_tile_dialog(dock, qgis_iface):
    layer = add_raster(COLLAR, "landsat 30 m")
    show(qgis_iface, layer)
    dock.layer_combo.setLayer(None)
    dock.layer_combo.setLayer(layer)
    assert abs(dock.gsd.value() - 30.0) < 0.5
    assert "Native 30 m/px" in dock.scale_note.text()
    asked = []
    dock.confirm_large = lambda n: asked.append(n) or False
    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText("water, cropland, forest, urban area")
    dock.classify_button.click()
    wait_for_task(dock)
    assert not asked, asked
    assert messages(qgis_iface, Qgis.Warning) == ""
    assert classes_layers() and classes_layers()[-1].featureCount() > 0


def test_dock_fits_in_400_px(dock):
    assert dock.minimumSizeHint().width() <= 400
    assert dock.body.minimumSizeHint().width() <= 400  # what is inside the scroll area


def test_colours_mean_something_and_agree_between_panel_and_class_geotiff(dock, qgis_iface, tmp_path):
    from osgeo import gdal
    from rs_sage.core.cli import main
    from rs_sage.core.imagery.palette import label_colours

    labels = ["water", "cropland", "forest", "urban area", "bare land"]
    water, crop, forest, urban, bare = label_colours(labels)
    assert water[2] > max(water[:2])  # blue
    assert forest[1] > max(forest[0], forest[2])  # green
    assert crop[0] > 180 and crop[1] > 150 and crop[2] < 100  # yellow
    assert urban[0] > max(urban[1], urban[2]) + 80  # red
    assert bare[0] > bare[1] > bare[2]  # tan
    tif = tmp_path / "c.tif"
    assert main(["label", str(FIXTURES / "rgbn_clip.tif"), "--out", str(tmp_path / "c.gpkg"), "--tif", str(tif),
                 "--gsd", "5", "--tile", "64", "--labels", ", ".join(labels)]) == 0
    ds = gdal.Open(str(tif))  # kept alive while its colour table is read
    ct = ds.GetRasterBand(1).GetColorTable()
    assert [ct.GetColorEntry(i)[:3] for i in range(len(labels))] == [tuple(c) for c in label_colours(labels)]
    ds = None
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText(", ".join(labels))
    run_classify(dock, qgis_iface, layer, gsd=5, tile=64)
    (out,) = classes_layers()
    cats = {c.value(): c.symbol().color().getRgb()[:3] for c in out.renderer().categories()}
    for lab, rgb in zip(labels, label_colours(labels), strict=True):
        if lab in cats:
            assert cats[lab] == rgb


def test_new_question_types_in_the_panel_show_evidence_and_log_it(dock, qgis_iface):
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    set_up(dock, qgis_iface, layer, 5, 64)
    dock.preset.setCurrentText("Custom list (below)")
    dock.labels_edit.setPlainText("water, forest, farmland, houses, road")
    e = layer.extent()
    from qgis.core import QgsGeometry

    dock.set_region(QgsGeometry.fromRect(e), layer.crs())
    for question, qtype in (("How much of this area is forest?", "share"), ("Where are the houses?", "where"),
                            ("Is there more road than forest?", "comparison"), ("What is in this region?", "open")):
        dock.question.setEditText(question)
        dock.ask_button.click()
        wait_for_task(dock)
        assert dock.last_answer is not None and dock.last_answer.type == qtype, messages(qgis_iface, Qgis.Warning)
        assert dock.last_answer.text in dock.answer_view.toPlainText()
        assert len(dock.highlights) == len(dock.last_answer.supporting)
    log = QgsProject.instance().mapLayersByName(result_layers.QUESTIONS_LAYER)[0]
    types = [f["type"] for f in log.getFeatures()][-4:]
    assert types == ["share", "where", "comparison", "open"]
    assert all(f["evidence"] for f in log.getFeatures())


def test_a_new_answer_about_the_same_region_replaces_its_annotation(qgis_new_project):
    from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle

    crs = QgsCoordinateReferenceSystem("EPSG:32618")
    region = QgsGeometry.fromRect(QgsRectangle(0, 0, 100, 100))
    other = QgsGeometry.fromRect(QgsRectangle(500, 500, 600, 600))
    manager = QgsProject.instance().annotationManager()
    before = len(manager.annotations())
    result_layers.annotate(region, crs, "first answer")
    result_layers.annotate(region, crs, "second answer")
    result_layers.annotate(other, crs, "elsewhere")
    texts = [a.document().toPlainText() for a in manager.annotations()[before:]]
    assert texts == ["second answer", "elsewhere"]


def test_sections_collapse_and_remember_it(dock):
    from qgis.gui import QgsCollapsibleGroupBox

    boxes = dock.body.findChildren(QgsCollapsibleGroupBox)
    assert {b.title() for b in boxes} == {"Imagery", "Labels", "Ask about a region", "Find similar"}
    assert all(b.saveCollapsedState() for b in boxes)
    boxes[0].setCollapsed(True)
    assert boxes[0].isCollapsed()
    boxes[0].setCollapsed(False)


def test_answer_frame_opens_towards_the_inside_of_the_map(qgis_new_project):
    from qgis.core import QgsCoordinateReferenceSystem, QgsGeometry, QgsRectangle

    crs = QgsCoordinateReferenceSystem("EPSG:32618")
    visible = QgsRectangle(0, 0, 1000, 1000)
    right_low = result_layers.annotate(QgsGeometry.fromRect(QgsRectangle(900, 0, 1000, 100)), crs, "a", visible=visible)
    left_high = result_layers.annotate(QgsGeometry.fromRect(QgsRectangle(0, 900, 100, 1000)), crs, "b", visible=visible)
    off = right_low.frameOffsetFromReferencePointMm()
    assert off.x() < 0 and off.y() < 0
    off = left_high.frameOffsetFromReferencePointMm()
    assert off.x() > 0 and off.y() > 0


def test_the_project_remembers_its_labels(qgis_iface, qgis_new_project):
    from rs_sage.ui.dock import RsSageDock

    first = RsSageDock(qgis_iface)
    first.preset.setCurrentText("Custom list (below)")
    first.labels_edit.setPlainText("water, cropland, forest, urban area")
    first.remember()
    first.shutdown()
    second = RsSageDock(qgis_iface)  # e.g. the project reopened
    try:
        assert second.labels() == ["water", "cropland", "forest", "urban area"]
    finally:
        second.shutdown()


def test_the_dock_fits_qgis_default_width_with_actions_always_visible(dock, qgis_iface):
    """QGIS opens docks about 300 px wide; with a layer and a long message the content must still
    fit, and Classify, Ask, the progress bar and Cancel sit outside the scrolling part."""
    from qgis.PyQt.QtWidgets import QApplication, QScrollArea

    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    dock.layer_combo.setLayer(layer)
    dock.estimate.setText("The map extent cannot be transformed to the layer's CRS (EPSG:32618): "
                          "forward transform of (1e+30, 1e+30) failed, a long stale message")
    dock.resize(300, 900)
    dock.show()
    QApplication.processEvents()
    scroll = dock.findChild(QScrollArea)
    assert dock.body.minimumSizeHint().width() <= 300 - scroll.verticalScrollBar().sizeHint().width() - 4
    for w in (dock.classify_button, dock.ask_button, dock.progress, dock.cancel_button):
        assert not scroll.isAncestorOf(w) and w.isVisibleTo(dock), w.objectName()


def test_a_refused_question_and_a_new_project_clear_the_old_answer(dock, qgis_iface):
    from qgis.core import QgsProject

    dock.answer_view.setHtml("<p>Yes (0.93): an old answer</p>")
    dock.question.setCurrentText("")
    dock.ask_button.click()
    assert dock.answer_view.toPlainText() == ""
    dock.answer_view.setHtml("<p>old</p>")
    dock.summary.setRowCount(3)
    dock.region_label.setText("Region: 12 ha")
    QgsProject.instance().clear()
    assert dock.answer_view.toPlainText() == "" and dock.summary.rowCount() == 0
    assert dock.region_label.text() == "No region yet." and dock.region is None


def test_find_similar_in_the_panel(dock, qgis_iface):
    """Select a classified tile, search: a layer of the most similar other tiles, ranked like
    core.questions.similar; the slider filters it without a new search; a selected result is 'not this'."""
    layer = add_raster(FIXTURES / "rgbn_clip.tif")
    run_classify(dock, qgis_iface, layer, gsd=5, tile=64)
    (classes,) = classes_layers()
    assert len(dock.tile_vectors) == 16
    first = next(classes.getFeatures()).id()
    classes.selectByIds([first])
    dock.similar_section.k.setValue(5)
    dock.similar_section.search_button.click()
    sim = dock.similar_section.layer
    feats = sorted(sim.getFeatures(), key=lambda f: f["rank"])
    assert len(feats) == 5 and first not in [f["tile_id"] for f in feats]
    from rs_sage.ui.similar import store_from_layer

    from core.questions.similar import query_vector, search

    store = store_from_layer(classes, dock.tile_vectors)
    expected = search(store, query_vector([dock.tile_vectors[first]]), 5, exclude={first})
    assert [f["tile_id"] for f in feats] == [m.fid for m in expected]
    dock.similar_section.slider.setValue(int(feats[2]["similarity"] * 100))
    assert sim.featureCount() >= 3 and sim.subsetString()
    dock.similar_section.slider.setValue(0)
    sim.selectByIds([feats[0].id()])  # "not this"
    dock.similar_section.search_button.click()
    again = [f["tile_id"] for f in sorted(dock.similar_section.layer.getFeatures(), key=lambda f: f["rank"])]
    assert again != [f["tile_id"] for f in feats] and feats[0]["tile_id"] not in again
