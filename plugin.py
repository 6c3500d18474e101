"""QGIS-facing shell of RS-SAGE: toolbar action, menu entry, dock panel, Processing provider.

Kept thin on purpose: everything that computes lives in ``core`` (no QGIS import there), and
nothing here imports torch or onnxruntime, so loading the plugin costs QGIS almost nothing.
"""

from __future__ import annotations

import os

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtGui import QIcon

try:
    from qgis.PyQt.QtGui import QAction  # Qt6 (QGIS 4): QAction moved to QtGui
except ImportError:
    from qgis.PyQt.QtWidgets import QAction  # Qt5 (QGIS 3)

PLUGIN_NAME = "RS-SAGE"
MENU_NAME = "&RS-SAGE"
ICON_PATH = os.path.join(os.path.dirname(__file__), "resources", "icon.svg")


def use_profile_folders() -> None:
    """Point core at the QGIS profile QGIS really runs in (``--profiles-path`` included): user
    knowledge, installed packages and the model pack live there. Set once, never over a value
    the user (or a test) set."""
    base = os.path.join(QgsApplication.qgisSettingsDirPath(), "rs_sage")
    os.environ.setdefault("RS_SAGE_USER_KB", os.path.join(base, "knowledge"))
    os.environ.setdefault("RS_SAGE_DEPS", os.path.join(base, "python"))
    os.environ.setdefault("RS_SAGE_MODELS_HOME", os.path.join(base, "models"))


class RsSagePlugin:
    """Owns every object the plugin adds to QGIS, so ``unload`` can remove exactly those."""

    def __init__(self, iface):
        self.iface = iface
        self.action: QAction | None = None
        self.dock = None
        self.provider = None

    # QGIS calls initProcessing on its own in qgis_process, where there is no GUI.
    def initProcessing(self) -> None:  # noqa: N802 (name fixed by QGIS)
        if self.provider is not None:
            return
        from .ui.dependencies import activate_installed

        use_profile_folders()
        activate_installed()  # packages from an earlier 'Install dependencies', before anything imports them
        from .processing_provider.provider import RsSageProvider

        self.provider = RsSageProvider()
        QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:  # noqa: N802 (name fixed by QGIS)
        from .ui.dock import RsSageDock

        self.initProcessing()
        self.dock = RsSageDock(self.iface)
        self.dock.setObjectName("RsSageDock")
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.dock.hide()

        self.action = QAction(QIcon(ICON_PATH), "RS-SAGE panel", self.iface.mainWindow())
        self.action.setObjectName("RsSageShowPanel")
        self.action.setCheckable(True)
        self.action.setToolTip("Show the RS-SAGE panel: classify the extent, ask about a region")
        self.action.toggled.connect(self._set_dock_visible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        self.iface.addToolBarIcon(self.action)
        self.iface.addPluginToRasterMenu(MENU_NAME, self.action)

    def _set_dock_visible(self, visible: bool) -> None:
        if self.dock is not None:
            self.dock.setVisible(visible)

    def unload(self) -> None:
        if self.action is not None:
            self.iface.removePluginRasterMenu(MENU_NAME, self.action)
            self.iface.removeToolBarIcon(self.action)
            self.action.deleteLater()
            self.action = None
        if self.dock is not None:
            self.dock.shutdown()
            self.iface.removeDockWidget(self.dock)
            self.dock.setParent(None)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
        import sys

        engine_module = sys.modules.get(f"{__package__}.core.model.engine")  # loaded only if it was used
        if engine_module is not None:
            engine_module.release_shared_engine()
