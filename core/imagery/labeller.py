"""Streaming batch labeller: a raster of any size -> GeoPackage tiles, class GeoTIFF, summary.

Three stages run at once so the CPU never waits on disk: a reader thread cuts tiles with GDAL
(resampled by GDAL to the model's ground sampling distance), the calling thread runs the
engine, and a writer thread appends features and class pixels. Queues are bounded, so peak
memory depends on the batch size, never on the raster size. Outputs are written under temporary
names and renamed at the end: a cancelled or failed run leaves nothing under the output names.
"""

from __future__ import annotations

import json
import os
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ..errors import Cancelled, RsSageError  # noqa: F401 (Cancelled re-exported)
from .palette import CATEGORICAL
from .raster import Stretch, band_order_note, default_rgb_bands, open_raster, read_valid_tile
from .tile_schema import TILE_FIELDS, TileRecord, tile_attributes
from .tiling import MIN_TILE_PX, footprint_text, footprint_tile, make_grid, metres_per_unit
from .valid_pixels import PixelRule, UserNoData, valid_stretch

NODATA_CLASS = 255  # Byte class rasters (up to 255 labels); UInt16 ones use 65535


def class_raster_type(n_labels: int):
    """(GDAL type, numpy type, nodata) wide enough for ``n_labels`` ids plus a nodata value."""
    from osgeo import gdal

    if n_labels < 255:
        return gdal.GDT_Byte, np.uint8, NODATA_CLASS
    if n_labels < 65535:
        return gdal.GDT_UInt16, np.uint16, 65535
    raise RsSageError(f"{n_labels} labels are more than a class raster can hold (65,534).")
# GDAL's block cache defaults to 5 % of RAM (1.2 GB on a 24 GB machine) and fills up on large
# rasters; tiles are read row by row, so a few rows of blocks are all it needs.
GDAL_CACHE_BYTES = 256 * 1024 * 1024


LARGE_PLAN_TILES = 250_000  # about 45 min at 100 tiles/s: larger batch runs need an explicit flag


@dataclass
class LabelParams:
    raster: str
    out_gpkg: str | None  # None: keep the tiles in memory (LabelResult.records) and write no file
    out_tif: str | None = None
    out_summary: str | None = None  # .csv or .json; default: next to the GeoPackage
    labels: list[str] | None = None
    gsd: float | None = None  # m/px at which tiles are read; default: the model's
    tile: int | None = None  # px; None: the footprint default at the scale used (tiling.footprint_tile)
    stride: int | None = None  # default: tile (no overlap)
    mask: str | None = None  # polygon file; tiles that miss every polygon are skipped
    bands: list[int] | None = None  # RGB band numbers; default from colour interpretation
    stretch: tuple[list[float], list[float]] | None = None  # (low, high) per band
    extent: tuple[float, float, float, float] | None = None  # xmin, ymin, xmax, ymax, raster CRS
    nodata: UserNoData | None = None  # extra nodata ranges per band (QGIS user nodata, --nodata)
    min_valid: float = 0.5  # tiles with less valid (non-nodata) area are skipped
    batch: int = 32
    max_tiles: int | None = None  # refuse larger runs with a clear message
    scheduler: str | None = None  # Dask: "local", "local:N" or "tcp://host:8786" (None: this process)
    cog: bool = False  # write the class GeoTIFF as a Cloud-Optimised GeoTIFF
    protect: tuple[str, ...] = ()  # other input files (a labels file) no output may replace
    embeddings: str | None = None  # .gpkg of one scene vector per tile (+ .faiss index), core.questions.similar


@dataclass
class LabelResult:
    tiles: int
    labelled: int
    skipped_nodata: int
    skipped_mask: int
    seconds: float
    gsd: float
    summary: dict
    outputs: dict[str, str] = field(default_factory=dict)
    device: str = "cpu"
    nodata_rule: str = ""  # what counted as nodata, in words
    uncertain: int = 0  # tiles whose top score is under the model's uncertainty threshold
    notes: list[str] = field(default_factory=list)  # adjustments the user should know about
    stretch: tuple[list[float], list[float]] | None = None  # (low, high) the model was fed
    records: list[TileRecord] = field(default_factory=list)  # the tiles, when no GeoPackage was asked for
    colours: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # label -> RGB (core.imagery.palette)

    @property
    def tiles_per_s(self) -> float:
        return self.labelled / self.seconds if self.seconds else 0.0


