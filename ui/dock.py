"""The RS-SAGE dock panel.

For now it shows what the plugin has installed (model files, knowledge base) so a user can tell
at a glance whether it is ready; the classify and ask tools arrive with the panel issue.
"""

from __future__ import annotations

from qgis.PyQt.QtWidgets import QDockWidget, QLabel, QVBoxLayout, QWidget

from ..core.status import plugin_status


class RsSageDock(QDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__("RS-SAGE", parent or iface.mainWindow())
        self.iface = iface
        body = QWidget(self)
        layout = QVBoxLayout(body)
        self.status_label = QLabel(body)
        self.status_label.setObjectName("RsSageStatus")
        self.status_label.setWordWrap(True)
        layout.addWidget(self.status_label)
        layout.addStretch(1)
        self.setWidget(body)
        self.refresh_status()

    def refresh_status(self) -> None:
        self.status_label.setText(plugin_status().as_text())

    def shutdown(self) -> None:
        """Called by the plugin's unload; later issues cancel running tasks here."""
