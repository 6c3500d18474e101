"""A map tool that draws a rectangle (drag) or a polygon (clicks, right-click to finish)."""

from __future__ import annotations

from qgis.core import QgsGeometry, QgsPointXY, QgsRectangle, QgsWkbTypes
from qgis.gui import QgsMapTool, QgsRubberBand
from qgis.PyQt.QtCore import Qt, pyqtSignal
from qgis.PyQt.QtGui import QColor


class RegionMapTool(QgsMapTool):
    regionDrawn = pyqtSignal(QgsGeometry)  # in the canvas CRS  # noqa: N815

    def __init__(self, canvas, mode: str = "rectangle"):
        super().__init__(canvas)
        self.mode = mode
        self.band = QgsRubberBand(canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
        self.band.setColor(QColor(255, 140, 0, 60))
        self.band.setStrokeColor(QColor(255, 140, 0))
        self.band.setWidth(2)
        self.start: QgsPointXY | None = None
        self.points: list[QgsPointXY] = []

    def canvasPressEvent(self, e):  # noqa: N802
        if self.mode == "rectangle" and e.button() == Qt.MouseButton.LeftButton:
            self.start = self.toMapCoordinates(e.pos())

    def canvasMoveEvent(self, e):  # noqa: N802
        p = self.toMapCoordinates(e.pos())
        if self.mode == "rectangle" and self.start is not None:
            self.band.setToGeometry(QgsGeometry.fromRect(QgsRectangle(self.start, p)), None)
        elif self.mode == "polygon" and self.points:
            self.band.setToGeometry(QgsGeometry.fromPolygonXY([self.points + [p]]), None)

    def canvasReleaseEvent(self, e):  # noqa: N802
        p = self.toMapCoordinates(e.pos())
        if self.mode == "rectangle" and self.start is not None:
            geom = QgsGeometry.fromRect(QgsRectangle(self.start, p))
            self.start = None
            self.emit_region(geom)
        elif self.mode == "polygon":
            if e.button() == Qt.MouseButton.RightButton and len(self.points) >= 3:
                geom = QgsGeometry.fromPolygonXY([self.points])
                self.points = []
                self.emit_region(geom)
            elif e.button() == Qt.MouseButton.LeftButton:
                self.points.append(p)

    def emit_region(self, geom: QgsGeometry) -> None:
        self.band.setToGeometry(geom, None)
        if not geom.isEmpty() and geom.area() > 0:
            self.regionDrawn.emit(geom)

    def clear(self) -> None:
        self.band.reset(QgsWkbTypes.GeometryType.PolygonGeometry)

    def deactivate(self):
        self.points, self.start = [], None
        super().deactivate()