def _atomic_tmp(path: str) -> str:
    p = Path(path)
    return str(p.with_name(f".{p.stem}.partial-{os.getpid()}{p.suffix}"))


def clean_stale_partials(path: str) -> list[str]:
    """Remove the hidden partial files a killed earlier run left for ``path`` (its process is gone)."""
    import re

    p = Path(path)
    removed = []
    side = r"(\.aux\.xml|-journal|-wal|-shm)?"  # SQLite's journal files of a GeoPackage too
    pattern = re.compile(rf"^\.{re.escape(p.stem)}\.partial-(\d+){re.escape(p.suffix)}{side}$")
    if not p.parent.is_dir():
        return removed
    for f in p.parent.iterdir():
        m = pattern.match(f.name)
        if not m or int(m.group(1)) == os.getpid():
            continue
        try:
            os.kill(int(m.group(1)), 0)
            continue  # that run is still going
        except ProcessLookupError:
            pass
        except PermissionError:
            continue
        f.unlink(missing_ok=True)
        removed.append(str(f))
    return removed


def _mask_geometry(path: str, srs):
    """Union of the mask polygons in the raster's CRS, prepared for fast intersects."""
    from osgeo import ogr, osr
    from shapely import wkb
    from shapely.ops import unary_union
    from shapely.prepared import prep

    ds = ogr.Open(path)
    if ds is None:
        raise RsSageError(f"Cannot open the mask layer {path}.")
    geoms = []
    for layer in ds:
        lsrs = layer.GetSpatialRef()
        ct = None
        if lsrs is not None and srs is not None and not lsrs.IsSame(srs):
            lsrs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            target = srs.Clone()
            target.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
            ct = osr.CoordinateTransformation(lsrs, target)
        for feat in layer:
            g = feat.GetGeometryRef()
            if g is None:
                continue
            g = g.Clone()
            if ct is not None:
                g.Transform(ct)
            geoms.append(wkb.loads(bytes(g.ExportToWkb())))
    if not geoms:
        raise RsSageError(f"The mask layer {path} has no polygons.")
    return prep(unary_union(geoms))


def summarise(counts: Counter, cell_area_m2: float, labels: list[str], uncertain: Counter | None = None) -> dict:
    total = sum(counts.values())
    uncertain = uncertain or Counter()
    return {lab: {"tiles": counts[lab], "area_ha": round(counts[lab] * cell_area_m2 / 1e4, 2),
                  "percent": round(100 * counts[lab] / total, 2) if total else 0.0,
                  "uncertain_tiles": uncertain[lab]}
            for lab in labels if counts[lab]}


def write_summary(summary: dict, path: str) -> None:
    if path.lower().endswith(".json"):
        Path(path).write_text(json.dumps(summary, indent=2))
        return
    lines = ["label,tiles,area_ha,percent,uncertain_tiles"]
    lines += [f"\"{k}\",{v['tiles']},{v['area_ha']},{v['percent']},{v.get('uncertain_tiles', 0)}"
              for k, v in summary.items()]
    Path(path).write_text("\n".join(lines) + "\n")


