"""``core.tile_schema`` as QGIS fields and features (panel layer and Processing sink alike)."""

from __future__ import annotations

from qgis.core import QgsFeature, QgsField, QgsFields, QgsGeometry
from qgis.PyQt.QtCore import QVariant

from ..core.tile_schema import TILE_FIELDS, TileRecord

_QVARIANT = {int: QVariant.Int, float: QVariant.Double, str: QVariant.String}


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
