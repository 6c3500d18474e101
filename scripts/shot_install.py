"""Run by desktop QGIS (--code) under Xvfb from ``scripts/desktop_install.sh``: a new user's first
install. The plugin comes from our repository through QGIS's own Plugin Manager installer
(pyplugin_installer), then the panel's *Install dependencies*, *Download models* and *Classify
extent*, each with a screenshot (``SHOT_OUT/install_*.png``) and a line in ``install.json``."""
import json
import os
import sys
import time

import qgis.utils
from qgis.core import QgsApplication, QgsProject, QgsRasterLayer, QgsSettings, QgsVectorLayer
from qgis.PyQt.QtCore import Qt, QTimer

OUT = os.environ["SHOT_OUT"]
summary: dict = {"started": time.strftime("%Y-%m-%d %H:%M:%S")}
iface = qgis.utils.iface


def save():
    with open(f"{OUT}/install.json", "w") as f:
        json.dump(summary, f, indent=1)


def grab(name):
    iface.mainWindow().grab().save(f"{OUT}/install_{name}.png")


def when_idle(dock, fn, delay=1500, limit=300):
    t0 = time.time()

    def poll():
        if dock.task is not None and time.time() - t0 < limit:
            QTimer.singleShot(300, poll)
        else:
            QTimer.singleShot(delay, fn)
    QTimer.singleShot(300, poll)


def messages():
    bar = iface.messageBar()
    return [w.text() if hasattr(w, "text") else "" for w in bar.items()]


def install_plugin():
    s = QgsSettings()
    # No internet here: only our repository (served on 127.0.0.1) is enabled.
    s.setValue("app/plugin_repositories/QGIS Official Plugin Repository/enabled", False)
    s.setValue("app/plugin_repositories/RS-SAGE/url", os.environ["SHOT_REPO"])
    s.setValue("app/plugin_repositories/RS-SAGE/enabled", True)
    s.setValue("app/plugin_installer/allowExperimental", True)  # metadata.txt: experimental=True
    sys.path.insert(0, "/usr/share/qgis/python")
    import pyplugin_installer
    from pyplugin_installer.installer_data import plugins

    inst = pyplugin_installer.instance()
    inst.fetchAvailablePlugins(True)
    from pyplugin_installer.installer_data import repositories

    summary["listed_by_repository"] = "rs_sage" in plugins.all()
    summary["repository_error"] = repositories.all().get("RS-SAGE", {}).get("error", "")
    if not summary["listed_by_repository"]:
        save()
        QTimer.singleShot(500, QgsApplication.instance().quit)
        return
    entry = plugins.all()["rs_sage"]
    keys = ("status", "status_exp", "download_url", "error", "version_available", "zip_repository", "experimental")
    summary["repository_entry"] = {k: str(entry.get(k)) for k in keys}
    save()
    t0 = time.time()
    inst.installPlugin("rs_sage", quiet=True, stable=False)  # experimental=True: the experimental channel
    summary["plugin_install_s"] = round(time.time() - t0, 1)
    summary["plugin_loaded"] = "rs_sage" in qgis.utils.plugins
    save()
    if not summary["plugin_loaded"]:
        QTimer.singleShot(500, QgsApplication.instance().quit)
        return
    plugin = qgis.utils.plugins["rs_sage"]
    plugin.action.setChecked(True)
    iface.mainWindow().resize(1440, 900)
    iface.mainWindow().resizeDocks([plugin.dock], [430], Qt.Horizontal)
    QTimer.singleShot(2000, lambda: dependencies(plugin.dock))


def dependencies(dock):
    grab("1_first_open")
    summary["first_open_messages"] = messages()
    summary["t_deps"] = time.time()
    dock.install_dependencies(None)
    when_idle(dock, lambda: models(dock))


def models(dock):
    summary["dependencies_s"] = round(time.time() - summary.pop("t_deps"), 1)
    summary["after_dependencies"] = messages()[:2]
    grab("2_dependencies")
    summary["t_models"] = time.time()
    dock.install_models(None)
    when_idle(dock, lambda: classify(dock))


def classify(dock):
    summary["models_s"] = round(time.time() - summary.pop("t_models"), 1)
    summary["after_models"] = messages()[:2]
    grab("3_models")
    save()
    layer = QgsRasterLayer(os.environ["SHOT_RASTER"], "rgbn_5m")
    QgsProject.instance().addMapLayer(layer)
    dock.layer_combo.setLayer(layer)
    dock.confirm_large = lambda n: True
    iface.mapCanvas().setExtent(layer.extent())
    iface.mapCanvas().refresh()
    summary["t_classify"] = time.time()
    QTimer.singleShot(1500, lambda: (dock.update_estimate(), dock.classify_button.click(),
                                     when_idle(dock, lambda: done(dock), 3000)))


def done(dock):
    summary["classify_s"] = round(time.time() - summary.pop("t_classify"), 1)
    vectors = [lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsVectorLayer)]
    summary["result_layers"] = {lyr.name(): lyr.featureCount() for lyr in vectors}
    summary["after_classify"] = messages()[:2]
    grab("4_classify")
    save()
    QTimer.singleShot(500, QgsApplication.instance().quit)


QTimer.singleShot(3000, install_plugin)
