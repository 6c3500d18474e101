"""Run by desktop QGIS (--code) under Xvfb: Classify extent on the Landsat-8 clip, as a new user.

The held-out check of the nodata/stretch issue: the layer as QGIS opens it (no nodata declared,
QGIS's own stretch), labels water/cropland/forest/urban area, 30 m/px, 128 px tiles (240 tiles).
Saves out/screenshot_landsat_<SHOT_TAG>.png and the panel's area table beside it. The clip is
only looked at: nothing here trains or tunes on it.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.environ["SHOT_CODE"]))  # QGIS --code runs this file by path
import shot_common  # noqa: E402
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer

OUT = os.environ.get("SHOT_OUT", "out")
TAG = os.environ.get("SHOT_TAG", "after")
iface, dock = shot_common.open_dock()
layer = shot_common.raster_layer()
dock.layer_combo.setLayer(layer)
dock.gsd.setValue(30.0)
dock.tile.setValue(128)
dock.preset.setCurrentText(dock.preset.itemText(dock.preset.count() - 1))  # the custom list
dock.labels_edit.setPlainText("water\ncropland\nforest\nurban area")
dock.confirm_large = lambda n: True


def when_idle(fn, delay=1500):
    shot_common.when_idle(dock, fn, delay)


def classify():
    shot_common.frame(iface, dock, layer)
    dock.classify_button.click()
    when_idle(done, 3000)


def done():
    iface.mainWindow().grab().save(f"{OUT}/screenshot_landsat_{TAG}.png")
    rows = [" | ".join(dock.summary.item(r, c).text() for c in range(3)) for r in range(dock.summary.rowCount())]
    msgs = [w.text() for w in iface.messageBar().findChildren(type(dock.estimate)) if w.text()]
    with open(f"{OUT}/landsat_{TAG}.txt", "w") as f:
        f.write("\n".join(rows + msgs + [dock.contrast_label.text() if hasattr(dock, "contrast_label") else ""]))
    QTimer.singleShot(500, QgsApplication.instance().quit)


QTimer.singleShot(4000, classify)
