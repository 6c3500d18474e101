"""Shared by the screenshot scripts that desktop QGIS runs with --code (scripts/shot_*.py)."""

import qgis.utils
from qgis.core import QgsProject, QgsRasterLayer
from qgis.PyQt.QtCore import Qt, QTimer


def when_idle(dock, fn, delay=1500):
    """Call ``fn`` ``delay`` ms after the panel's task has finished (the map needs time to draw)."""
    def poll():
        if dock.task is not None:
            QTimer.singleShot(300, poll)
        else:
            QTimer.singleShot(delay, fn)
    QTimer.singleShot(300, poll)


def open_dock():
    """(iface, dock): the RS-SAGE panel shown in a 1440 x 900 window, as in every screenshot."""
    iface = qgis.utils.iface
    plugin = qgis.utils.plugins["rs_sage"]
    plugin.action.setChecked(True)
    iface.mainWindow().resize(1440, 900)
    return iface, plugin.dock


def raster_layer():
    """The project's raster layer (the one SHOT_RASTER opened)."""
    return next(lyr for lyr in QgsProject.instance().mapLayers().values() if isinstance(lyr, QgsRasterLayer))


def frame(iface, dock, layer, width=430):
    """The same framing in every screenshot: the dock ``width`` px wide and the map on ``layer``."""
    iface.mainWindow().resizeDocks([dock], [width], Qt.Horizontal)
    iface.mapCanvas().setExtent(layer.extent())
    iface.mapCanvas().refresh()
