"""The RS-SAGE dock panel: Classify extent and Ask about a region.

The panel only gathers inputs, starts a QgsTask and, when the task hands back a result, writes
layers in the GUI thread. Inputs are never cleared by an error.
"""

from __future__ import annotations

import html

from qgis.core import (
    Qgis,
    QgsApplication,
    QgsCoordinateTransform,
    QgsCsException,
    QgsGeometry,
    QgsProject,
    QgsRectangle,
    QgsSettings,
    QgsVectorLayer,
)
from qgis.PyQt.QtCore import Qt
from qgis.PyQt.QtWidgets import (
    QApplication,
    QDockWidget,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QMessageBox,
    QProgressBar,
    QPushButton,
    QScrollArea,
    QSizePolicy,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from ..core.errors import RsSageError
from ..core.imagery.units import format_area
from ..core.setup.model_pack import pack_size_text
from ..core.setup.presets import PRESETS, model_settings
from ..core.setup.status import plugin_status
from ..qgis_adapter.layer_source import layer_source
from . import result_layers
from .map_tool import RegionMapTool
from .sections import ImagerySection, LabelsSection, RegionSection
from .similar import SimilarSection
from .tasks import CoreTask, ask_work, classify_work

SETTINGS_MAX_TILES = "rs_sage/max_tiles"


def region_area_m2(geometry: QgsGeometry, crs) -> float:
    """Ellipsoidal area in m² (planar in metres where the project has no ellipsoid)."""
    from qgis.core import QgsDistanceArea, QgsUnitTypes

    da = QgsDistanceArea()
    da.setSourceCrs(crs, QgsProject.instance().transformContext())
    da.setEllipsoid(QgsProject.instance().ellipsoid() or "EPSG:7030")
    return da.convertAreaMeasurement(da.measureArea(geometry), QgsUnitTypes.AreaUnit.AreaSquareMeters)


class RsSageDock(QDockWidget):
    def __init__(self, iface, parent=None):
        super().__init__("RS-SAGE", parent or iface.mainWindow())
        self.iface = iface
        self.canvas = iface.mapCanvas()
        self.task: CoreTask | None = None
        self.region: QgsGeometry | None = None  # in the canvas CRS
        self.region_crs = None
        self.map_tool: RegionMapTool | None = None
        self.highlights = []
        self.last_classes_layer: QgsVectorLayer | None = None
        self.last_answer = None
        self.tile_vectors: dict = {}
        self.last_diagnostics = ""
        self.preload_task: CoreTask | None = None
        settings = model_settings()
        self.default_gsd = float(settings.get("default_gsd_m", 4.0))
        self.gsd_range = tuple(float(v) for v in settings.get("gsd_range_m", (2.0, 32.0)))
        self._build()
        self.refresh_status()
        self._restore_layer()
        self.canvas.extentsChanged.connect(self.update_estimate)
        QgsProject.instance().cleared.connect(self.reset)

    def reset(self) -> None:
        """A new project: no region, answer, highlights or area table of the old one stay."""
        self.region, self.region_crs, self.last_answer = None, None, None
        self.region_label.setText("No region yet.")
        self.answer_view.clear()
        self.summary.setRowCount(0)
        for band in self.highlights:
            self.canvas.scene().removeItem(band)
        self.highlights = []
        self.scale_note.setText("")
        self.update_estimate()

    # ---- layout ------------------------------------------------------------------------------
    def _build(self) -> None:
        body = QWidget(self)
        lay = QVBoxLayout(body)
        self.status_label = QLabel(body)
        self.status_label.setObjectName("RsSageStatus")
        self.status_label.setWordWrap(True)
        lay.addWidget(self.status_label)
        setup = QVBoxLayout()  # stacked: the dock must fit in 400 px
        self.install_button = QPushButton("Install dependencies", body)
        self.install_button.setObjectName("RsSageInstall")
        self.install_button.setToolTip("pip-install the missing Python packages into a folder RS-SAGE owns "
                                       "in your QGIS profile (QGIS's own packages are not touched)")
        self.install_button.clicked.connect(lambda: self.install_dependencies(None))
        self.install_wheels_button = QPushButton("From wheels…", body)
        self.install_wheels_button.setObjectName("RsSageInstallWheels")
        self.install_wheels_button.setToolTip("Offline: install from a folder of wheels made with "
                                              "'python -m core deps wheelhouse' on a connected machine")
        self.install_wheels_button.clicked.connect(self._pick_wheel_folder)
        self.models_button = QPushButton("Download models", body)
        self.models_button.setObjectName("RsSageModels")
        self.models_button.setToolTip(f"Download the model pack once ({pack_size_text()}, checked against its "
                                      "sha256; a broken download resumes). Uses QGIS's proxy settings.")
        self.models_button.clicked.connect(lambda: self.install_models(None))
        self.models_file_button = QPushButton("Models from file…", body)
        self.models_file_button.setObjectName("RsSageModelsFile")
        self.models_file_button.setToolTip("Offline: install a model pack file (rs_sage-models-VERSION.zip) "
                                           "copied from a connected machine")
        self.models_file_button.clicked.connect(self._pick_models_file)
        self.diagnostics_button = QPushButton("Diagnostics", body)
        self.diagnostics_button.setObjectName("RsSageDiagnostics")
        self.diagnostics_button.setToolTip("Versions, paths, providers, GPU and checksums; copied to the clipboard")
        self.diagnostics_button.clicked.connect(self.diagnostics)
        for b in (self.install_button, self.install_wheels_button, self.models_button, self.models_file_button,
                  self.diagnostics_button):
            b.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Fixed)
            setup.addWidget(b)
        lay.addLayout(setup)

        self.imagery = ImagerySection(body, self.gsd_range, self.default_gsd)
        for name in ("layer_combo", "gsd", "scale_note", "tile", "overlap", "estimate", "contrast_label"):
            setattr(self, name, getattr(self.imagery, name))
        self.layer_combo.layerChanged.connect(self._layer_changed)
        for w in (self.gsd, self.tile, self.overlap):
            w.valueChanged.connect(self.update_estimate)
        lay.addWidget(self.imagery.box)

        self.label_section = LabelsSection(body)
        for name in ("preset", "labels_edit", "labels_parsed"):
            setattr(self, name, getattr(self.label_section, name))
        lay.addWidget(self.label_section.box)

        self.classify_button = QPushButton("Classify extent", self)
        self.classify_button.setObjectName("RsSageClassify")
        self.classify_button.clicked.connect(self.classify_extent)

        self.region_section = RegionSection(body)
        for name in ("rect_button", "poly_button", "sel_button", "region_label", "question", "answer_view"):
            setattr(self, name, getattr(self.region_section, name))
        self.rect_button.clicked.connect(lambda: self._activate_tool("rectangle"))
        self.poly_button.clicked.connect(lambda: self._activate_tool("polygon"))
        self.sel_button.clicked.connect(self.use_selected_features)
        self.ask_button = QPushButton("Ask", self)
        self.ask_button.setObjectName("RsSageAsk")
        self.ask_button.clicked.connect(self.ask)
        lay.addWidget(self.region_section.box)

        self.similar_section = SimilarSection(body)
        self.similar_section.search_button.clicked.connect(self.find_similar)
        lay.addWidget(self.similar_section.box)

        self.progress = QProgressBar(self)
        self.progress.setRange(0, 100)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.setEnabled(False)
        self.cancel_button.clicked.connect(self.cancel)

        self.summary = QTableWidget(0, 3, body)
        self.summary.setHorizontalHeaderLabels(["Class", "Area (ha)", "%"])
        self.summary.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.Stretch)
        self.summary.verticalHeader().setVisible(False)
        lay.addWidget(self.summary)
        # Scrolls instead of squeezing the map: the dock fits in 400 px at any height.
        scroll = QScrollArea(self)
        scroll.setWidgetResizable(True)
        scroll.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        scroll.setFrameShape(QScrollArea.NoFrame)
        scroll.setWidget(body)
        self.body = body
        # The actions, progress and Cancel sit below the scrolling part: always visible.
        outer = QWidget(self)
        ov = QVBoxLayout(outer)
        ov.setContentsMargins(0, 0, 0, 0)
        ov.addWidget(scroll, 1)
        actions = QHBoxLayout()
        actions.setContentsMargins(6, 0, 6, 0)
        for b in (self.classify_button, self.ask_button):
            b.setMinimumWidth(60)
            b.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
            actions.addWidget(b)
        ov.addLayout(actions)
        prog = QHBoxLayout()
        prog.setContentsMargins(6, 0, 6, 6)
        self.progress.setMinimumWidth(60)
        prog.addWidget(self.progress, 1)
        prog.addWidget(self.cancel_button)
        ov.addLayout(prog)
        self.setWidget(outer)

    # ---- inputs --------------------------------------------------------------------------------
    def refresh_status(self) -> None:
        status = plugin_status()
        self.status_label.setText(status.as_text())
        for b in (self.install_button, self.install_wheels_button):
            b.setVisible(bool(status.missing_modules))
        for b in (self.models_button, self.models_file_button):
            b.setVisible(status.models_missing)

    # ---- model pack ------------------------------------------------------------------------------
    def _pick_models_file(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        path, _ = QFileDialog.getOpenFileName(self, "RS-SAGE model pack", "", "Model pack (*.zip)")
        if path:
            self.install_models(path)

    def install_models(self, pack_file: str | None) -> None:
        from .dependencies import models_work

        if self.busy():
            self.warn("RS-SAGE is already running; wait or cancel it first.", Qgis.MessageLevel.Info)
            return
        self.warn("Installing the model pack" + (" from file" if pack_file else f" (download, {pack_size_text()})")
                  + "; Cancel keeps what was downloaded for the next try.", Qgis.MessageLevel.Info)
        self._start("RS-SAGE: model pack", models_work(pack_file), self._models_installed)

    def _models_installed(self, root) -> None:
        self.refresh_status()
        self.warn(f"Model pack installed in {root}; RS-SAGE is ready to use.", Qgis.MessageLevel.Success)

    # ---- dependencies and diagnostics -----------------------------------------------------------
    def _pick_wheel_folder(self) -> None:
        from qgis.PyQt.QtWidgets import QFileDialog

        folder = QFileDialog.getExistingDirectory(self, "Folder of wheels for RS-SAGE")
        if folder:
            self.install_dependencies(folder)

    def install_dependencies(self, wheel_dir: str | None) -> None:
        from ..core.setup.deps import nvidia_gpu
        from .dependencies import install_work

        if self.busy():
            self.warn("RS-SAGE is already running; wait or cancel it first.", Qgis.MessageLevel.Info)
            return
        gpu = nvidia_gpu()  # the CUDA build of onnxruntime only where an NVIDIA driver is loaded
        self.warn("Installing Python packages" + (" (GPU build of onnxruntime)" if gpu else "")
                  + "; the log is under View > Panels > Log Messages > RS-SAGE install.", Qgis.MessageLevel.Info)
        self._start("RS-SAGE: install dependencies", install_work(wheel_dir, gpu), self._installed)

    def _installed(self, result) -> None:
        from .dependencies import activate_installed

        if result.ok:
            activate_installed()
            self.refresh_status()
            self.warn(result.message + " RS-SAGE is ready to use.", Qgis.MessageLevel.Success)
        else:
            tail = "\n".join(result.log[-8:])
            self.warn(f"{result.message}\n{tail}")

    def diagnostics(self) -> None:
        from .dependencies import diagnostics_work

        if self.busy():
            self.warn("RS-SAGE is already running; wait or cancel it first.", Qgis.MessageLevel.Info)
            return
        self._start("RS-SAGE: diagnostics", diagnostics_work(), self._show_diagnostics)

    def _show_diagnostics(self, text: str) -> None:
        QApplication.clipboard().setText(text)
        self.last_diagnostics = text
        box = QMessageBox(QMessageBox.Icon.Information, "RS-SAGE diagnostics",
                          "The report was copied to the clipboard; paste it into your bug report.", parent=self)
        box.setDetailedText(text)
        box.setModal(False)
        box.show()

    def _restore_layer(self) -> None:
        """The project's last layer, label list and question (saved with the project)."""
        project = QgsProject.instance()
        layer_id, ok = project.readEntry("rs_sage", "layer", "")
        layer = project.mapLayer(layer_id) if ok and layer_id else None
        if layer is not None:
            self.layer_combo.setLayer(layer)
        preset, ok = project.readEntry("rs_sage", "preset", "")
        if ok and preset and self.preset.findText(preset) >= 0:
            self.preset.setCurrentText(preset)
        labels, ok = project.readEntry("rs_sage", "labels", "")
        if ok and labels and preset not in PRESETS:
            self.labels_edit.setPlainText(labels)
        self.update_estimate()

    def remember(self) -> None:
        """Keep this project's choices with the project (written when the user runs something)."""
        project = QgsProject.instance()
        project.writeEntry("rs_sage", "preset", self.preset.currentText())
        project.writeEntry("rs_sage", "labels", self.labels_edit.toPlainText())

    def _layer_changed(self, layer) -> None:
        if layer is not None:
            QgsProject.instance().writeEntry("rs_sage", "layer", layer.id())
        self.scale_from_layer(layer)
        self.update_contrast_note()
        self.update_estimate()

    def scale_from_layer(self, layer) -> None:
        """Start at the layer's own scale, kept inside what the model saw (the labeller's rule,
        so Processing with an empty scale does the same), and say why."""
        from ..core.imagery.labeller import native_gsd, tile_gsd
        from ..core.imagery.raster import open_raster

        self.scale_note.setText("")
        if layer is None:
            return
        try:
            ds = open_raster(layer_source(layer).path)
            native = native_gsd(ds, ds.GetGeoTransform(), ds.GetSpatialRef())
        except (RsSageError, RuntimeError, AttributeError):
            return
        gsd, note = tile_gsd(None, native, self.default_gsd, self.gsd_range)
        self.gsd.setValue(gsd)
        lo, hi = self.gsd_range
        text = f"Native {native:.3g} m/px; model range {lo:g}-{hi:g} m/px."
        try:  # a tile size that gives the visible extent a sensible number of tiles
            from ..core.imagery.tiling import suggest_tile

            extent = self.extent_in_layer(layer)
            mx, my = self._metres_per_unit(layer, extent)
            from ..core.imagery.tiling import footprint_text

            tile = suggest_tile(extent.width() * mx, extent.height() * my, gsd, self.max_tiles())
            if tile != self.tile.value():
                self.tile.setValue(tile)
            text += f" Tiles of {tile} px. {footprint_text(tile, gsd)}"
        except RsSageError:
            pass
        if note:
            text += f" {note}"
        w_m, h_m = ds.RasterXSize * native, ds.RasterYSize * native
        smallest = 32 * lo  # the smallest tile at the model's finest scale
        if w_m * h_m < 0.5 * smallest * smallest:
            text += (f" This layer ({w_m:.3g} m x {h_m:.3g} m) is smaller than one scene the model can read "
                     f"(at least {smallest:g} m across).")
        self.scale_note.setText(text)

    def update_contrast_note(self) -> None:
        """Say which stretch the model gets: the valid-pixel one, or the user's hand-set min/max."""
        layer = self.layer_combo.currentLayer()
        try:
            self.contrast_label.setText(layer_source(layer).contrast_note() if layer is not None else "")
        except RsSageError as exc:
            self.contrast_label.setText(str(exc))

    def labels(self) -> list[str]:
        return self.label_section.labels()

    def max_tiles(self) -> int:
        return int(QgsSettings().value(SETTINGS_MAX_TILES, 400))

    def stride(self) -> int:
        return self.imagery.stride()

    def extent_in_layer(self, layer) -> QgsRectangle:
        """The canvas extent in the layer's CRS (project transform context), clipped to the layer."""
        ct = QgsCoordinateTransform(self.canvas.mapSettings().destinationCrs(), layer.crs(),
                                    QgsProject.instance().transformContext())
        try:
            ext = ct.transformBoundingBox(self.canvas.extent())
        except QgsCsException as exc:
            raise RsSageError(f"The map extent cannot be transformed to the layer's CRS "
                              f"({layer.crs().authid()}): {exc}") from exc
        clipped = ext.intersect(layer.extent())
        if clipped.isEmpty() or clipped.width() <= 0 or clipped.height() <= 0:
            raise RsSageError("The visible extent is outside the raster layer; zoom to the layer first.")
        return clipped

    @staticmethod
    def _metres_per_unit(layer, extent: QgsRectangle) -> tuple[float, float]:
        from osgeo import osr

        from ..core.imagery.tiling import metres_per_unit

        srs = osr.SpatialReference()
        srs.ImportFromWkt(layer.crs().toWkt())
        return metres_per_unit(srs, extent.center().y())

    def tile_count(self, layer, extent: QgsRectangle) -> int:
        from ..core.imagery.tiling import tiles_along

        mx, my = self._metres_per_unit(layer, extent)
        step = self.stride() * self.gsd.value()
        tile = self.tile.value() * self.gsd.value()
        w, h = extent.width() * mx, extent.height() * my
        return tiles_along(w, tile, step) * tiles_along(h, tile, step)

    def showEvent(self, event):  # noqa: N802
        super().showEvent(event)
        self.update_estimate()
        self.preload()

    def update_estimate(self) -> None:
        layer = self.layer_combo.currentLayer()
        try:
            if layer is None:
                raise RsSageError("no raster layer")
            n = self.tile_count(layer, self.extent_in_layer(layer))
            self.estimate.setText(f"about {n} tile{'s' if n != 1 else ''} in the visible extent")
        except RsSageError as exc:  # the same message the buttons would give, shortened
            self.estimate.setText(str(exc).split(";")[0])

    # ---- feedback --------------------------------------------------------------------------------
    def warn(self, text: str, level=Qgis.MessageLevel.Warning) -> None:
        # Errors and warnings stay until dismissed; they must not flash past under "Task complete".
        keep = level in (Qgis.MessageLevel.Warning, Qgis.MessageLevel.Critical)
        self.iface.messageBar().pushMessage("RS-SAGE", text, level=level, duration=0 if keep else 8)

    def confirm_large(self, n: int) -> bool:
        """Ask before a run above the tile limit (tests replace this method)."""
        return QMessageBox.question(
            self, "RS-SAGE", f"The extent makes {n} tiles (limit {self.max_tiles()}). Run anyway?",
        ) == QMessageBox.StandardButton.Yes

    def busy(self) -> bool:
        return self.task is not None

    def _start(self, description: str, work, on_done) -> None:
        self.progress.setValue(0)
        self.cancel_button.setEnabled(True)
        self.classify_button.setEnabled(False)
        self.ask_button.setEnabled(False)

        def done(result, error, cancelled):
            self.task = None
            self.cancel_button.setEnabled(False)
            self.classify_button.setEnabled(True)
            self.ask_button.setEnabled(True)
            if cancelled:
                self.progress.setValue(0)
                self.warn("Cancelled; nothing was added to the map.", Qgis.MessageLevel.Info)
            elif error:
                self.warn(error)
            elif result is not None:
                self.progress.setValue(100)
                on_done(result)

        self.task = CoreTask(description, work, done)
        self.task.progressChanged.connect(lambda p: self.progress.setValue(int(p)))
        QgsApplication.taskManager().addTask(self.task)

    def cancel(self) -> None:
        if self.task is not None:
            self.task.cancel()

    # ---- classify ------------------------------------------------------------------------------
    def classify_extent(self) -> None:
        if self.busy():
            self.warn("RS-SAGE is already running; wait or cancel it first.", Qgis.MessageLevel.Info)
            return
        self.remember()
        try:
            layer = self.layer_combo.currentLayer()
            if layer is None:
                raise RsSageError("There is no raster layer to classify; add one and pick it above.")
            source = layer_source(layer)
            self.contrast_label.setText(source.contrast_note())  # the renderer may have changed
            extent = self.extent_in_layer(layer)
            labels = self.labels()
            n = self.tile_count(layer, extent)
            if n > self.max_tiles() and not self.confirm_large(n):
                return
        except RsSageError as exc:
            self.warn(str(exc))
            return
        ext = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        crs = layer.crs()
        p = self.imagery.params()
        work = classify_work(source, ext, labels, p.gsd, p.tile, p.stride, None)
        self._start("RS-SAGE: classify extent", work, lambda res: self._classified(res, crs, labels))

    def _classified(self, result, crs, labels: list[str]) -> None:
        # never empty: the labeller raises, with the reason, when nothing is labelled
        self.last_classes_layer = result_layers.classes_layer(result.records, crs, labels, colours=result.colours)
        # feature ids follow the records' order in a new memory layer: keep each tile's vector by id
        self.tile_vectors = {f.id(): r.vector for f, r in zip(self.last_classes_layer.getFeatures(), result.records,
                                                               strict=False) if r.vector is not None}
        self.summary.setRowCount(0)
        for name, s in sorted(result.summary.items(), key=lambda kv: -kv[1]["area_ha"]):
            r = self.summary.rowCount()
            self.summary.insertRow(r)
            for c, v in enumerate((name, f"{s['area_ha']:.1f}", f"{s['percent']:.1f}")):
                item = QTableWidgetItem(v)
                if c:
                    item.setTextAlignment(int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter))
                self.summary.setItem(r, c, item)
        msg = f"{result.labelled} tiles classified in {result.seconds:.1f} s"
        if result.uncertain:
            msg += f"; {result.uncertain} uncertain (hatched)"
        for note in result.notes:
            msg += f". {note}"
        if result.skipped_nodata:
            msg += f"; {result.skipped_nodata} mostly-nodata tiles skipped ({result.nodata_rule})"
        self.warn(msg, Qgis.MessageLevel.Success)

    # ---- find similar --------------------------------------------------------------------------
    def find_similar(self) -> None:
        """Small and in the GUI thread: a few hundred vectors, no model pass (a phrase is a few
        text-encoder calls; the engine is loaded, since the tiles searched were classified by it)."""
        try:
            embed_phrase = None
            if self.similar_section.phrase.text().strip():
                from ..core.model.engine import shared_engine

                embed_phrase = shared_engine().phrase_embedding
            classes = self.last_classes_layer if self.last_classes_layer is not None and \
                self.last_classes_layer.isValid() else None
            n = self.similar_section.search(classes, self.tile_vectors, embed_phrase)
        except (RsSageError, RuntimeError) as exc:
            self.warn(str(exc))
            return
        self.warn(f"{n} similar tiles in the layer 'RS-SAGE similar'; move the slider to keep only the closest.",
                  Qgis.MessageLevel.Info)

    # ---- ask -----------------------------------------------------------------------------------
    def _activate_tool(self, mode: str) -> None:
        if self.map_tool is None:
            self.map_tool = RegionMapTool(self.canvas, mode)
            self.map_tool.regionDrawn.connect(self.set_region)
        self.map_tool.mode = mode
        self.canvas.setMapTool(self.map_tool)

    def set_region(self, geometry: QgsGeometry, crs=None) -> None:
        self.region = QgsGeometry(geometry)
        self.region_crs = crs or self.canvas.mapSettings().destinationCrs()
        self.region_label.setText(f"Region: {format_area(region_area_m2(self.region, self.region_crs))}")

    def use_selected_features(self) -> None:
        layer = self.iface.activeLayer()
        if not isinstance(layer, QgsVectorLayer) or layer.selectedFeatureCount() == 0:
            self.warn("Select polygon features in the active vector layer first.")
            return
        geom = QgsGeometry.unaryUnion([f.geometry() for f in layer.selectedFeatures()])
        if geom.isEmpty() or geom.area() <= 0:
            self.warn("The selected features have no area (select polygons).")
            return
        self.set_region(geom, layer.crs())

    def ask(self) -> None:
        if self.busy():
            self.warn("RS-SAGE is already running; wait or cancel it first.", Qgis.MessageLevel.Info)
            return
        self.answer_view.clear()  # a refused question must not leave the last answer under it
        try:
            question = self.region_section.question_text()
            from ..core.questions.question_parse import parse_question

            parse_question(question)
            layer = self.layer_combo.currentLayer()
            if layer is None:
                raise RsSageError("There is no raster layer to look at; add one and pick it above.")
            if self.region is None:
                raise RsSageError("Draw a region first (rectangle or polygon), or use selected features.")
            source = layer_source(layer)
            ct = QgsCoordinateTransform(self.region_crs, layer.crs(), QgsProject.instance().transformContext())
            g = QgsGeometry(self.region)
            try:
                g.transform(ct)
            except QgsCsException as exc:
                raise RsSageError(f"The region cannot be transformed to the layer's CRS: {exc}") from exc
            if not g.intersects(QgsGeometry.fromRect(layer.extent())):
                raise RsSageError("The region is outside the raster layer.")
            labels = self.labels()
        except RsSageError as exc:
            self.warn(str(exc))
            return
        region, region_crs, name = QgsGeometry(self.region), self.region_crs, layer.name()
        p = self.imagery.params()
        work = ask_work(source, g.asWkt(), question, p.gsd, p.tile, labels, self.max_tiles())
        self._start("RS-SAGE: ask", work,
                    lambda res: self._answered(res, region, region_crs, layer.crs(), name))

    def _answered(self, res, region, region_crs, layer_crs, layer_name) -> None:
        self.last_answer = res
        cues = "<br>".join(f"<b>{lv}</b>: " + ", ".join(f"{c.name} ({c.score:.2f})" for c in res.cues[lv][:5])
                           for lv in ("scene", "object", "fine"))
        router = ", ".join(f"{k} {v:.2f}" for k, v in res.router.items())
        shares = ""
        if res.shares:
            shares = "<br><b>area shares</b>: " + ", ".join(f"{k} {v * 100:.0f} %" for k, v in res.shares.items())
        self.answer_view.setHtml(
            f"<p><b>{res.question}</b><br><span style='font-size:14pt'>{res.answer}</span> "
            f"(confidence {res.confidence:.2f}, {res.type}, {len(res.supporting)} of {len(res.tiles)} tiles)</p>"
            f"<p>{html.escape(res.text)}</p>"
            f"<p>{cues}<br><b>router</b>: {router}{shares}</p>")
        log = result_layers.questions_layer(region_crs)
        result_layers.log_answer(log, region, res.question, res, layer_name)
        try:  # the visible map, in the region's CRS, so the answer's frame opens inside it
            to_region = QgsCoordinateTransform(self.canvas.mapSettings().destinationCrs(), region_crs,
                                               QgsProject.instance().transformContext())
            visible = to_region.transformBoundingBox(self.canvas.extent())
        except Exception:  # noqa: BLE001 - a transform failure only loses the nicer placement
            visible = None
        result_layers.annotate(region, region_crs, res.text, visible=visible)
        self._highlight(res, layer_crs)
        self.canvas.refresh()

    def _highlight(self, res, layer_crs) -> None:
        from qgis.core import QgsWkbTypes
        from qgis.gui import QgsRubberBand
        from qgis.PyQt.QtGui import QColor

        for band in self.highlights:
            self.canvas.scene().removeItem(band)
        self.highlights = []
        ct = QgsCoordinateTransform(layer_crs, self.canvas.mapSettings().destinationCrs(),
                                    QgsProject.instance().transformContext())
        for i in res.supporting:
            band = QgsRubberBand(self.canvas, QgsWkbTypes.GeometryType.PolygonGeometry)
            band.setColor(QColor(0, 160, 255, 50))
            band.setStrokeColor(QColor(0, 160, 255))
            band.setWidth(2)
            t = res.tiles[i]  # the tile cut to the region and the raster, where known
            g = QgsGeometry.fromWkt(t.footprint) if getattr(t, "footprint", "") else \
                QgsGeometry.fromRect(QgsRectangle(*t.bounds))
            g.transform(ct)
            band.setToGeometry(g, None)
            self.highlights.append(band)

    def preload(self) -> None:
        """Load the model, knowledge base and text encoder in the background when the panel first
        shows, so the first click does not pay for it (``python -m core bench --section cold``)."""
        if self.preload_task is not None or plugin_status().missing_modules:
            return
        try:
            labels = self.labels()  # read here: the worker thread never touches a widget
        except RsSageError:
            labels = []

        def work(progress, cancelled):
            from ..core.model.engine import shared_engine

            engine = shared_engine()
            engine.text.preload()  # the session too: later new labels and questions need it
            if labels:
                engine.label_embeddings(labels)
            return True

        def done(result, error, cancelled):
            if error and self.preload_task is not None:  # None: the panel was shut down meanwhile
                self.warn(error)

        self.preload_task = CoreTask("RS-SAGE: load the model", work, done)
        QgsApplication.taskManager().addTask(self.preload_task)

    def shutdown(self) -> None:
        """Called by the plugin's unload: stop work, drop map items, release the map tool."""
        self.preload_task = None
        if self.task is not None:
            self.task.cancel()
        for band in self.highlights:
            self.canvas.scene().removeItem(band)
        self.highlights = []
        if self.map_tool is not None:
            if self.canvas.mapTool() is self.map_tool:
                self.canvas.unsetMapTool(self.map_tool)
            self.map_tool.clear()
        try:
            self.canvas.extentsChanged.disconnect(self.update_estimate)
        except TypeError:
            pass
        try:
            QgsProject.instance().cleared.disconnect(self.reset)
        except TypeError:
            pass