class _Writer:
    """Tiles to the GeoPackage and class GeoTIFF (or to memory), written from one thread."""

    def __init__(self, params: LabelParams, ds, grid, gt, labels, gsd_units, colours=None):
        from osgeo import gdal, ogr

        self.labels = labels
        self.colours = colours or [CATEGORICAL[i % len(CATEGORICAL)] for i in range(len(labels))]
        self.records: list[TileRecord] | None = None if params.out_gpkg else []
        self.tmp_gpkg = _atomic_tmp(params.out_gpkg) if params.out_gpkg else None
        self.tmp_tif = _atomic_tmp(params.out_tif) if params.out_tif else None
        self.vds = None
        if self.tmp_gpkg:
            drv = ogr.GetDriverByName("GPKG")
            if os.path.exists(self.tmp_gpkg):
                drv.DeleteDataSource(self.tmp_gpkg)
            self.vds = drv.CreateDataSource(self.tmp_gpkg)
            self.layer = self.vds.CreateLayer("tiles", ds.GetSpatialRef(), ogr.wkbPolygon)
            kinds = {int: ogr.OFTInteger, float: ogr.OFTReal, str: ogr.OFTString}
            for name, kind in TILE_FIELDS:
                self.layer.CreateField(ogr.FieldDefn(name, kinds[kind]))
            self.defn = self.layer.GetLayerDefn()
        self.gt = gt
        self.grid = grid
        self.tds = None
        if self.tmp_tif:
            # One class pixel per stride cell, centred on its tile.
            px = grid.src_per_stride
            off = (grid.src_per_tile - grid.src_per_stride) / 2
            ox = gt[0] + (grid.x0 + off) * gt[1]
            oy = gt[3] + (grid.y0 + off) * gt[5]
            gdal_type, self.class_dtype, nodata = class_raster_type(len(labels))
            self.tds = gdal.GetDriverByName("GTiff").Create(
                self.tmp_tif, grid.cols, grid.rows, 1, gdal_type,
                options=["COMPRESS=DEFLATE", "TILED=YES"])
            self.tds.SetGeoTransform((ox, px * gt[1], 0, oy, 0, px * gt[5]))
            self.tds.SetProjection(ds.GetProjection())
            band = self.tds.GetRasterBand(1)
            band.SetNoDataValue(nodata)
            ct = gdal.ColorTable()
            for i, _ in enumerate(labels):
                ct.SetColorEntry(i, (*self.colours[i], 255))
            band.SetRasterColorTable(ct)
            band.SetCategoryNames(list(labels))
            band.Fill(nodata)
            self.tds.SetMetadataItem("RS_SAGE_CLASSES", json.dumps(list(labels)))
            for i, name in enumerate(labels):  # also inside the TIFF, for tools that skip .aux.xml
                band.SetMetadataItem(f"CLASS_{i}", name)
        if self.vds is not None:
            self.vds.StartTransaction()
        self.n = 0

    def write(self, row, col, x, y, size, result) -> None:
        self.write_attrs(x, y, size, tile_attributes(row, col, result))

    def write_attrs(self, x, y, size, attrs: dict, vector=None) -> None:
        """One tile from its attribute values (``core.imagery.tile_schema``): local results and Dask's alike."""
        from osgeo import ogr

        gt = self.gt
        row, col = attrs["tile_row"], attrs["tile_col"]
        xs = sorted((gt[0] + x * gt[1], gt[0] + (x + size) * gt[1]))
        ys = sorted((gt[3] + y * gt[5], gt[3] + (y + size) * gt[5]))
        if self.records is not None:
            self.records.append(TileRecord((xs[0], ys[0], xs[1], ys[1]), attrs, vector))
        else:
            ring = ogr.Geometry(ogr.wkbLinearRing)
            for px, py in ((xs[0], ys[1]), (xs[1], ys[1]), (xs[1], ys[0]), (xs[0], ys[0]), (xs[0], ys[1])):
                ring.AddPoint_2D(px, py)
            poly = ogr.Geometry(ogr.wkbPolygon)
            poly.AddGeometry(ring)
            f = ogr.Feature(self.defn)
            f.SetGeometry(poly)
            for name, value in attrs.items():
                f.SetField(name, value)
            self.layer.CreateFeature(f)
        if self.tds is not None:
            self.tds.GetRasterBand(1).WriteArray(
                np.array([[self.labels.index(attrs["label"])]], self.class_dtype), col, row)
        self.n += 1
        if self.vds is not None and self.n % 2000 == 0:
            self.vds.CommitTransaction()
            self.vds.StartTransaction()

    def _to_cog(self) -> None:
        """Rewrite the class GeoTIFF as a COG (overviews by nearest class, palette and names kept)."""
        from osgeo import gdal

        cog = self.tmp_tif + ".cog.tif"
        gdal.Translate(cog, self.tmp_tif, format="COG",
                       creationOptions=["COMPRESS=DEFLATE", "OVERVIEW_RESAMPLING=NEAREST"])
        out = gdal.Open(cog, gdal.GA_Update)
        out.GetRasterBand(1).SetCategoryNames(list(self.labels))  # a side-car .aux.xml: the COG stays valid
        out = None
        os.replace(cog, self.tmp_tif)
        if os.path.exists(cog + ".aux.xml"):
            os.replace(cog + ".aux.xml", self.tmp_tif + ".aux.xml")

    def close(self, keep: bool, params: LabelParams) -> dict[str, str]:
        if self.vds is not None:
            self.vds.CommitTransaction()
            self.vds = None
        if self.tds is not None:
            self.tds.FlushCache()
            self.tds = None
        outputs = {}
        pairs = [(self.tmp_gpkg, params.out_gpkg)] if self.tmp_gpkg else []
        if self.tmp_tif:
            pairs.append((self.tmp_tif, params.out_tif))
        if keep and self.tmp_tif and params.cog:
            self._to_cog()
        for tmp, final in pairs:
            # GDAL keeps category names in a side-car .aux.xml: it moves (or goes) with its file.
            for suffix in ("", ".aux.xml"):
                if keep and os.path.exists(tmp + suffix):
                    os.replace(tmp + suffix, final + suffix)
                elif os.path.exists(tmp + suffix):
                    os.remove(tmp + suffix)
            if keep:
                outputs[Path(final).suffix.lstrip(".")] = final
        return outputs


