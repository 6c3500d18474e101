"""Run by desktop QGIS (--code) under Xvfb: classify the sample, ask a question, screenshot both.

Used by ``make screenshot``; the PNGs land in out/ and the README shows copies from docs/.
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.environ["SHOT_CODE"]))  # QGIS --code runs this file by path
import shot_common  # noqa: E402
from qgis.core import QgsApplication, QgsGeometry, QgsRectangle
from qgis.PyQt.QtCore import Qt, QTimer

OUT = os.environ.get("SHOT_OUT", "out")
iface, dock = shot_common.open_dock()
iface.mainWindow().resizeDocks([dock], [430], Qt.Horizontal)
layer = shot_common.raster_layer()
dock.layer_combo.setLayer(layer)
dock.gsd.setValue(3.0)
dock.tile.setValue(128)
dock.confirm_large = lambda n: True
iface.mapCanvas().setExtent(layer.extent())
iface.mapCanvas().refresh()


def when_idle(fn, delay=1500):
    shot_common.when_idle(dock, fn, delay)


def classify():
    shot_common.frame(iface, dock, layer)
    dock.update_estimate()
    dock.classify_button.click()
    when_idle(after_classify, 3000)


def after_classify():
    iface.mainWindow().grab().save(f"{OUT}/screenshot_classify.png")
    e = layer.extent()
    w, h = e.width(), e.height()
    region = QgsRectangle(e.xMinimum() + 0.55 * w, e.yMinimum() + 0.05 * h,
                          e.xMinimum() + 0.95 * w, e.yMinimum() + 0.45 * h)
    dock.set_region(QgsGeometry.fromRect(region), layer.crs())
    dock.question.setCurrentText("Is there a river?")
    dock.ask_button.click()
    when_idle(after_ask, 3000)


def after_ask():
    iface.mainWindow().grab().save(f"{OUT}/screenshot_ask.png")
    QTimer.singleShot(500, QgsApplication.instance().quit)


QTimer.singleShot(4000, classify)
