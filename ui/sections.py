"""The dock's sections, each a widget group that turns its state into a parameter object for
``core`` (as Deepness's dock does): Imagery -> ImageryParams, Labels -> a label list, Region ->
the question. The dock wires them to the work and the map; no section starts work itself."""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import QgsMapLayerProxyModel
from qgis.gui import QgsCollapsibleGroupBox, QgsMapLayerComboBox
from qgis.PyQt.QtWidgets import (
    QComboBox,
    QDoubleSpinBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QPlainTextEdit,
    QPushButton,
    QSizePolicy,
    QSpinBox,
    QTextBrowser,
    QVBoxLayout,
)

from ..core.errors import RsSageError
from ..core.setup.presets import EXAMPLE_QUESTIONS, PRESETS

CUSTOM = "Custom list (below)"


def section(title: str, parent) -> QgsCollapsibleGroupBox:
    """A collapsible section that remembers whether it was collapsed (QGIS settings)."""
    box = QgsCollapsibleGroupBox(title, parent)
    box.setObjectName(f"RsSage{title.title().replace(' ', '')}")
    box.setSaveCollapsedState(True)
    return box


@dataclass(frozen=True)
class ImageryParams:
    """What the imagery section says: the scale, tile and step the labeller reads at."""
    gsd: float
    tile: int
    stride: int


class ImagerySection:
    def __init__(self, parent, gsd_range: tuple[float, float], default_gsd: float):
        self.box = box = section("Imagery", parent)
        form = QFormLayout(box)
        form.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)  # QGIS opens docks ~300 px wide
        self.layer_combo = QgsMapLayerComboBox(box)
        self.layer_combo.setFilters(QgsMapLayerProxyModel.Filter.RasterLayer)
        form.addRow("Raster layer", self.layer_combo)
        self.gsd = QDoubleSpinBox(box)
        lo, hi = gsd_range
        self.gsd.setRange(lo, hi)  # outside it the model is guessing
        self.gsd.setDecimals(2)
        self.gsd.setSuffix(" m/px")
        self.gsd.setValue(default_gsd)
        self.gsd.setToolTip(f"Ground sampling distance at which tiles are read (the model saw {lo:g}-{hi:g} m/px; "
                            "finer or coarser rasters are resampled to this)")
        form.addRow("Scale", self.gsd)
        self.scale_note = self._note("RsSageScaleNote")
        form.addRow(self.scale_note)
        self.tile = QSpinBox(box)
        self.tile.setRange(32, 1024)
        self.tile.setValue(224)
        self.tile.setSuffix(" px")
        form.addRow("Tile size", self.tile)
        self.overlap = QSpinBox(box)
        self.overlap.setRange(0, 75)
        self.overlap.setSuffix(" %")
        form.addRow("Tile overlap", self.overlap)
        self.estimate = self._note("RsSageEstimate")
        form.addRow("Tiles", self.estimate)
        self.contrast_label = self._note("RsSageContrast")
        form.addRow(self.contrast_label)

    def _note(self, name: str) -> QLabel:
        label = QLabel(self.box)
        label.setObjectName(name)
        label.setWordWrap(True)  # a long message wraps; it never widens the dock
        return label

    def stride(self) -> int:
        return max(1, round(self.tile.value() * (1 - self.overlap.value() / 100)))

    def params(self) -> ImageryParams:
        return ImageryParams(float(self.gsd.value()), int(self.tile.value()), self.stride())


class LabelsSection:
    def __init__(self, parent):
        self.box = box = section("Labels", parent)
        lv = QVBoxLayout(box)
        self.preset = QComboBox(box)
        self.preset.addItems([*PRESETS, CUSTOM])
        self.preset.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.preset.currentTextChanged.connect(self._preset_changed)
        lv.addWidget(self.preset)
        self.labels_edit = QPlainTextEdit(box)
        self.labels_edit.setPlaceholderText("classes separated by commas or new lines, e.g.\n"
                                            "water, cropland, forest, urban area")
        self.labels_edit.setMaximumHeight(90)
        lv.addWidget(self.labels_edit)
        self.labels_parsed = QLabel(box)
        self.labels_parsed.setObjectName("RsSageParsedLabels")
        self.labels_parsed.setWordWrap(True)
        lv.addWidget(self.labels_parsed)
        self.labels_edit.textChanged.connect(self._labels_changed)
        self._preset_changed(self.preset.currentText())

    def _preset_changed(self, name: str) -> None:
        if name in PRESETS:
            self.labels_edit.setPlainText("\n".join(PRESETS[name]))

    def _labels_changed(self) -> None:
        from ..core.model.label_text import describe, parse_labels

        self.labels_parsed.setText(describe(parse_labels(self.labels_edit.toPlainText())))

    def labels(self) -> list[str]:
        from ..core.model.label_text import parse_labels

        labels = parse_labels(self.labels_edit.toPlainText())
        if not labels:
            raise RsSageError("The label list is empty; pick a preset or type your own classes.")
        return labels


class RegionSection:
    def __init__(self, parent):
        self.box = box = section("Ask about a region", parent)
        av = QVBoxLayout(box)
        row = QHBoxLayout()
        row.setSpacing(2)
        self.rect_button = QPushButton("Rectangle", box)
        self.poly_button = QPushButton("Polygon", box)
        self.sel_button = QPushButton("Selection", box)
        self.rect_button.setToolTip("Drag a rectangle on the map")
        self.poly_button.setToolTip("Click the vertices of a polygon; right-click to finish")
        self.sel_button.setToolTip("Use the selected polygons of the active vector layer")
        for b in (self.rect_button, self.poly_button, self.sel_button):
            b.setMinimumWidth(40)
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)  # shrink, never widen the dock
            row.addWidget(b)
        av.addLayout(row)
        self.region_label = QLabel("No region yet.", box)
        self.region_label.setWordWrap(True)
        av.addWidget(self.region_label)
        self.question = QComboBox(box)
        self.question.setEditable(True)
        self.question.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.question.setMinimumContentsLength(12)
        self.question.addItems(EXAMPLE_QUESTIONS)
        self.question.setCurrentText("")
        self.question.lineEdit().setPlaceholderText("Ask in English, e.g. " + EXAMPLE_QUESTIONS[0])
        av.addWidget(self.question)
        self.answer_view = QTextBrowser(box)
        self.answer_view.setMaximumHeight(150)
        av.addWidget(self.answer_view)

    def question_text(self) -> str:
        """The question as typed; refused (with the reason) when empty."""
        q = self.question.currentText().strip()
        if not q:
            raise RsSageError("The question is empty; type one or pick an example.")
        return q
