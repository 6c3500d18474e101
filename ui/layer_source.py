"""What the model should see of a QGIS raster layer: its file, bands and contrast stretch.

The bands come from the layer's own renderer and so does the stretch, so the model sees what
the user sees (a 16-bit Landsat layer stretched in QGIS is stretched the same way here).
"""

from __future__ import annotations

from dataclasses import dataclass

from qgis.core import (
    QgsContrastEnhancement,
    QgsMultiBandColorRenderer,
    QgsRasterLayer,
    QgsSingleBandGrayRenderer,
    QgsSingleBandPseudoColorRenderer,
)

from ..core.errors import RsSageError


@dataclass
class LayerSource:
    path: str
    bands: list[int]
    stretch_low: list[float] | None
    stretch_high: list[float] | None

    def stretch(self):
        if self.stretch_low is None:
            return None
        import numpy as np

        from ..core.raster import Stretch

        return Stretch(np.array(self.stretch_low, np.float32), np.array(self.stretch_high, np.float32))


def _enhancement_range(ce: QgsContrastEnhancement | None):
    if ce is None or ce.contrastEnhancementAlgorithm() == QgsContrastEnhancement.NoEnhancement:
        return None
    return float(ce.minimumValue()), float(ce.maximumValue())


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
    if ranges and all(rg is not None for rg in ranges):
        low, high = [rg[0] for rg in ranges], [rg[1] for rg in ranges]
        return LayerSource(path, bands, low, high)
    return LayerSource(path, bands, None, None)
