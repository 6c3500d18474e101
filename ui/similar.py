"""The panel's *Find similar*: the tiles of the last Classify extent most like the selected ones
(or a phrase), as a layer styled by similarity with a threshold slider that re-filters without
recomputing; tiles selected in that layer count as 'not this' on the next search (Rocchio).

The vectors come with the classified tiles (``TileRecord.vector``); the search is
``core.questions.similar.search``, the same as the CLI and Processing."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from qgis.core import (
    QgsClassificationQuantile,
    QgsFeature,
    QgsField,
    QgsFillSymbol,
    QgsGeometry,
    QgsGraduatedSymbolRenderer,
    QgsProject,
    QgsStyle,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import QHBoxLayout, QLabel, QLineEdit, QPushButton, QSlider, QSpinBox, QVBoxLayout

from ..core.errors import RsSageError
from ..qgis_adapter.field_types import DOUBLE, INT, STRING
from .sections import section

SIMILAR_LAYER = "RS-SAGE similar"


def store_from_layer(layer: QgsVectorLayer, vectors: dict[int, np.ndarray]):
    """A ``core.questions.similar.Store`` of the classified tiles (feature ids as tile ids)."""
    from ..core.questions.similar import Store

    ids, vecs, wkt, labels = [], [], [], []
    for f in layer.getFeatures():
        v = vectors.get(f.id())
        if v is not None:
            ids.append(f.id())
            vecs.append(v)
            wkt.append(f.geometry().asWkt())
            labels.append(f["label"])
    if not ids:
        raise RsSageError("Classify an extent first: Find similar searches its tiles.")
    return Store(np.array(ids, np.int64), np.stack(vecs).astype(np.float32), wkt, labels, layer.crs().toWkt())


class SimilarSection:
    def __init__(self, parent):
        self.box = box = section("Find similar", parent)
        v = QVBoxLayout(box)
        self.help = QLabel("Select example tiles in the RS-SAGE classes layer (or type a phrase), then "
                           "search. Tiles you select in the result are 'not this' next time.", box)
        self.help.setWordWrap(True)
        v.addWidget(self.help)
        self.phrase = QLineEdit(box)
        self.phrase.setPlaceholderText("or a phrase, e.g. solar farm")
        v.addWidget(self.phrase)
        row = QHBoxLayout()
        self.k = QSpinBox(box)
        self.k.setRange(1, 10_000)
        self.k.setValue(20)
        self.k.setPrefix("top ")
        row.addWidget(self.k)
        self.search_button = QPushButton("Search", box)
        self.search_button.setObjectName("RsSageSimilar")
        row.addWidget(self.search_button)
        v.addLayout(row)
        self.slider = QSlider(Qt.Orientation.Horizontal, box)
        self.slider.setRange(0, 100)
        self.slider.setToolTip("Show only results at least this similar (re-filters, no new search)")
        v.addWidget(self.slider)
        self.slider_label = QLabel("similarity ≥ 0.00", box)
        v.addWidget(self.slider_label)
        self.slider.valueChanged.connect(self.refilter)
        self.layer: QgsVectorLayer | None = None

    def search(self, classes: QgsVectorLayer | None, vectors: dict[int, np.ndarray],
               embed_phrase: Callable[[str], np.ndarray] | None = None) -> int:
        """Run the search; the number of tiles in the result layer."""
        from ..core.questions.similar import query_vector
        from ..core.questions.similar import search as core_search

        if classes is None:
            raise RsSageError("Classify an extent first: Find similar searches its tiles.")
        store = store_from_layer(classes, vectors)
        positives = [vectors[f.id()] for f in classes.selectedFeatures() if f.id() in vectors]
        not_this = []
        if self.layer is not None and _alive(self.layer):
            not_this = [int(f["tile_id"]) for f in self.layer.selectedFeatures() if int(f["tile_id"]) in vectors]
        negatives = [vectors[i] for i in not_this]
        phrase = self.phrase.text().strip()
        if phrase:
            if embed_phrase is None:
                raise RsSageError("The model is not loaded yet; try again in a moment.")
            positives.append(embed_phrase(phrase))
        exclude = {f.id() for f in classes.selectedFeatures()} | set(not_this)
        matches = core_search(store, query_vector(positives, negatives), int(self.k.value()), exclude=exclude)
        self.layer = self._layer(store, matches, classes.crs())
        self.refilter()
        return len(matches)

    def _layer(self, store, matches, crs) -> QgsVectorLayer:
        project = QgsProject.instance()
        for old in project.mapLayersByName(SIMILAR_LAYER):
            project.removeMapLayer(old.id())
        layer = QgsVectorLayer(f"Polygon?crs={crs.authid() or crs.toWkt()}", SIMILAR_LAYER, "memory")
        pr = layer.dataProvider()
        pr.addAttributes([QgsField("tile_id", INT), QgsField("rank", INT),
                          QgsField("similarity", DOUBLE), QgsField("label", STRING)])
        layer.updateFields()
        pos = {int(fid): j for j, fid in enumerate(store.ids)}
        feats = []
        for m in matches:
            f = QgsFeature(layer.fields())
            f.setGeometry(QgsGeometry.fromWkt(store.wkt[pos[m.fid]]))
            f.setAttributes([m.fid, m.rank, m.similarity, store.labels[pos[m.fid]]])
            feats.append(f)
        pr.addFeatures(feats)
        layer.updateExtents()
        renderer = QgsGraduatedSymbolRenderer("similarity")
        renderer.setSourceSymbol(QgsFillSymbol.createSimple({"outline_color": "#222222", "outline_width": "0.3"}))
        ramp = QgsStyle.defaultStyle().colorRamp("Viridis")
        if ramp is not None:
            renderer.setSourceColorRamp(ramp)
        renderer.setClassificationMethod(QgsClassificationQuantile())
        renderer.updateClasses(layer, min(5, max(1, len(matches))))
        layer.setRenderer(renderer)
        layer.setOpacity(0.7)
        project.addMapLayer(layer)
        return layer

    def refilter(self) -> None:
        t = self.slider.value() / 100
        self.slider_label.setText(f"similarity ≥ {t:.2f}")
        if self.layer is not None and _alive(self.layer):
            self.layer.setSubsetString(f'"similarity" >= {t}' if t > 0 else "")


def _alive(layer) -> bool:
    try:
        return layer.isValid()
    except RuntimeError:  # deleted by the user
        return False
