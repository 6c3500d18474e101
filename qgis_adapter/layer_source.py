"""What the model should see of a QGIS raster layer: its file, bands, nodata and stretch.

The bands come from the layer's renderer. The contrast stretch does not, unless the user set
min/max by hand: QGIS's automatic stretch counts fill pixels (a Landsat collar of zeros makes the
scene pale), so by default ``core`` computes the stretch from valid pixels only, the same one the
CLI and Processing use for the file. Nodata values set in the layer's properties (user no-data)
are passed on, so the panel, Processing and region questions skip what QGIS shows transparent.
"""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsRasterMinMaxOrigin,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
)

from ..core.errors import RsSageError


@dataclass
class LayerSource:
    path: str
    bands: list[int]
    stretch_low: list[float] | None  # set only when the renderer's min/max were set by hand
    stretch_high: list[float] | None
    nodata: dict[int, list[tuple[float, float]]] | None = None  # user no-data per band

    def contrast_note(self) -> str:
        """Which stretch the model gets, for the panel to say."""
        if self.stretch_low is None:
            return "Contrast for the model: 2-98 % of the valid pixels (fill and nodata excluded)."
        pairs = ", ".join(f"{lo:g}-{hi:g}" for lo, hi in zip(self.stretch_low, self.stretch_high, strict=True))
        return f"Contrast for the model: the layer's min/max set by hand ({pairs})."

    def label_params(self) -> dict:
        """The LabelParams fields that make the model see what the layer shows (panel and Processing)."""
        stretch = (self.stretch_low, self.stretch_high) if self.stretch_low else None
        return {"raster": self.path, "bands": self.bands, "stretch": stretch, "nodata": self.nodata}

    def stretch(self):
        if self.stretch_low is None:
            return None
        import numpy as np

        from ..core.imagery.raster import Stretch

        return Stretch(np.array(self.stretch_low, np.float32), np.array(self.stretch_high, np.float32))


def _enhancement_range(ce: QgsContrastEnhancement | None):
    none = QgsContrastEnhancement.ContrastEnhancementAlgorithm.NoEnhancement
    if ce is None or ce.contrastEnhancementAlgorithm() == none:
        return None
    return float(ce.minimumValue()), float(ce.maximumValue())


def user_nodata(layer: QgsRasterLayer) -> dict[int, list[tuple[float, float]]] | None:
    """No-data values and ranges the user set in the layer's properties, per band."""
    provider = layer.dataProvider()
    out = {}
    for b in range(1, layer.bandCount() + 1):
        ranges = [(float(r.min()), float(r.max())) for r in provider.userNoDataValues(b)]
        if ranges:
            out[b] = ranges
    return out or None


def _set_by_hand(renderer) -> bool:
    return renderer.minMaxOrigin().limits() == QgsRasterMinMaxOrigin.Limits.None_


def layer_source(layer: QgsRasterLayer) -> LayerSource:
    if layer is None or not isinstance(layer, QgsRasterLayer):
        raise RsSageError("Choose a raster layer first.")
    if not layer.isValid():
        raise RsSageError(f"The layer '{layer.name()}' is not valid (file missing or unreadable).")
    if layer.providerType() != "gdal":
        raise RsSageError(
            f"'{layer.name()}' is a {layer.providerType()} layer; RS-SAGE reads rasters through GDAL. "
            "Save it as a GeoTIFF first (right-click > Export > Save As).")
    path = layer.source().split("|")[0]
    r = layer.renderer()
    ranges = []
    if isinstance(r, QgsMultiBandColorRenderer):
        bands = [r.redBand(), r.greenBand(), r.blueBand()]
        if min(bands) < 1:
            raise RsSageError("The layer's RGB renderer leaves a colour channel empty; set all three bands.")
        ranges = [_enhancement_range(ce) for ce in (r.redContrastEnhancement(), r.greenContrastEnhancement(),
                                                    r.blueContrastEnhancement())]
    elif isinstance(r, QgsSingleBandGrayRenderer):
        bands = [r.grayBand()] * 3
        ranges = [_enhancement_range(r.contrastEnhancement())] * 3
    elif isinstance(r, QgsSingleBandPseudoColorRenderer):
        bands = [r.band()] * 3
        shader = r.shader()
        ranges = [(float(shader.minimumValue()), float(shader.maximumValue()))] * 3
    else:
        n = layer.bandCount()
        bands = [1, 2, 3] if n >= 3 else [1, 1, 1]
    nodata = user_nodata(layer)
    if ranges and all(rg is not None for rg in ranges) and _set_by_hand(r):
        low, high = [rg[0] for rg in ranges], [rg[1] for rg in ranges]
        return LayerSource(path, bands, low, high, nodata)
    return LayerSource(path, bands, None, None, nodata)