def tile_gsd(requested: float | None, native_m: float, engine_gsd: float,
             gsd_range: tuple[float, float]) -> tuple[float, str | None]:
    """The scale tiles are read at, and a note when it is not the one asked for.

    Default: the model's scale or the raster's own if coarser. Either way, and for a scale the
    user typed, it is kept inside the range the model saw (outside it the model is guessing):
    a 2 cm drone raster is read at the model's default scale, a 60 m one at the coarsest (32 m).
    """
    lo, hi = gsd_range
    gsd = float(requested or max(engine_gsd, native_m))
    if lo <= gsd <= hi:
        return gsd, None
    clamped = min(max(gsd, lo), hi)
    what = f"{gsd:g} m/px" + (" (asked for)" if requested else f" (the raster's native {native_m:.3g} m/px)")
    return clamped, (f"Tiles are read at {clamped:g} m/px, not {what}: the model saw {lo:g}-{hi:g} m/px "
                     f"and is not reliable outside that range.")


MAX_TILE_PX = 1024  # larger tiles than the model's input only cost memory (a 100,000 px tile is 28 GiB)


def validate_params(params: LabelParams) -> None:
    """Numbers that make no sense are refused by name, never replaced by defaults in silence."""
    import math

    def bad(name: str, value, why: str):
        raise RsSageError(f"{name} {value!r} {why}.")

    if params.gsd is not None and not (isinstance(params.gsd, (int, float)) and math.isfinite(params.gsd)
                                       and params.gsd > 0):
        bad("The scale (m/px)", params.gsd, "must be a positive number")
    if params.tile is not None and int(params.tile) < 32:
        bad("The tile size", params.tile, "is too small; the tile size must be between 32 and "
            f"{MAX_TILE_PX} px")
    if params.tile is not None and int(params.tile) > MAX_TILE_PX:
        bad("The tile size", params.tile, f"is too large; the tile size must be between 32 and {MAX_TILE_PX} px")
    if params.stride is not None and not 1 <= int(params.stride) <= 4 * int(params.tile or MAX_TILE_PX):
        bad("The stride", params.stride, "must be between 1 px and 4 tile sizes (leave it out for no overlap)")
    if params.extent is not None:
        ext = params.extent
        if (not isinstance(ext, (tuple, list)) or len(ext) != 4
                or not all(isinstance(v, (int, float)) and math.isfinite(v) for v in ext)
                or ext[0] >= ext[2] or ext[1] >= ext[3]):
            bad("The extent", ext, "must be four finite numbers xmin, ymin, xmax, ymax with min < max")
    if not isinstance(params.raster, (str, os.PathLike)) or not str(params.raster):
        bad("The raster", params.raster, "must be a file path")
    if params.tile is not None and (isinstance(params.tile, bool) or int(params.tile) != params.tile):
        bad("The tile size", params.tile, "must be a whole number of pixels")
    if params.bands is not None and (not isinstance(params.bands, (list, tuple))
                                     or not all(isinstance(b, int) and not isinstance(b, bool) for b in params.bands)):
        bad("The bands", params.bands, "must be three band numbers (integers)")
    if params.max_tiles is not None and int(params.max_tiles) < 1:
        bad("The tile limit", params.max_tiles, "must be at least 1 (leave it out for no limit)")
    if not (isinstance(params.min_valid, (int, float)) and 0 < params.min_valid <= 1):
        bad("The minimum valid share", params.min_valid, "must be above 0 and at most 1")
    if int(params.batch) < 1:
        bad("The batch size", params.batch, "must be at least 1")


