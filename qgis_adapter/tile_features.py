"""``core.imagery.tile_schema`` as QGIS fields and features (panel layer and Processing sink alike)."""

from __future__ import annotations

from qgis.core import (
    QgsCategorizedSymbolRenderer,
    QgsFeature,
    QgsField,
    QgsFields,
    QgsFillSymbol,
    QgsGeometry,
    QgsPalLayerSettings,
    QgsRendererCategory,
    QgsTextFormat,
    QgsVectorLayer,
    QgsVectorLayerSimpleLabeling,
)
from qgis.PyQt.QtGui import QColor

from ..core.imagery.tile_schema import TILE_FIELDS, TileRecord
from .field_types import DOUBLE, INT, STRING

_QVARIANT = {int: INT, float: DOUBLE, str: STRING}
UNCERTAIN = "uncertain"  # the category of tiles under the model's score threshold


def tile_fields() -> QgsFields:
    fields = QgsFields()
    for name, kind in TILE_FIELDS:
        fields.append(QgsField(name, _QVARIANT[kind]))
    return fields


def tile_feature(record: TileRecord, fields: QgsFields) -> QgsFeature:
    f = QgsFeature(fields)
    f.setGeometry(QgsGeometry.fromWkt(record.wkt))
    f.setAttributes([record.attributes[name] for name, _ in TILE_FIELDS])
    return f


def style_tiles(layer: QgsVectorLayer, labels: list[str], present: set[str],
                  colours: dict | None = None) -> None:
    """Categorised by label with meaningful colours (``core.imagery.palette``, as in the class GeoTIFF),
    semi-transparent, labelled."""
    if colours is None:
        from ..core.imagery.palette import label_colours  # the text encoder: only when styling, never on import

        colours = dict(zip(labels, label_colours(labels), strict=True))
    present = [lab for lab in labels if lab in present]
    cats = []
    for lab in present:
        color = QColor(*colours[lab])
        sym = QgsFillSymbol.createSimple({"color": color.name(), "outline_color": "#ffffff",
                                          "outline_width": "0.2"})
        cats.append(QgsRendererCategory(lab, sym, lab))
    # Uncertain tiles: grey diagonal hatching over no fill, whatever their label, so the map
    # never shows a guess with the same weight as an answer.
    hatch = QgsFillSymbol.createSimple({"color": "#9e9e9e", "style": "b_diagonal", "outline_color": "#616161",
                                        "outline_width": "0.3"})
    cats.append(QgsRendererCategory(UNCERTAIN, hatch, "uncertain or none of the labels"))
    expression = f"CASE WHEN \"uncertain\" = 1 THEN '{UNCERTAIN}' ELSE \"label\" END"
    layer.setRenderer(QgsCategorizedSymbolRenderer(expression, cats))
    layer.setOpacity(0.55)
    settings = QgsPalLayerSettings()
    settings.fieldName = "label"
    settings.placement = QgsPalLayerSettings.Placement.OverPoint
    fmt = QgsTextFormat()
    fmt.setSize(8)
    fmt.buffer().setEnabled(True)
    settings.setFormat(fmt)
    layer.setLabeling(QgsVectorLayerSimpleLabeling(settings))
    layer.setLabelsEnabled(True)
