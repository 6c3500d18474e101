"""RS-SAGE Processing algorithms: label_raster, classify_extent, ask_region.

Thin adapters: parameters in, ``core`` call, outputs out. Heavy modules are imported inside
``processAlgorithm`` so that listing the toolbox stays instant.
"""

from __future__ import annotations

import os

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingLayerPostProcessorInterface,
    QgsProcessingOutputNumber,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterVectorDestination,
    QgsProcessingParameterVectorLayer,
    QgsWkbTypes,
)

from ..qgis_adapter.field_types import DOUBLE, INT, STRING
from ..qgis_adapter.layer_source import layer_source
from ..qgis_adapter.tile_features import tile_feature, tile_fields
from .common import engine, parse_labels


class _TileStyler(QgsProcessingLayerPostProcessorInterface):
    """Gives a tile layer Processing loads the panel's style (meaningful colours, hatched
    uncertain tiles, labels). Instances are kept alive here: QGIS holds only a C++ pointer."""

    _alive: list = []

    def __init__(self, labels: list[str], present: set[str], colours: dict):
        super().__init__()
        self.labels, self.present, self.colours = labels, present, colours

    def postProcessLayer(self, layer, context, feedback):  # noqa: N802 (QGIS's name)
        from ..qgis_adapter.tile_features import style_tiles

        if layer is not None and layer.isValid():
            style_tiles(layer, self.labels, self.present, self.colours)

    @classmethod
    def attach(cls, context, dest: str, result) -> None:
        if dest and context.willLoadLayerOnCompletion(dest):
            styler = cls(list(result.colours), set(result.summary), dict(result.colours))
            cls._alive.append(styler)
            context.layerToLoadOnCompletionDetails(dest).setPostProcessor(styler)


class _Base(QgsProcessingAlgorithm):
    def group(self):
        return "RS-SAGE"

    def groupId(self):  # noqa: N802
        return "rs_sage"

    def createInstance(self):  # noqa: N802
        return type(self)()

    def _common_params(self, tile_default=0):
        self.addParameter(QgsProcessingParameterString(
            "LABELS", "Class names (comma or newline separated; empty = the 30 AID scene classes)",
            optional=True, multiLine=True))
        self.addParameter(QgsProcessingParameterNumber(
            "GSD", "Ground sampling distance of the tiles, m/px (0 = model default or native if coarser)",
            QgsProcessingParameterNumber.Type.Double, 0, minValue=0))
        self.addParameter(QgsProcessingParameterNumber(
            "TILE", "Tile size (px, 0 = about 900 m across at the scale used)",
            QgsProcessingParameterNumber.Type.Integer, tile_default, minValue=0, maxValue=1024))

    @staticmethod
    def _source(layer):
        """The layer as the panel sees it: file, band mapping, hand-set stretch, user no-data."""
        from ..core.errors import RsSageError

        try:  # the panel's own checks and messages (missing, invalid, not a GDAL layer)
            return layer_source(layer)
        except RsSageError as exc:
            raise QgsProcessingException(str(exc)) from exc

    def _run_core(self, fn, feedback):
        from ..core.errors import RsSageError
        from ..core.imagery.labeller import Cancelled

        try:
            return fn()
        except Cancelled as exc:
            raise QgsProcessingException("Cancelled; no output was written.") from exc
        except RsSageError as exc:
            raise QgsProcessingException(str(exc)) from exc
        except QgsProcessingException:
            raise
        except Exception as exc:  # never a traceback in the user's face; the log keeps it
            import traceback

            from qgis.core import QgsMessageLog

            QgsMessageLog.logMessage(traceback.format_exc(), "RS-SAGE")
            raise QgsProcessingException(f"Unexpected error ({type(exc).__name__}: {exc}); details in the "
                                         "RS-SAGE log (View > Panels > Log Messages).") from exc


