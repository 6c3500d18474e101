"""QGIS 4 / Qt6 readiness of the QGIS-facing code, by an AST check that can fail:
``supportsQt6=True`` declared, Qt only through ``qgis.PyQt``, no ``exec_()``, and enums always
fully scoped (``Qt.MouseButton.LeftButton``, not ``Qt.LeftButton``), which PyQt6 requires and
QGIS 3.22's PyQt5 accepts."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GUI_CODE = [ROOT / "plugin.py", ROOT / "__init__.py", *sorted((ROOT / "ui").rglob("*.py")),
            *sorted((ROOT / "qgis_adapter").rglob("*.py")), *sorted((ROOT / "processing_provider").rglob("*.py"))]
# Classes whose upper-case attributes are enum members; constants that are not enums are allowed.
ENUM_OWNERS = {"Qt", "Qgis", "QVariant", "QMessageBox", "QHeaderView", "QComboBox", "QSizePolicy", "QFrame",
               "QDialogButtonBox", "QAbstractItemView", "QgsWkbTypes", "QgsFeatureSink", "QgsProcessing",
               "QgsProcessingParameterNumber", "QgsTask", "QgsUnitTypes", "QgsMapLayerProxyModel",
               "QgsRasterMinMaxOrigin", "QgsPalLayerSettings", "QgsContrastEnhancement", "QFont", "QPalette",
               "QLineEdit", "QTextOption", "QLayout", "QAction", "QToolButton", "QEvent", "QgsProcessingParameterFile"}
NOT_ENUMS = {"QGIS_VERSION", "QGIS_VERSION_INT", "QGIS_RELEASE_NAME"}


def problems(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(), str(path))
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in ("PyQt5", "PyQt6"):
            out.append(f"{path.name}:{node.lineno} imports {node.module} (use qgis.PyQt)")
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] in ("PyQt5", "PyQt6") for a in node.names):
            out.append(f"{path.name}:{node.lineno} imports PyQt directly")
        if isinstance(node, ast.Attribute) and node.attr == "exec_":
            out.append(f"{path.name}:{node.lineno} exec_() (removed in Qt6; use exec())")
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in ENUM_OWNERS
                and node.attr[:1].isupper() and node.attr not in NOT_ENUMS):
            parent_is_scope = any(isinstance(p, ast.Attribute) and p.value is node for p in ast.walk(tree))
            if not parent_is_scope:
                out.append(f"{path.name}:{node.lineno} {node.value.id}.{node.attr} is not fully scoped")
    return out


def test_metadata_declares_qt6():
    meta = (ROOT / "metadata.txt").read_text()
    assert "supportsQt6=True" in meta


@pytest.mark.parametrize("path", GUI_CODE, ids=lambda p: str(p.relative_to(ROOT)))
def test_gui_code_is_qt6_ready(path):
    assert problems(path) == []


def test_the_check_can_fail(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from PyQt5.QtCore import Qt\nx = Qt.LeftButton\nd.exec_()\ny = Qt.MouseButton.LeftButton\n")
    found = problems(bad)
    assert len(found) == 3 and "LeftButton is not fully scoped" in found[1]
