"""Run by desktop QGIS (--code): open the RS-SAGE panel once the plugin is loaded."""
import qgis.utils
from qgis.PyQt.QtCore import Qt

plugin = qgis.utils.plugins.get("rs_sage")
if plugin is not None and plugin.action is not None:
    plugin.action.setChecked(True)
    qgis.utils.iface.mainWindow().resizeDocks([plugin.dock], [430], Qt.Horizontal)
