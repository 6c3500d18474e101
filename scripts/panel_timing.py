"""Time Classify extent in the panel, from the button click to the styled layer in the project.

Offscreen QGIS, the real dock widget, a 1024 x 1024 px extent (a Landsat clip from the shared
data set when present, else a synthetic raster), tiles of 224 px at the native 30 m. The first
run includes loading the model (cold); the next three are warm. Run: .venv/bin/python scripts/panel_timing.py
"""

import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build" / "plugins"))
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main() -> None:
    from unittest import mock

    from osgeo import gdal
    from qgis.core import QgsApplication, QgsProject, QgsRasterLayer
    from qgis.gui import QgsMapCanvas
    from qgis.PyQt.QtWidgets import QMainWindow

    app = QgsApplication([], True)
    app.initQgis()
    tmp = tempfile.mkdtemp()
    landsat = Path(os.environ.get("RS_SAGE_DATA", ROOT.parent / "shared" / "data")) / "gis" / \
        "LC08_L1TP_224078_20200518_20200518_01_RT.TIF"
    path = f"{tmp}/extent.tif"
    if landsat.is_file():
        gdal.Translate(path, str(landsat), srcWin=[500, 400, 1024, 1024], bandList=[3, 2, 1])
        what = "Landsat-8 clip (uint16, bands 3-2-1)"
    else:
        from rs_sage.rs_sage_dev.bench import synthetic_raster

        synthetic_raster(path, 1024)
        what = "synthetic raster"
    window = QMainWindow()
    canvas = QgsMapCanvas(window)
    canvas.resize(800, 800)
    iface = mock.MagicMock()
    iface.mapCanvas.return_value = canvas
    iface.mainWindow.return_value = window
    from rs_sage.ui.dock import RsSageDock

    layer = QgsRasterLayer(path, "extent")
    QgsProject.instance().addMapLayer(layer)
    canvas.setDestinationCrs(layer.crs())
    canvas.setExtent(layer.extent())
    dock = RsSageDock(iface)
    dock.layer_combo.setLayer(layer)
    dock.gsd.setValue(abs(layer.rasterUnitsPerPixelX()))
    dock.tile.setValue(224)
    times = []
    for _ in range(4):
        for lyr in QgsProject.instance().mapLayersByName("RS-SAGE classes"):
            QgsProject.instance().removeMapLayer(lyr)
        t = time.perf_counter()
        dock.classify_button.click()
        while dock.task is not None:
            app.processEvents()
            time.sleep(0.002)
        app.processEvents()
        assert QgsProject.instance().mapLayersByName("RS-SAGE classes"), "no layer"
        times.append(time.perf_counter() - t)
    n = QgsProject.instance().mapLayersByName("RS-SAGE classes")[0].featureCount()
    print(f"{what}, 1024 x 1024 px, {n} tiles of 224 px: click -> styled layer "
          f"cold {times[0]:.2f} s (model load included), warm {min(times[1:]):.2f}-{max(times[1:]):.2f} s")
    app.exitQgis()


if __name__ == "__main__":
    main()
