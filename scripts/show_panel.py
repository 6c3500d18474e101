"""Run by desktop QGIS (--code): open the RS-SAGE panel once the plugin is loaded."""
import qgis.utils

plugin = qgis.utils.plugins.get("rs_sage")
if plugin is not None and plugin.action is not None:
    plugin.action.setChecked(True)
