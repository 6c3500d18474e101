"""Run by desktop QGIS (--code) under Xvfb: Classify extent, then ask each question about the
whole visible layer, grabbing the window after each answer (out/screenshot_<TAG>_<n>.png) and
writing the answers to out/questions_<TAG>.txt. Settings from the environment:
SHOT_LABELS (comma separated), SHOT_QUESTIONS ('|' separated), SHOT_TAG, optional SHOT_GSD and
SHOT_TILE (default: what the panel picks from the layer)."""
import os
import sys

sys.path.insert(0, os.path.dirname(os.environ["SHOT_CODE"]))  # QGIS --code runs this file by path
import shot_common  # noqa: E402
from qgis.core import QgsApplication, QgsGeometry
from qgis.PyQt.QtCore import QTimer

OUT = os.environ.get("SHOT_OUT", "out")
TAG = os.environ.get("SHOT_TAG", "questions")
QUESTIONS = [q for q in os.environ.get("SHOT_QUESTIONS", "What is in this region?").split("|") if q]
iface, dock = shot_common.open_dock()
layer = shot_common.raster_layer()
dock.confirm_large = lambda n: True
log = []


def when_idle(fn, delay=1500):
    shot_common.when_idle(dock, fn, delay)


_warn = dock.warn


def _logged_warn(text, *args, **kw):  # the panel's messages go to the answers file too
    log.append(f"  panel says: {text}")
    return _warn(text, *args, **kw)


dock.warn = _logged_warn


def setup():
    shot_common.frame(iface, dock, layer, 400)
    dock.layer_combo.setLayer(None)
    dock.layer_combo.setLayer(layer)  # the panel picks scale and tile size from the layer
    if os.environ.get("SHOT_GSD"):
        dock.gsd.setValue(float(os.environ["SHOT_GSD"]))
    if os.environ.get("SHOT_TILE"):
        dock.tile.setValue(int(os.environ["SHOT_TILE"]))
    dock.preset.setCurrentText(dock.preset.itemText(dock.preset.count() - 1))  # the custom list
    dock.labels_edit.setPlainText(os.environ.get("SHOT_LABELS", "water, forest, farmland, houses, road"))
    log.append(f"scale {dock.gsd.value():g} m/px, tiles {dock.tile.value()} px: {dock.scale_note.text()}")
    dock.classify_button.click()
    when_idle(classified, 3000)


def classified():
    iface.mainWindow().grab().save(f"{OUT}/screenshot_{TAG}_classify.png")
    rows = [" | ".join(dock.summary.item(r, c).text() for c in range(3)) for r in range(dock.summary.rowCount())]
    log.append("classify: " + "; ".join(rows))
    dock.set_region(QgsGeometry.fromRect(layer.extent()), layer.crs())
    ask(0)


def ask(i):
    if i == len(QUESTIONS):
        with open(f"{OUT}/questions_{TAG}.txt", "w") as f:
            f.write("\n".join(log) + "\n")
        QTimer.singleShot(500, QgsApplication.instance().quit)
        return
    dock.question.setEditText(QUESTIONS[i])
    dock.ask_button.click()

    def answered():
        iface.mainWindow().grab().save(f"{OUT}/screenshot_{TAG}_{i + 1}.png")
        a = dock.last_answer
        if a is None:
            bar = [w.text() for w in iface.messageBar().findChildren(type(dock.estimate)) if w.text()]
            log.append(f"{QUESTIONS[i]} -> no answer: {' / '.join(bar)[-400:]}")
        else:
            log.append(f"{QUESTIONS[i]} -> {a.type}: {a.answer} | {a.text}")
        dock.last_answer = None
        ask(i + 1)

    when_idle(answered, 2500)


QTimer.singleShot(4000, setup)
