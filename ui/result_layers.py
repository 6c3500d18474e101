"""Result layers on the map: classified tiles, the question log, answer annotations."""

from __future__ import annotations

import datetime

from qgis.core import (
    QgsFeature,
    QgsField,
    QgsFillSymbol,
    QgsGeometry,
    QgsProject,
    QgsSingleSymbolRenderer,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import QSizeF

GROUP = "RS-SAGE"
CLASSES_LAYER = "RS-SAGE classes"
QUESTIONS_LAYER = "RS-SAGE questions"
from ..qgis_adapter.field_types import DOUBLE, INT, STRING  # noqa: E402
from ..qgis_adapter.tile_features import UNCERTAIN  # noqa: E402,F401 (re-exported for the panel and tests)


def _group(project: QgsProject):
    root = project.layerTreeRoot()
    return root.findGroup(GROUP) or root.insertGroup(0, GROUP)


def classes_layer(records: list, crs, labels: list[str], project: QgsProject | None = None,
                  colours: dict | None = None) -> QgsVectorLayer:
    """A memory polygon layer of tiles (``core.imagery.tile_schema``), categorised by label, labelled."""
    from ..qgis_adapter.tile_features import tile_feature, tile_fields

    project = project or QgsProject.instance()
    layer = QgsVectorLayer(f"Polygon?crs={crs.authid() or crs.toWkt()}", CLASSES_LAYER, "memory")
    pr = layer.dataProvider()
    pr.addAttributes(tile_fields().toList())
    layer.updateFields()
    pr.addFeatures([tile_feature(r, layer.fields()) for r in records])
    layer.updateExtents()
    style_classes(layer, labels, {r.attributes["label"] for r in records}, colours)
    project.addMapLayer(layer, False)
    _group(project).insertLayer(0, layer)
    return layer


def style_classes(layer: QgsVectorLayer, labels: list[str], present: set[str],
                  colours: dict | None = None) -> None:
    """The shared tile-layer style (``qgis_adapter.tile_features``), as Processing's output gets it."""
    from ..qgis_adapter.tile_features import style_tiles

    style_tiles(layer, labels, present, colours)


def questions_layer(crs, project: QgsProject | None = None) -> QgsVectorLayer:
    """The Q&A log layer (created once per project, reused after)."""
    project = project or QgsProject.instance()
    for lyr in project.mapLayersByName(QUESTIONS_LAYER):
        if isinstance(lyr, QgsVectorLayer) and lyr.crs() == crs:
            missing = [QgsField(n, t) for n, t in (("evidence", STRING), ("tiles", INT))
                       if lyr.fields().indexOf(n) < 0]  # a log made by an earlier version
            if missing:
                lyr.dataProvider().addAttributes(missing)
                lyr.updateFields()
            return lyr
    layer = QgsVectorLayer(f"Polygon?crs={crs.authid() or crs.toWkt()}", QUESTIONS_LAYER, "memory")
    layer.dataProvider().addAttributes([
        QgsField("question", STRING), QgsField("answer", STRING),
        QgsField("confidence", DOUBLE), QgsField("type", STRING),
        QgsField("layer", STRING), QgsField("timestamp", STRING),
        QgsField("evidence", STRING), QgsField("tiles", INT)])
    layer.updateFields()
    layer.setRenderer(QgsSingleSymbolRenderer(QgsFillSymbol.createSimple(
        {"color": "255,140,0,0", "style": "no", "outline_color": "#ff8c00", "outline_width": "0.8"})))
    project.addMapLayer(layer, False)
    _group(project).insertLayer(0, layer)
    return layer


def log_answer(layer: QgsVectorLayer, geometry: QgsGeometry, question: str, answer, raster_name: str) -> QgsFeature:
    f = QgsFeature(layer.fields())
    f.setGeometry(geometry)
    f.setAttributes([question, answer.answer, float(answer.confidence), answer.type, raster_name,
                     datetime.datetime.now().isoformat(timespec="seconds"), answer.text,
                     len(getattr(answer, "supporting", []))])
    layer.dataProvider().addFeatures([f])
    layer.updateExtents()
    layer.triggerRepaint()
    return f


ANNOTATION_WIDTH_MM = 70.0
_PX_PER_MM = 96 / 25.4  # QTextDocument lays out in logical pixels at 96 dpi


def annotation_frame(doc, width_mm: float = ANNOTATION_WIDTH_MM, max_height_mm: float = 80.0) -> QSizeF:
    """Frame that fits the wrapped answer: a fixed frame clipped long evidence lines."""
    doc.setTextWidth(width_mm * _PX_PER_MM)
    height = doc.size().height() / _PX_PER_MM + 2.0
    return QSizeF(width_mm, min(max(height, 8.0), max_height_mm))


def annotate(geometry: QgsGeometry, crs, text: str, project: QgsProject | None = None, visible=None):
    """A text annotation at the region's centre, kept in the project's annotation manager.

    ``visible`` (a QgsRectangle in ``crs``): the map's visible extent; the frame opens towards the
    side of the centre with more room, so it is not cut at the map's edge."""
    from qgis.core import QgsTextAnnotation
    from qgis.PyQt.QtGui import QTextDocument

    project = project or QgsProject.instance()
    manager = project.annotationManager()
    where = geometry.centroid().asPoint()
    for old in list(manager.annotations()):  # a new answer about the same region replaces the old one
        if (isinstance(old, QgsTextAnnotation) and old.mapPositionCrs() == crs
                and old.mapPosition().compare(where, 1e-9)):
            manager.removeAnnotation(old)
    ann = QgsTextAnnotation()
    doc = QTextDocument()
    doc.setPlainText(text)
    ann.setDocument(doc)
    ann.setMapPosition(where)
    ann.setMapPositionCrs(crs)
    size = annotation_frame(doc)
    ann.setFrameSizeMm(size)
    if visible is not None and not visible.isEmpty():
        from qgis.PyQt.QtCore import QPointF

        left = where.x() > visible.center().x()  # right half: open the frame to the left
        up = where.y() < visible.center().y()  # lower half: open it upwards
        ann.setFrameOffsetFromReferencePointMm(QPointF(-size.width() - 4.0 if left else 4.0,
                                                       -size.height() - 4.0 if up else 4.0))
    manager.addAnnotation(ann)
    return ann