def summary_path(params: LabelParams) -> str | None:
    """The summary file: the one asked for, else beside the GeoPackage, else none (in memory)."""
    if params.out_summary:
        return params.out_summary
    return str(Path(params.out_gpkg).with_suffix(".csv")) if params.out_gpkg else None


def check_outputs(params: LabelParams) -> None:
    """Before any work: every output is a file we may write, not an input, not another output."""
    def real(p: str) -> str:
        return p if p.startswith("/vsi") else os.path.realpath(p)

    outputs = {"tiles GeoPackage": params.out_gpkg, "class GeoTIFF": params.out_tif,
               "summary": summary_path(params), "embeddings GeoPackage": params.embeddings}
    outputs = {k: v for k, v in outputs.items() if v}
    kinds = {"tiles GeoPackage": (".gpkg",), "class GeoTIFF": (".tif", ".tiff"), "summary": (".csv", ".json"),
             "embeddings GeoPackage": (".gpkg",)}
    if params.out_gpkg is not None and not str(params.out_gpkg).strip():
        raise RsSageError("The output GeoPackage name is empty; give a file name ending in .gpkg.")
    inputs = {real(params.raster): "the input raster"}
    if params.mask:
        inputs[real(params.mask)] = "the mask layer"
    for extra in params.protect:
        inputs[real(extra)] = f"the input file {extra}"
    seen: dict[str, str] = {}
    for what, path in outputs.items():
        if os.path.realpath(path).startswith(("/proc/", "/sys/", "/dev/")):
            raise RsSageError(f"The {what} {path} is on a system folder; write it to a normal folder.")
        if not path.lower().endswith(kinds[what]):
            raise RsSageError(f"The {what} must end in {' or '.join(kinds[what])}: {path}")
        r = real(path)
        for candidate in (r, r + ".aux.xml"):
            if candidate in inputs:
                raise RsSageError(f"The {what} {path} would overwrite {inputs[candidate]}; choose another name.")
        if r in seen:
            raise RsSageError(f"The {what} and the {seen[r]} are the same file ({path}); give each its own name.")
        seen[r] = what
        if os.path.isdir(r):
            raise RsSageError(f"The {what} {path} is a folder; give a file name.")
        parent = os.path.dirname(r) or "."
        if not os.path.isdir(parent):
            raise RsSageError(f"Output folder does not exist: {parent}")
        if not os.access(parent, os.W_OK):
            raise RsSageError(f"Cannot write to the folder {parent} (read-only or no permission).")
        if os.path.exists(r) and not os.access(r, os.W_OK):
            raise RsSageError(f"The {what} {path} exists and cannot be replaced (read-only).")
        if what in ("tiles GeoPackage", "embeddings GeoPackage") and os.path.isfile(r):
            others = other_layers(r)
            if others:
                raise RsSageError(f"{path} already holds other layers ({', '.join(others[:5])}); writing the tiles "
                                  "would replace the whole file. Choose a new file name.")


def other_layers(path: str) -> list[str]:
    """Layers of an existing GeoPackage other than the labeller's own 'tiles' layer."""
    from osgeo import gdal

    try:
        ds = gdal.OpenEx(path, gdal.OF_VECTOR)
    except RuntimeError:
        ds = None
    if ds is None:
        return []
    return [ds.GetLayer(i).GetName() for i in range(ds.GetLayerCount()) if ds.GetLayer(i).GetName() != "tiles"]


@dataclass
class Plan:
    """What ``plan`` found: the open raster, its tiles at the chosen scale, and what was adjusted
    (returned, not written into the parameters, so a reused ``LabelParams`` carries no stale notes)."""
    ds: object  # gdal.Dataset
    gt: tuple
    srs: object  # osr.SpatialReference or None
    grid: object  # tiling.Grid
    gsd: float
    notes: list[str] = field(default_factory=list)
    tile: int = 224  # px: the caller's, or the footprint default at ``gsd``


