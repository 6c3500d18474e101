"""Raster windows as RGB uint8 tiles, through GDAL (no QGIS): band choice, stretch, nodata.

GDAL does the resampling (``ReadAsArray`` with ``buf_xsize``/``resample_alg``), so reading a
window at the model's ground sampling distance never materialises the full-resolution pixels.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import RsSageError
from .stretch import Stretch  # noqa: F401 (re-exported: callers import it from here)
from .valid_pixels import PixelRule, UserNoData, declared_rule, valid_stretch


def open_raster(path: str | Path):
    from osgeo import gdal

    gdal.UseExceptions()
    p = str(path)
    if not p.startswith("/vsi") and not Path(p).exists():
        raise RsSageError(f"Raster not found: {p}")
    try:
        ds = gdal.Open(p)
    except RuntimeError as exc:
        raise RsSageError(f"GDAL cannot open {p}: {exc}") from exc
    if ds is None or ds.RasterCount == 0:
        raise RsSageError(f"{p} has no raster bands.")
    if gdal.DataTypeIsComplex(ds.GetRasterBand(1).DataType):
        raise RsSageError(f"{p} holds complex numbers ({gdal.GetDataTypeName(ds.GetRasterBand(1).DataType)}, "
                          "e.g. radar SLC); RS-SAGE reads optical imagery. Convert to amplitude first.")
    return ds


def default_rgb_bands(ds) -> list[int]:
    """RGB bands from the colour interpretation when the file says; else 1,2,3; 1 band -> grey."""
    n = ds.RasterCount
    if n == 0:
        raise RsSageError("The raster has no bands.")
    if n < 3:
        return [1, 1, 1]
    return declared_rgb_bands(ds) or [1, 2, 3]


def declared_rgb_bands(ds) -> list[int] | None:
    """The red, green and blue band numbers the file's colour interpretation names, or None."""
    from osgeo import gdal

    interp = {ds.GetRasterBand(i).GetColorInterpretation(): i for i in range(1, ds.RasterCount + 1)}
    if all(c in interp for c in (gdal.GCI_RedBand, gdal.GCI_GreenBand, gdal.GCI_BlueBand)):
        return [interp[gdal.GCI_RedBand], interp[gdal.GCI_GreenBand], interp[gdal.GCI_BlueBand]]
    return None


def band_order_note(ds) -> str | None:
    """A note when ``default_rgb_bands`` had to guess: three or more bands and no colour
    interpretation saying which are red, green and blue (a Landsat B2-B3-B4 stack read as 1,2,3
    shows blue as red and the model sees false colours without any error)."""
    n = ds.RasterCount
    if n < 3 or declared_rgb_bands(ds):
        return None
    return (f"The raster does not say which of its {n} bands are red, green and blue; bands 1, 2, 3 were "
            "read as R, G, B. If they are not (a Landsat or Sentinel-2 stack is often blue, green, red), "
            "give the band numbers (--bands R G B, or the layer's band mapping in QGIS).")


def percentile_stretch(ds, bands: list[int], low_pct: float = 2, high_pct: float = 98,
                       user_nodata: UserNoData | None = None) -> Stretch:
    """Per-band percentile stretch from the valid pixels only (see ``valid_pixels``)."""
    return valid_stretch(ds, bands, user_nodata, low_pct, high_pct)[0]


