"""The ``rs_sage`` Processing provider.

Algorithms are listed here but import numpy/onnxruntime only when they run, so a missing
dependency shows up as a clear message in the algorithm instead of breaking QGIS start-up.
"""

from __future__ import annotations

import os

from qgis.core import QgsProcessingProvider
from qgis.PyQt.QtGui import QIcon

ICON_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "resources", "icon.svg")


class RsSageProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "rs_sage"

    def name(self) -> str:
        return "RS-SAGE"

    def longName(self) -> str:  # noqa: N802
        return "RS-SAGE remote-sensing vision-language tools"

    def icon(self) -> QIcon:
        return QIcon(ICON_PATH)

    def loadAlgorithms(self) -> None:  # noqa: N802
        for algorithm in _algorithms():
            self.addAlgorithm(algorithm)


def _algorithms() -> list:
    from .algorithms import all_algorithms

    return all_algorithms()