def plan(params: LabelParams, engine_gsd: float, gsd_range: tuple[float, float] = (2.0, 32.0)) -> Plan:
    """Open the raster and compute the grid; cheap, so UIs can show a tile count first."""
    validate_params(params)
    ds = open_raster(params.raster)
    gt = ds.GetGeoTransform()
    if gt[2] != 0 or gt[4] != 0:
        raise RsSageError("Rotated rasters are not supported; warp it to north-up first.")
    srs = ds.GetSpatialRef()
    native_m = native_gsd(ds, gt, srs)
    gsd, note = tile_gsd(params.gsd, native_m, engine_gsd, gsd_range)
    tile = int(params.tile) if params.tile else footprint_tile(gsd)
    x0, y0, w, h = 0.0, 0.0, float(ds.RasterXSize), float(ds.RasterYSize)
    if params.extent is not None:
        xmin, ymin, xmax, ymax = params.extent
        px0, px1 = (xmin - gt[0]) / gt[1], (xmax - gt[0]) / gt[1]
        py0, py1 = (ymax - gt[3]) / gt[5], (ymin - gt[3]) / gt[5]
        x0, x1 = max(0.0, min(px0, px1)), min(w, max(px0, px1))
        y0, y1 = max(0.0, min(py0, py1)), min(h, max(py0, py1))
        if x1 <= x0 or y1 <= y0:
            raise RsSageError("The extent does not overlap the raster.")
        w, h = x1 - x0, y1 - y0
    tile = fit_tile(w * native_m, h * native_m, gsd, tile, params, gsd_range)
    stride = params.stride or tile
    grid = make_grid(w, h, x0, y0, native_m, gsd, tile, stride, float(ds.RasterXSize), float(ds.RasterYSize))
    if params.max_tiles and grid.count > params.max_tiles:
        raise RsSageError(f"This would make {grid.count:,} tiles (limit {params.max_tiles:,}); use a coarser "
                          "scale, a smaller extent, or raise the limit (CLI: --max-tiles N or --allow-large; "
                          "Processing: 'Allow very large runs').")
    notes = [note] if note else []
    if not params.tile:
        notes.append(f"Tiles of {tile} px at {gsd:g} m/px. " + footprint_text(tile, gsd))
    return Plan(ds, gt, srs, grid, gsd, notes, tile)


def fit_tile(w_m: float, h_m: float, gsd: float, tile: int, params: LabelParams,
             gsd_range: tuple[float, float]) -> int:
    """The tile, made smaller when the user left it to us and the window is smaller than one
    tile; otherwise a plain message that says how big the window is and how big a scene must be,
    with only advice the controls can follow."""
    need = params.min_valid  # a tile must be at least this share valid
    if w_m * h_m >= need * (tile * gsd) ** 2:
        return tile
    if not params.tile:
        fitting = [t for t in range(tile, MIN_TILE_PX - 1, -32) if w_m * h_m >= need * (t * gsd) ** 2]
        if fitting:
            return fitting[0]
    what = "extent" if params.extent else "layer"
    lo = gsd_range[0]
    smallest = MIN_TILE_PX * lo
    size = f"The {what} is {_metres(w_m)} x {_metres(h_m)}"
    if w_m * h_m < need * smallest ** 2:
        raise RsSageError(f"{size}: smaller than one scene the model can read. A scene must be at least "
                          f"{_metres(smallest)} across ({MIN_TILE_PX} px at the model's finest scale, {lo:g} m/px; "
                          f"training scenes were 75 m-4.8 km). Use a larger {what}.")
    options = []
    if tile > MIN_TILE_PX:
        options.append(f"a tile of {MIN_TILE_PX} px")
    if gsd > lo:
        options.append(f"a finer scale (down to {lo:g} m/px)")
    raise RsSageError(f"{size}, smaller than one {tile} px tile at {gsd:g} m/px ({_metres(tile * gsd)} across); "
                      f"use {' or '.join(options)}.")


def plan_for_engine(params: LabelParams, engine) -> Plan:
    """``plan`` at the engine's default scale and within the scale range it was trained for."""
    meta = engine.meta
    return plan(params, float(meta.get("default_gsd_m", 4.0)), tuple(meta.get("gsd_range_m", (2.0, 32.0))))