def read_rgb(ds, bands: list[int], xoff: int, yoff: int, xsize: int, ysize: int,
             out_w: int, out_h: int, stretch: Stretch, resample: str = "average",
             rule: PixelRule | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A window resampled by GDAL to out_w x out_h: (RGB uint8 [H,W,3], valid mask [H,W]).

    Validity follows ``rule`` (declared nodata only when None)."""
    from osgeo import gdal

    alg = {"average": gdal.GRIORA_Average, "bilinear": gdal.GRIORA_Bilinear,
           "nearest": gdal.GRIORA_NearestNeighbour}[resample]
    rule = rule or declared_rule(ds, bands)
    try:
        return _read_rgb(ds, bands, xoff, yoff, xsize, ysize, out_w, out_h, stretch, alg, rule)
    except RuntimeError as exc:  # GDAL: a truncated file, a VRT whose source went missing mid-run
        raise RsSageError(f"GDAL could not read {ds.GetDescription()} at pixel {xoff},{yoff} "
                          f"({str(exc).strip()[:200]}); the file is damaged or a source is missing. "
                          "Nothing was written under the output names.") from exc


def _read_rgb(ds, bands, xoff, yoff, xsize, ysize, out_w, out_h, stretch, alg, rule):
    arrays = []
    for b in bands:
        a = ds.GetRasterBand(b).ReadAsArray(xoff, yoff, xsize, ysize, buf_xsize=out_w, buf_ysize=out_h,
                                            resample_alg=alg)
        if a is None:
            raise RsSageError(f"GDAL could not read band {b} at {xoff},{yoff} {xsize}x{ysize}")
        arrays.append(a)
    m = None
    if rule.use_mask:
        m = ds.GetRasterBand(bands[0]).GetMaskBand().ReadAsArray(xoff, yoff, xsize, ysize,
                                                                 buf_xsize=out_w, buf_ysize=out_h)
    stack = np.stack(arrays)
    valid = rule.valid(stack, m)
    k = min(4, int(min(xsize / out_w, ysize / out_h)))
    if k >= 2:
        # Averaging skips declared nodata, so a 90 % nodata speckle would read as valid at a coarse
        # scale: validity is measured on the pixels themselves (nearest, k x k per output pixel).
        valid = valid & _fine_valid(ds, bands, xoff, yoff, xsize, ysize, out_w, out_h, k, rule)
    return stretch.apply(np.nan_to_num(stack, nan=0.0) if stack.dtype.kind == "f" else stack), valid


def _fine_valid(ds, bands, xoff, yoff, xsize, ysize, out_w, out_h, k, rule) -> np.ndarray:
    """Per output pixel: at least half of its k x k source samples are valid."""
    from osgeo import gdal

    fw, fh = out_w * k, out_h * k
    nearest = gdal.GRIORA_NearestNeighbour
    arrays = [ds.GetRasterBand(b).ReadAsArray(xoff, yoff, xsize, ysize, buf_xsize=fw, buf_ysize=fh,
                                              resample_alg=nearest) for b in bands]
    if any(a is None for a in arrays):
        raise RsSageError(f"GDAL could not read the window at {xoff},{yoff} {xsize}x{ysize}")
    m = None
    if rule.use_mask:
        m = ds.GetRasterBand(bands[0]).GetMaskBand().ReadAsArray(xoff, yoff, xsize, ysize, buf_xsize=fw,
                                                                 buf_ysize=fh, resample_alg=nearest)
    fine = rule.valid(np.stack(arrays), m)
    return fine.reshape(out_h, k, out_w, k).mean(axis=(1, 3)) >= 0.5


def read_tile(ds, bands: list[int], x: float, y: float, size: float, tile: int, stretch: Stretch,
              rule: PixelRule | None = None) -> tuple[np.ndarray, np.ndarray]:
    """A square window (source pixels, may overhang the raster) as a tile x tile RGB tile.

    Only the part inside the raster is read (GDAL resamples it to its share of the tile); the
    overhang is marked invalid, so edge tiles keep the ground sampling distance of the others.
    """
    x0, y0 = max(0.0, x), max(0.0, y)
    x1, y1 = min(float(ds.RasterXSize), x + size), min(float(ds.RasterYSize), y + size)
    rgb = np.zeros((tile, tile, 3), np.uint8)
    valid = np.zeros((tile, tile), bool)
    if x1 - x0 < 0.5 or y1 - y0 < 0.5:
        return rgb, valid
    scale = tile / size
    c0, r0 = int(round((x0 - x) * scale)), int(round((y0 - y) * scale))
    c1, r1 = min(tile, int(round((x1 - x) * scale))), min(tile, int(round((y1 - y) * scale)))
    if c1 <= c0 or r1 <= r0:
        return rgb, valid
    xi, yi = int(round(x0)), int(round(y0))
    xs = max(1, min(int(round(x1 - x0)), ds.RasterXSize - xi))
    ys = max(1, min(int(round(y1 - y0)), ds.RasterYSize - yi))
    part, ok = read_rgb(ds, bands, xi, yi, xs, ys, c1 - c0, r1 - r0, stretch, rule=rule)
    rgb[r0:r1, c0:c1] = part
    valid[r0:r1, c0:c1] = ok
    return rgb, valid


def read_valid_tile(ds, bands: list[int], x: float, y: float, size: float, tile: int, stretch: Stretch,
                    min_valid: float, rule: PixelRule | None = None) -> np.ndarray | None:
    """``read_tile`` for the model: None when under ``min_valid`` of it is data; otherwise the
    nodata pixels take the tile's mean colour, so black fill never reads as "dark water"."""
    rgb, valid = read_tile(ds, bands, x, y, size, tile, stretch, rule)
    if valid.mean() < min_valid:
        return None
    if not valid.all():
        rgb[~valid] = rgb[valid].mean(axis=0).astype(np.uint8)
    return rgb
