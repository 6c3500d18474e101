"""Field types that QGIS 3.22 and QGIS 4 both take.

QGIS 3 (Qt5) builds ``QgsField`` from ``QVariant.Type``; under Qt6 ``QVariant`` has no ``Type``
and QGIS 4 takes ``QMetaType.Type``. ``tests/test_qt6_imports.py`` imports the plugin against
PyQt6, which is how this was found."""

from __future__ import annotations

from qgis.PyQt.QtCore import QMetaType, QVariant

_QVARIANT = {"string": "String", "int": "Int", "double": "Double"}
_QMETATYPE = {"string": "QString", "int": "Int", "double": "Double"}


def field_type(kind: str):
    """``kind``: "string", "int" or "double"."""
    variant_type = getattr(QVariant, "Type", None)
    if variant_type is not None:
        return getattr(variant_type, _QVARIANT[kind])
    return getattr(QMetaType.Type, _QMETATYPE[kind])


STRING, INT, DOUBLE = field_type("string"), field_type("int"), field_type("double")