def label_raster(params: LabelParams, engine=None,
                 progress: Callable[[float], None] | None = None,
                 cancelled: Callable[[], bool] | None = None, dask_client=None) -> LabelResult:
    """Label every tile of the plan; ``params.scheduler`` (or a ready ``dask_client``) runs it on Dask."""
    from osgeo import gdal

    from ..model.engine import Engine

    t0 = time.perf_counter()
    validate_params(params)
    check_outputs(params)  # before the model loads or a pixel is read
    if params.scheduler and dask_client is None:
        from ..scale_out.runner import check_scheduler

        check_scheduler(params.scheduler)
    for out in (params.out_gpkg, params.out_tif):
        if out:
            clean_stale_partials(out)
    if gdal.GetCacheMax() > GDAL_CACHE_BYTES:
        gdal.SetCacheMax(GDAL_CACHE_BYTES)
    engine = engine or Engine.load()
    labels = engine.check_labels(params.labels) if params.labels else list(engine.default_labels)
    p = plan_for_engine(params, engine)
    ds, gt, srs, grid, gsd, notes = p.ds, p.gt, p.srs, p.grid, p.gsd, list(p.notes)
    params = replace(params, tile=p.tile)  # the footprint default, when the caller left it out
    if not params.bands and (guessed := band_order_note(ds)):
        notes.append(guessed)
    bands = params.bands or default_rgb_bands(ds)
    if any(b < 1 or b > ds.RasterCount for b in bands) or len(bands) != 3:
        raise RsSageError(f"Bands {bands} are not three bands of this {ds.RasterCount}-band raster.")
    stretch, rule = valid_stretch(ds, bands, params.nodata)
    if params.stretch:  # the caller's own (a hand-set QGIS min/max); validity stays the rule's
        stretch = Stretch(np.array(params.stretch[0], np.float32), np.array(params.stretch[1], np.float32))
    mask = _mask_geometry(params.mask, srs) if params.mask else None
    if progress:
        progress(0.0)  # the plan is made: show the bar from the first second

    from .palette import label_colours

    colours = label_colours(labels, engine.text)
    writer = _Writer(params, ds, grid, gt, labels, gsd, colours)
    counts: Counter = Counter()
    uncertain: Counter = Counter()
    skipped: Counter = Counter()

    sink = None
    if params.embeddings:
        from ..questions.similar import EmbeddingSink

        sink = EmbeddingSink(params.embeddings, srs, len(engine.label_embeddings(labels[:1])[0]))

    def record(x, y, size, attrs, vector=None) -> None:
        writer.write_attrs(x, y, size, attrs, vector)
        counts[attrs["label"]] += 1
        uncertain[attrs["label"]] += attrs["uncertain"]
        if sink is not None and vector is not None:
            xs = sorted((gt[0] + x * gt[1], gt[0] + (x + size) * gt[1]))
            ys = sorted((gt[3] + y * gt[5], gt[3] + (y + size) * gt[5]))
            sink.add((xs[0], ys[0], xs[1], ys[1]), attrs, vector)

    job = _Job(params, ds, gt, grid, bands, stretch, rule, mask, labels)
    keep = False
    try:
        if params.scheduler or dask_client is not None:
            from ..scale_out.runner import run_on_dask

            done = run_on_dask(job, engine, record, skipped, progress, cancelled, client=dask_client)
        else:
            done = _run_local(job, engine, record, skipped, progress, cancelled)
        if done == 0:
            raise RsSageError(why_nothing_labelled(grid, skipped, params, gsd, native_gsd(ds, gt, srs), rule))
        keep = True
    finally:
        outputs = writer.close(keep, params)
        if sink is not None and not keep:
            sink.abort()
    if sink is not None:
        outputs.update(sink.close())
    mx, my = metres_per_unit(srs, gt[3] + gt[5] * ds.RasterYSize / 2)
    cell_m2 = (grid.src_per_stride * abs(gt[1]) * mx) * (grid.src_per_stride * abs(gt[5]) * my)
    summary = summarise(counts, cell_m2, labels, uncertain)
    if summary_path(params):
        write_summary(summary, summary_path(params))
        outputs["summary"] = summary_path(params)
    return LabelResult(tiles=grid.count, labelled=done, skipped_nodata=skipped["nodata"],
                       skipped_mask=skipped["mask"], seconds=time.perf_counter() - t0, gsd=gsd,
                       summary=summary, outputs=outputs, device=engine.device,
                       nodata_rule=rule.describe(), uncertain=sum(uncertain.values()), notes=notes,
                       stretch=([float(v) for v in stretch.low], [float(v) for v in stretch.high]),
                       records=writer.records or [], colours=dict(zip(labels, colours, strict=True)))