class LabelRasterAlgorithm(_Base):
    def name(self):
        return "label_raster"

    def displayName(self):  # noqa: N802
        return "Label raster (batch)"

    def shortHelpString(self):  # noqa: N802
        return ("Streams a whole raster through the RS-SAGE model tile by tile with bounded memory. "
                "Writes a GeoPackage with one polygon per tile (label, score, top-3, semantic cues), "
                "an optional class GeoTIFF and a per-class area summary (CSV). Tiles mostly "
                "nodata, or outside the optional mask polygons, are skipped.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer"))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent (empty = whole raster)", optional=True))
        self.addParameter(QgsProcessingParameterVectorLayer(
            "MASK", "Mask polygons (optional)", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self._common_params()
        self.addParameter(QgsProcessingParameterNumber(
            "STRIDE", "Stride (px, 0 = tile size: no overlap)", QgsProcessingParameterNumber.Type.Integer, 0,
            minValue=0))
        self.addParameter(QgsProcessingParameterBoolean(
            "ALLOW_LARGE", "Allow very large runs (more than 250,000 tiles)", False, optional=True))
        self.addParameter(QgsProcessingParameterString(
            "SCHEDULER", "Dask scheduler (optional: local, local:N or tcp://host:8786; empty = this process)",
            "", optional=True))
        self.addParameter(QgsProcessingParameterVectorDestination(
            "OUTPUT", "Labelled tiles (GeoPackage)", QgsProcessing.SourceType.TypeVectorPolygon))
        self.addParameter(QgsProcessingParameterRasterDestination(
            "OUTPUT_RASTER", "Class raster", optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_SUMMARY", "Area summary", "CSV (*.csv);;JSON (*.json)", optional=True,
            createByDefault=False))
        self.addParameter(QgsProcessingParameterFileDestination(
            "OUTPUT_EMBEDDINGS", "Tile embeddings for Find similar (GeoPackage + FAISS index)",
            "GeoPackage (*.gpkg)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputNumber("TILES", "Tiles labelled"))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.imagery.labeller import LARGE_PLAN_TILES, LabelParams, label_raster

        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = self._source(layer)
        allow_large = self.parameterAsBoolean(parameters, "ALLOW_LARGE", context)
        extent = None
        if parameters.get("EXTENT"):
            r = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
            if not r.isEmpty():
                extent = (r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum())
        mask = None
        if parameters.get("MASK"):
            mask = self.parameterAsCompatibleSourceLayerPath(
                parameters, "MASK", context, ["gpkg", "shp"], "gpkg", feedback)
        out = self.parameterAsOutputLayer(parameters, "OUTPUT", context)
        if not out.lower().endswith(".gpkg"):
            out = os.path.splitext(out)[0] + ".gpkg"
        out_tif = self.parameterAsOutputLayer(parameters, "OUTPUT_RASTER", context) or None
        summary = self.parameterAsFileOutput(parameters, "OUTPUT_SUMMARY", context) or None
        embeddings = self.parameterAsFileOutput(parameters, "OUTPUT_EMBEDDINGS", context) or None
        params = LabelParams(
            out_gpkg=out, out_tif=out_tif, out_summary=summary, embeddings=embeddings,
            labels=parse_labels(self.parameterAsString(parameters, "LABELS", context)),
            gsd=self.parameterAsDouble(parameters, "GSD", context) or None,
            tile=self.parameterAsInt(parameters, "TILE", context) or None,
            stride=self.parameterAsInt(parameters, "STRIDE", context) or None,
            mask=mask, extent=extent, **source.label_params(),
            max_tiles=None if allow_large else LARGE_PLAN_TILES,
            scheduler=self.parameterAsString(parameters, "SCHEDULER", context).strip() or None)
        eng = self._run_core(engine, feedback)
        feedback.pushInfo(f"RS-SAGE model on {eng.device}")
        res = self._run_core(lambda: label_raster(params, eng, progress=feedback.setProgress,
                                                  cancelled=feedback.isCanceled), feedback)
        feedback.pushInfo(
            f"{res.labelled} tiles labelled at {res.gsd:.2f} m/px in {res.seconds:.1f} s "
            f"({res.tiles_per_s:.1f} tiles/s); skipped {res.skipped_nodata} mostly-nodata and "
            f"{res.skipped_mask} outside the mask")
        for note in res.notes:
            feedback.pushWarning(note)
        feedback.pushInfo(f"Nodata: {res.nodata_rule}; stretch low {res.stretch[0]}, high {res.stretch[1]}")
        for label, s in sorted(res.summary.items(), key=lambda kv: -kv[1]["area_ha"]):
            feedback.pushInfo(f"  {label}: {s['area_ha']} ha ({s['percent']} %)")
        _TileStyler.attach(context, out, res)
        result = {"OUTPUT": out, "TILES": res.labelled}
        if out_tif:
            result["OUTPUT_RASTER"] = out_tif
        if summary:
            result["OUTPUT_SUMMARY"] = summary
        if embeddings:
            result["OUTPUT_EMBEDDINGS"] = embeddings
        return result




class ClassifyExtentAlgorithm(_Base):
    def name(self):
        return "classify_extent"

    def displayName(self):  # noqa: N802
        return "Classify extent"

    def shortHelpString(self):  # noqa: N802
        return "Classifies one extent of a raster tile by tile into a polygon layer of tiles with labels."

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer"))
        self.addParameter(QgsProcessingParameterExtent("EXTENT", "Extent"))
        self._common_params()
        self.addParameter(QgsProcessingParameterFeatureSink(
            "OUTPUT", "Classified tiles", QgsProcessing.SourceType.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from ..core.imagery.labeller import LabelParams, label_raster

        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        source = self._source(layer)
        r = self.parameterAsExtent(parameters, "EXTENT", context, layer.crs())
        if r.isEmpty():
            raise QgsProcessingException("The extent is empty.")
        params = LabelParams(
            out_gpkg=None,
            labels=parse_labels(self.parameterAsString(parameters, "LABELS", context)),
            gsd=self.parameterAsDouble(parameters, "GSD", context) or None,
            tile=self.parameterAsInt(parameters, "TILE", context) or None,
            extent=(r.xMinimum(), r.yMinimum(), r.xMaximum(), r.yMaximum()), **source.label_params())
        res = self._run_core(lambda: label_raster(params, engine(), progress=feedback.setProgress,
                                                  cancelled=feedback.isCanceled), feedback)
        fields = tile_fields()
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Type.Polygon, layer.crs())
        for record in res.records:
            sink.addFeature(tile_feature(record, fields), QgsFeatureSink.Flag.FastInsert)
        _TileStyler.attach(context, dest, res)
        return {"OUTPUT": dest}


class AskRegionAlgorithm(_Base):
    def name(self):
        return "ask_region"

    def displayName(self):  # noqa: N802
        return "Ask about regions"

    def shortHelpString(self):  # noqa: N802
        return ("Asks one English question about every polygon of a layer ('Is there a harbour?', "
                "'How many storage tanks?', 'Rural or urban?'). Regions larger than one tile are "
                "answered tile by tile and aggregated. Output: a copy of the layer with answer, "
                "confidence, type and evidence fields.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer("INPUT", "Raster layer"))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "REGIONS", "Regions", [QgsProcessing.SourceType.TypeVectorPolygon]))
        self.addParameter(QgsProcessingParameterString("QUESTION", "Question", "Is there a building?"))
        self._common_params()
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", "Answers",
                                                            QgsProcessing.SourceType.TypeVectorPolygon))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis.core import QgsCoordinateTransform
        from shapely import wkb

        from ..core.questions.regions import ask_region

        layer = self.parameterAsRasterLayer(parameters, "INPUT", context)
        raster = self._source(layer)
        source = self.parameterAsSource(parameters, "REGIONS", context)
        question = self.parameterAsString(parameters, "QUESTION", context)
        gsd = self.parameterAsDouble(parameters, "GSD", context) or None
        tile = self.parameterAsInt(parameters, "TILE", context) or None
        labels = parse_labels(self.parameterAsString(parameters, "LABELS", context))
        fields = QgsFields(source.fields())
        for name, kind in (("question", STRING), ("answer", STRING),
                           ("confidence", DOUBLE), ("type", STRING),
                           ("evidence", STRING)):
            fields.append(QgsField(name, kind))
        check_output_file(self.parameterAsOutputLayer(parameters, "OUTPUT", context),
                          [_source_string(parameters.get("REGIONS")), layer.source()])
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, fields,
                                          source.wkbType(), source.sourceCrs())
        ct = QgsCoordinateTransform(source.sourceCrs(), layer.crs(), context.transformContext())
        eng = self._run_core(engine, feedback)
        from ..core.imagery.tile_cache import EncodedTileCache

        cache = EncodedTileCache()  # overlapping regions share their tiles' encodings within this run
        total = max(source.featureCount(), 1)
        for i, f in enumerate(source.getFeatures()):
            if feedback.isCanceled():
                break
            g = f.geometry()
            if g.isEmpty():
                feedback.reportError(f"feature {f.id()}: empty geometry, skipped")
                continue
            g.transform(ct)
            shape = wkb.loads(bytes(g.asWkb()))
            res = self._run_core(lambda shape=shape: ask_region(
                eng, raster.path, shape, question, gsd, tile, labels=labels, bands=raster.bands,
                stretch=raster.stretch(), nodata=raster.nodata, cancelled=feedback.isCanceled, cache=cache),
                feedback)
            out = QgsFeature(fields)
            out.setGeometry(f.geometry())
            out.setAttributes(list(f.attributes()) + [question, res.answer, res.confidence, res.type, res.text])
            sink.addFeature(out, QgsFeatureSink.Flag.FastInsert)
            feedback.setProgress(100 * (i + 1) / total)
        return {"OUTPUT": dest}


def _source_string(value) -> str:
    """The data source behind a layer parameter's value (a layer, a path, a source definition),
    read without asking Processing for a layer object."""
    if value is None:
        return ""
    if hasattr(value, "source") and callable(value.source):
        return value.source()
    inner = getattr(value, "source", None)  # QgsProcessingFeatureSourceDefinition
    if inner is not None and hasattr(inner, "staticValue"):
        return str(inner.staticValue())
    return str(value)


def _file_of(source: str) -> str:
    """The file behind a layer source or output destination ('x.gpkg|layername=a', "ogr:dbname='x.gpkg' ...")."""
    text = source or ""
    if text.startswith("ogr:"):
        import re

        m = re.search(r"dbname='([^']*)'", text)
        text = m.group(1) if m else ""
    text = text.split("|")[0]
    return os.path.realpath(text) if text and not text.startswith(("memory:", "TEMPORARY_OUTPUT")) else ""


def check_output_file(destination: str, inputs: list[str]) -> None:
    """Refuse an output that is an input's file, or an existing GeoPackage with other layers: QGIS
    would replace the whole file and the user's layers would be gone."""
    out = _file_of(destination)
    if not out:
        return
    for src in inputs:
        if _file_of(src) == out:
            raise QgsProcessingException(f"The output {out} is the file of an input layer; writing it would "
                                         "destroy that layer. Choose another file name.")
    if out.lower().endswith(".gpkg") and os.path.isfile(out):
        from ..core.imagery.labeller import other_layers

        others = other_layers(out)
        if others:
            raise QgsProcessingException(f"{out} already holds layers ({', '.join(others[:5])}); writing the "
                                         "output would replace the whole file. Choose a new file name.")


class FindSimilarAlgorithm(_Base):
    """Find similar tiles: an embeddings GeoPackage (``label --embeddings``) searched with example
    tiles (ids or polygons) and/or a phrase; the same ranking as ``python -m core similar``."""

    def name(self):
        return "find_similar"

    def displayName(self):  # noqa: N802
        return "Find similar tiles"

    def shortHelpString(self):  # noqa: N802
        return ("Ranks the tiles of an embeddings GeoPackage (written by Label raster with an embeddings output, "
                "or 'python -m core label --embeddings') by similarity to examples: tile ids, polygons of an "
                "example layer (the tiles they cover), and/or a phrase. Tiles marked 'not this' push the ranking "
                "away (Rocchio). Output: the top k tiles, or all above a similarity threshold.")

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile("EMBEDDINGS", "Embeddings GeoPackage", extension="gpkg"))
        self.addParameter(QgsProcessingParameterString("EXAMPLES", "Example tile ids (comma separated)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterFeatureSource(
            "EXAMPLE_LAYER", "Example polygons", [QgsProcessing.SourceType.TypeVectorPolygon], optional=True))
        self.addParameter(QgsProcessingParameterString("NOT", "'Not this' tile ids (comma separated)",
                                                       optional=True))
        self.addParameter(QgsProcessingParameterString("TEXT", "Or a phrase (e.g. solar farm)", optional=True))
        self.addParameter(QgsProcessingParameterNumber("K", "How many tiles (0 = all above the threshold)",
                                                       QgsProcessingParameterNumber.Type.Integer, 10, minValue=0))
        self.addParameter(QgsProcessingParameterNumber("THRESHOLD", "Similarity threshold (-1 = none)",
                                                       QgsProcessingParameterNumber.Type.Double, -1.0,
                                                       minValue=-1.0, maxValue=1.0))
        self.addParameter(QgsProcessingParameterFeatureSink("OUTPUT", "Similar tiles",
                                                            QgsProcessing.SourceType.TypeVectorPolygon))

    @staticmethod
    def _ids(text: str) -> list[int]:
        try:
            return [int(t) for t in text.replace(";", ",").split(",") if t.strip()]
        except ValueError as exc:
            raise QgsProcessingException(f"Tile ids must be whole numbers separated by commas: {text}") from exc

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis.core import QgsCoordinateReferenceSystem, QgsCoordinateTransform, QgsGeometry

        from ..core.questions.similar import load_store, query_vector, search

        store = self._run_core(lambda: load_store(self.parameterAsFile(parameters, "EMBEDDINGS", context)), feedback)
        examples = self._ids(self.parameterAsString(parameters, "EXAMPLES", context))
        negatives = self._ids(self.parameterAsString(parameters, "NOT", context))
        crs = QgsCoordinateReferenceSystem.fromWkt(store.srs_wkt)
        layer = self.parameterAsSource(parameters, "EXAMPLE_LAYER", context)
        if layer is not None:
            ct = QgsCoordinateTransform(layer.sourceCrs(), crs, context.transformContext())
            polys = []
            for f in layer.getFeatures():
                g = QgsGeometry(f.geometry())
                g.transform(ct)
                polys.append(g)
            for fid, wkt in zip(store.ids, store.wkt, strict=True):
                tile = QgsGeometry.fromWkt(wkt)
                if any(p.intersection(tile).area() >= 0.5 * tile.area() for p in polys):
                    examples.append(int(fid))
        text = self.parameterAsString(parameters, "TEXT", context).strip()
        positives = self._run_core(lambda: [store.vector_of(f) for f in examples], feedback)
        negs = self._run_core(lambda: [store.vector_of(f) for f in negatives], feedback)
        if text:
            eng = self._run_core(engine, feedback)
            positives.append(eng.phrase_embedding(text))
        k = self.parameterAsInt(parameters, "K", context) or None
        threshold = self.parameterAsDouble(parameters, "THRESHOLD", context)
        threshold = None if threshold <= -1 else threshold
        if k is None and threshold is None:
            raise QgsProcessingException("Give k, a threshold, or both.")
        matches = self._run_core(lambda: search(store, query_vector(positives, negs), k, threshold,
                                                exclude=set(examples) | set(negatives)), feedback)
        fields = QgsFields()
        for name, kind in (("tile_id", INT), ("rank", INT),
                           ("similarity", DOUBLE), ("label", STRING)):
            fields.append(QgsField(name, kind))
        sink, dest = self.parameterAsSink(parameters, "OUTPUT", context, fields, QgsWkbTypes.Type.Polygon, crs)
        pos = {int(fid): j for j, fid in enumerate(store.ids)}
        for m in matches:
            j = pos[m.fid]
            f = QgsFeature(fields)
            f.setGeometry(QgsGeometry.fromWkt(store.wkt[j]))
            f.setAttributes([m.fid, m.rank, m.similarity, store.labels[j]])
            sink.addFeature(f, QgsFeatureSink.Flag.FastInsert)
        return {"OUTPUT": dest}


def all_algorithms() -> list[QgsProcessingAlgorithm]:
    return [LabelRasterAlgorithm(), ClassifyExtentAlgorithm(), AskRegionAlgorithm(), FindSimilarAlgorithm()]
