"""Run by desktop QGIS (--code) under Xvfb: Classify extent, select one classified tile (SHOT_TILE_INDEX,
default the middle one) as the example, Find similar (top SHOT_K), grab the window to
out/screenshot_<TAG>_similar.png and write the matches to out/similar_<TAG>.txt. Looked at only."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.environ["SHOT_CODE"]))  # QGIS --code runs this file by path
import shot_common  # noqa: E402
from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QTimer

OUT = os.environ.get("SHOT_OUT", "out")
TAG = os.environ.get("SHOT_TAG", "similar")
iface, dock = shot_common.open_dock()
layer = shot_common.raster_layer()
dock.confirm_large = lambda n: True
log = []


def setup():
    shot_common.frame(iface, dock, layer, 400)
    dock.layer_combo.setLayer(None)
    dock.layer_combo.setLayer(layer)
    dock.preset.setCurrentText(dock.preset.itemText(dock.preset.count() - 1))
    dock.labels_edit.setPlainText(os.environ.get("SHOT_LABELS", "water, cropland, forest, urban area"))
    dock.classify_button.click()
    shot_common.when_idle(dock, classified, 3000)


def classified():
    classes = dock.last_classes_layer
    feats = list(classes.getFeatures())
    pick = feats[int(os.environ.get("SHOT_TILE_INDEX", len(feats) // 2))]
    classes.selectByIds([pick.id()])
    dock.similar_section.k.setValue(int(os.environ.get("SHOT_K", "12")))
    dock.similar_section.search_button.click()
    sim = dock.similar_section.layer
    log.append(f"example tile {pick.id()} ({pick['label']})")
    for f in sorted(sim.getFeatures(), key=lambda f: f["rank"]):
        log.append(f"{f['rank']:3d}  tile {f['tile_id']:5d}  {f['similarity']:.3f}  {f['label']}")
    iface.setActiveLayer(classes)
    QTimer.singleShot(2500, done)


def done():
    iface.mainWindow().grab().save(f"{OUT}/screenshot_{TAG}_similar.png")
    with open(f"{OUT}/similar_{TAG}.txt", "w") as f:
        f.write("\n".join(log) + "\n")
    QTimer.singleShot(500, QgsApplication.instance().quit)


QTimer.singleShot(4000, setup)