@dataclass
class _Job:
    """What every runner needs: the plan, the pixels rule and stretch, the labels."""

    params: LabelParams
    ds: object
    gt: tuple
    grid: object
    bands: list[int]
    stretch: Stretch
    rule: PixelRule
    mask: object
    labels: list[str]

    def windows(self, skipped: Counter):
        """The grid's windows that touch the mask (all of them without one)."""
        from shapely.geometry import box

        gt = self.gt
        for row, col, x, y, size in self.grid.windows():
            if self.mask is not None:
                bx = box(gt[0] + x * gt[1], gt[3] + (y + size) * gt[5], gt[0] + (x + size) * gt[1], gt[3] + y * gt[5])
                if not self.mask.intersects(bx):
                    skipped["mask"] += 1
                    continue
            yield row, col, x, y, size


def _run_local(job: _Job, engine, record, skipped: Counter, progress, cancelled) -> int:
    """One process: a reader thread, onnxruntime in this thread, a writer thread; bounded queues."""
    params = job.params
    tiles_q: queue.Queue = queue.Queue(maxsize=3)
    write_q: queue.Queue = queue.Queue(maxsize=3)
    stop = threading.Event()
    errors: list[BaseException] = []

    def reader():
        try:
            batch = []
            for row, col, x, y, size in job.windows(skipped):
                if stop.is_set():
                    return
                rgb = read_valid_tile(job.ds, job.bands, x, y, size, params.tile, job.stretch, params.min_valid,
                                      job.rule)
                if rgb is None:
                    skipped["nodata"] += 1
                    continue
                batch.append(((row, col, x, y, size), rgb))
                if len(batch) == params.batch:
                    tiles_q.put(batch)
                    batch = []
            if batch:
                tiles_q.put(batch)
        except BaseException as exc:  # surfaced in the calling thread
            errors.append(exc)
        finally:
            tiles_q.put(None)

    def write_loop():
        try:
            while (item := write_q.get()) is not None:
                for (row, col, x, y, size), res in item:
                    record(x, y, size, tile_attributes(row, col, res), getattr(res, "embedding", None))
        except BaseException as exc:
            errors.append(exc)
            stop.set()

    rt = threading.Thread(target=reader, name="rs_sage-reader", daemon=True)
    wt = threading.Thread(target=write_loop, name="rs_sage-writer", daemon=True)
    rt.start()
    wt.start()
    done, finished = 0, False
    try:
        while (batch := tiles_q.get()) is not None:
            if cancelled and cancelled():
                raise Cancelled()
            if errors:
                break
            results = engine.classify([rgb for _, rgb in batch], job.labels, top_k=3)
            write_q.put([(meta, r) for (meta, _), r in zip(batch, results, strict=True)])
            done += len(batch)
            if progress:
                progress(min(100.0, 100.0 * (done + sum(skipped.values())) / job.grid.count))
        write_q.put(None)
        wt.join()
        if errors:
            raise errors[0]
        finished = True
    finally:
        stop.set()
        if not finished:
            while rt.is_alive():  # unblock the reader so it can exit
                try:
                    tiles_q.get(timeout=0.1)
                except queue.Empty:
                    pass
            write_q.put(None)
            wt.join(timeout=30)
        rt.join(timeout=30)
    return done


def native_gsd(ds, gt, srs) -> float:
    """Metres per source pixel along x at the raster's centre."""
    mx, _ = metres_per_unit(srs, gt[3] + gt[5] * ds.RasterYSize / 2)
    return abs(gt[1]) * mx


def why_nothing_labelled(grid, skipped: Counter, params: LabelParams, gsd: float, native_m: float,
                         rule: PixelRule) -> str:
    """The real reason no tile was labelled, in the user's terms (not just "mostly nodata")."""
    tile_m = params.tile * gsd
    w_m, h_m = grid.width * native_m, grid.height * native_m
    if grid.count == 1 and w_m * h_m < params.min_valid * tile_m * tile_m:
        what = "extent" if params.extent else "layer"
        return (f"The {what} ({_metres(w_m)} x {_metres(h_m)}) is smaller than one {params.tile} px tile "
                f"at {gsd:g} m/px ({_metres(tile_m)} across); its native scale is {native_m:.3g} m/px. "
                f"Use a finer scale or a smaller tile size.")
    if skipped["mask"] and not skipped["nodata"]:
        return f"None of the {grid.count} tiles touches the mask polygons."
    return (f"No tile was classified: all {skipped['nodata']} tiles{' touching the mask' if skipped['mask'] else ''} "
            f"have under {params.min_valid:.0%} valid pixels (nodata here: {rule.describe()}).")


def _metres(m: float) -> str:
    return f"{m / 1000:.3g} km" if m >= 1000 else f"{m:.3g} m"
