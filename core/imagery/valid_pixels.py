"""One rule for what a valid pixel is, shared by the panel, Processing, the CLI and region questions.

A pixel is *not* valid when any of its bands holds the file's declared nodata, a nodata value
or range the user set in QGIS (``setUserNoDataValue``) or on the command line, or NaN; when the
dataset's mask or alpha band says so; or when all its bands hold the *fill* value. Fill is what
scene footprints are padded with (Landsat's black collar): a value that is the same in every band
along the raster's border and is an extreme of the data. Zero is the fill value by default, so an
all-zero pixel is never imagery even when the file declares nothing.

The contrast stretch the model is fed is computed from valid pixels only: a stretch that counts
the collar's zeros squeezes the whole scene into the top of the range (pale, low contrast), which
is what the model was never shown.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace

import numpy as np

# Per-band value ranges (inclusive) that are nodata: {band number: [(low, high), ...]}.
UserNoData = dict[int, list[tuple[float, float]]]

SAMPLE_SIDE = 1024  # the sampled read that drives fill detection and the stretch
MIN_COLLAR_SHARE = 0.05  # share of border pixels that must hold one value in every band


@dataclass(frozen=True)
class PixelRule:
    """What counts as nodata for one raster and band choice (see the module docstring)."""

    bands: tuple[int, ...]
    declared: tuple[float | None, ...]  # the file's nodata per band (in ``bands`` order)
    user: tuple[tuple[tuple[float, float], ...], ...] = ()  # user ranges per band (``bands`` order)
    fill: float | None = 0.0
    fill_detected: bool = False  # True when the border showed a collar of ``fill``
    use_mask: bool = False  # the dataset has a per-dataset mask or alpha band

    def valid(self, arrays: np.ndarray, mask: np.ndarray | None = None) -> np.ndarray:
        """arrays [C,H,W] in ``bands`` order, raw values -> valid [H,W]."""
        a = np.asarray(arrays)
        ok = np.ones(a.shape[1:], bool)
        if a.dtype.kind == "f":
            ok &= np.isfinite(a).all(axis=0)
        for i in range(a.shape[0]):
            nd = self.declared[i] if i < len(self.declared) else None
            if nd is not None and np.isfinite(nd):  # a NaN nodata is caught by the NaN test
                ok &= a[i] != nd
            for lo, hi in (self.user[i] if i < len(self.user) else ()):
                ok &= ~((a[i] >= lo) & (a[i] <= hi))
        if self.fill is not None:
            ok &= ~(a == self.fill).all(axis=0)
        if mask is not None:
            ok &= mask > 0
        return ok

    def describe(self) -> str:
        """Plain words for messages: what this rule treats as nodata."""
        parts = []
        declared = sorted({v for v in self.declared if v is not None})
        if declared:
            parts.append("declared nodata " + ", ".join(_fmt(v) for v in declared))
        user = sorted({r for ranges in self.user for r in ranges})
        if user:
            parts.append("nodata set in QGIS " + ", ".join(
                _fmt(lo) if lo == hi else f"{_fmt(lo)}-{_fmt(hi)}" for lo, hi in user))
        if self.fill is not None:
            parts.append(f"fill {_fmt(self.fill)} in all bands"
                         + (" (found along the border)" if self.fill_detected else ""))
        if self.use_mask:
            parts.append("the mask/alpha band")
        return "; ".join(parts) or "nothing"


def _fmt(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else f"{v:g}"


@dataclass
class Sample:
    """An overview-sized nearest-neighbour read of the chosen bands (true pixel values)."""

    arrays: np.ndarray  # [C,h,w]
    mask: np.ndarray | None  # per-dataset mask at the same size, or None


def read_sample(ds, bands: list[int], max_side: int = SAMPLE_SIDE) -> Sample:
    """Nearest-neighbour sample (at most ``max_side`` px wide): bounded memory on any raster.

    Nearest, not average: averaging would blend the collar into the scene and hide both.
    """
    from osgeo import gdal

    scale = max(ds.RasterXSize, ds.RasterYSize) / max_side
    bx = max(1, int(ds.RasterXSize / max(scale, 1)))
    by = max(1, int(ds.RasterYSize / max(scale, 1)))
    arrays = np.stack([ds.GetRasterBand(b).ReadAsArray(
        buf_xsize=bx, buf_ysize=by, resample_alg=gdal.GRIORA_NearestNeighbour) for b in bands])
    mask = None
    first = ds.GetRasterBand(bands[0])
    if first.GetMaskFlags() & gdal.GMF_PER_DATASET:
        mask = first.GetMaskBand().ReadAsArray(buf_xsize=bx, buf_ysize=by,
                                               resample_alg=gdal.GRIORA_NearestNeighbour)
    return Sample(arrays, mask)


def _border(x: np.ndarray) -> np.ndarray:
    """The outermost pixels of [..., H, W] as [..., N]."""
    return np.concatenate([x[..., 0, :], x[..., -1, :], x[..., 1:-1, 0], x[..., 1:-1, -1]], axis=-1)


def detect_fill(arrays: np.ndarray, valid: np.ndarray | None = None) -> float | None:
    """The value padding the footprint, or None: the most common value that every band holds at
    once along the raster's border, if it covers at least ``MIN_COLLAR_SHARE`` of the border and
    is the smallest or largest value in the sample (fill is an extreme: 0, 255, 65535, -9999).
    Pixels outside ``valid`` (already nodata by another rule) take no part."""
    a = np.asarray(arrays)
    if a.ndim != 3 or min(a.shape[1:]) < 2:
        return None
    valid = np.ones(a.shape[1:], bool) if valid is None else valid
    if a.dtype.kind == "f":
        valid = valid & np.isfinite(a).all(axis=0)
    if not valid.any():
        return None
    ring = _border(a)  # [C,N]
    same = (ring == ring[:1]).all(axis=0) & _border(valid)
    if not same.any():
        return None
    values, counts = np.unique(ring[0][same], return_counts=True)
    best = int(np.argmax(counts))
    if counts[best] < MIN_COLLAR_SHARE * ring.shape[1]:
        return None
    v = float(values[best])
    inside = a[:, valid]
    if v not in (float(inside.min()), float(inside.max())):
        return None
    return v


def declared_rule(ds, bands: list[int], user: UserNoData | None = None) -> PixelRule:
    """The rule from what the file and the user declare (nodata, user ranges, mask band), no fill."""
    from osgeo import gdal

    return PixelRule(
        tuple(bands), tuple(ds.GetRasterBand(b).GetNoDataValue() for b in bands),
        tuple(tuple((float(lo), float(hi)) for lo, hi in (user or {}).get(b, ())) for b in bands),
        fill=None, use_mask=bool(ds.GetRasterBand(bands[0]).GetMaskFlags() & gdal.GMF_PER_DATASET))


def pixel_rule(ds, bands: list[int], user: UserNoData | None = None, sample: Sample | None = None
               ) -> PixelRule:
    """The rule for ``bands`` of ``ds``: declared and user nodata, the mask band, detected fill."""
    sample = sample or read_sample(ds, bands)
    declared = declared_rule(ds, bands, user)
    # Fill is looked for among the pixels the other rules leave valid (a declared nodata collar
    # is already handled, and must not make the scene's own extreme look like fill).
    found = detect_fill(sample.arrays, declared.valid(sample.arrays, sample.mask))
    return replace(declared, fill=0.0 if found is None else found, fill_detected=found is not None)


# ---- stretch from valid pixels, cached per file --------------------------------------------------

_CACHE: OrderedDict = OrderedDict()
_CACHE_LOCK = threading.Lock()
_CACHE_SIZE = 32


def _file_key(path: str) -> tuple:
    try:
        st = os.stat(path)
        return (path, st.st_mtime_ns, st.st_size)
    except OSError:  # /vsi paths and the like: the path is the key
        return (path,)


def valid_stretch(ds, bands: list[int], user: UserNoData | None = None, low_pct: float = 2,
                  high_pct: float = 98):
    """(Stretch, PixelRule) for ``bands`` of ``ds``, from the valid pixels of a sampled read.

    8-bit bands are shown as stored (as QGIS does, and as the training imagery was); other types
    get a ``low_pct``-``high_pct`` percentile stretch per band. Cached per file, band choice and
    user nodata, so the panel's second click, Processing and region questions do not re-read.
    """
    from .stretch import Stretch

    key = (_file_key(ds.GetDescription()), tuple(bands),
           tuple(sorted((b, tuple(r)) for b, r in (user or {}).items())), low_pct, high_pct)
    with _CACHE_LOCK:
        if key in _CACHE:
            _CACHE.move_to_end(key)
            return _CACHE[key]
    try:
        sample = read_sample(ds, bands)
    except RuntimeError as exc:  # GDAL: a truncated file, a VRT whose source is missing
        from ..errors import RsSageError

        raise RsSageError(f"GDAL could not read {ds.GetDescription()} ({str(exc).strip()[:200]}); the file "
                          "is damaged or a source is missing.") from exc
    rule = pixel_rule(ds, bands, user, sample)
    ok = rule.valid(sample.arrays, sample.mask)
    lows, highs = [], []
    for i, b in enumerate(bands):
        if ds.GetRasterBand(b).DataType == 1:  # gdal.GDT_Byte
            lows.append(0.0)
            highs.append(255.0)
            continue
        values = sample.arrays[i][ok].astype(np.float64)
        if values.size == 0:
            lows.append(0.0)
            highs.append(1.0)
            continue
        lo, hi = np.percentile(values.astype(np.float64), [low_pct, high_pct])
        if not (np.isfinite(lo) and np.isfinite(hi)) or max(abs(lo), abs(hi)) > 3.0e38:
            from ..errors import RsSageError

            raise RsSageError(f"Band {b} holds values near {hi:.3g}, beyond what a contrast stretch can map "
                              "(float32 range); rescale the raster first (e.g. gdal_translate -scale).")
        lows.append(float(lo))
        highs.append(float(max(hi, lo + 1e-6)))
    result = (Stretch(np.array(lows, np.float32), np.array(highs, np.float32)), rule)
    with _CACHE_LOCK:
        _CACHE[key] = result
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return result
