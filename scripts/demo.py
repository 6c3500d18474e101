"""``make demo``: label the sample raster headlessly and render the result as a map with QGIS.

Writes out/demo_labels.gpkg, out/demo_classes.tif, out/demo_summary.csv and out/demo_map.png,
and prints the per-class area summary and the throughput.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "build" / "plugins"))  # the plugin as QGIS imports it (styles)
sys.path.insert(0, str(ROOT))  # rs_sage_dev and the core it imports (absolute imports)
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

OUT = Path(os.environ.get("RS_SAGE_DEMO_OUT", ROOT / "out"))


def render(labels: list[str], png: Path) -> None:
    from qgis.core import (
        QgsLayoutExporter,
        QgsLayoutItemLabel,
        QgsLayoutItemLegend,
        QgsLayoutItemMap,
        QgsLayoutPoint,
        QgsLayoutSize,
        QgsPrintLayout,
        QgsProject,
        QgsRasterLayer,
        QgsUnitTypes,
        QgsVectorLayer,
    )
    from qgis.PyQt.QtGui import QFont
    from rs_sage.ui.result_layers import style_classes

    from rs_sage_dev.demo import SAMPLE

    project = QgsProject.instance()
    raster = QgsRasterLayer(str(SAMPLE), "Sample imagery (5 m RGB)")
    tiles = QgsVectorLayer(f"{OUT / 'demo_labels.gpkg'}|layername=tiles", "RS-SAGE classes", "ogr")
    style_classes(tiles, labels, {f["label"] for f in tiles.getFeatures()})
    tiles.setOpacity(0.45)
    project.addMapLayers([raster, tiles])

    layout = QgsPrintLayout(project)
    layout.initializeDefaults()
    page = layout.pageCollection().page(0)
    # the map frame takes the raster's aspect; the legend gets room for its longest entry
    ext = raster.extent()
    map_w = 210.0
    map_h = map_w * ext.height() / ext.width()
    page.setPageSize(QgsLayoutSize(330, map_h + 24, QgsUnitTypes.LayoutMillimeters))
    title = QgsLayoutItemLabel(layout)
    title.setText("RS-SAGE: scene classes of the sample raster (python -m core label, 384 m tiles at 3 m/px)")
    title.setFont(QFont("Sans", 13))
    title.attemptMove(QgsLayoutPoint(8, 5, QgsUnitTypes.LayoutMillimeters))
    title.attemptResize(QgsLayoutSize(314, 10, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(title)
    project.setCrs(raster.crs())
    m = QgsLayoutItemMap(layout)
    layout.addLayoutItem(m)
    m.attemptMove(QgsLayoutPoint(8, 17, QgsUnitTypes.LayoutMillimeters))
    m.attemptResize(QgsLayoutSize(map_w, map_h, QgsUnitTypes.LayoutMillimeters))
    m.setCrs(raster.crs())
    m.setLayers([tiles, raster])
    m.setKeepLayerSet(True)
    m.setExtent(raster.extent())
    m.refresh()
    legend = QgsLayoutItemLegend(layout)
    legend.setLinkedMap(m)
    legend.setAutoUpdateModel(False)
    model = legend.model().rootGroup()
    model.removeAllChildren()
    model.addLayer(tiles)
    legend.setTitle("Class")
    legend.attemptMove(QgsLayoutPoint(222, 17, QgsUnitTypes.LayoutMillimeters))
    layout.addLayoutItem(legend)
    settings = QgsLayoutExporter.ImageExportSettings()
    settings.dpi = 110
    result = QgsLayoutExporter(layout).exportToImage(str(png), settings)
    if result != QgsLayoutExporter.Success:
        raise RuntimeError(f"map export failed ({result})")


def main() -> int:
    from qgis.core import QgsApplication

    from core.errors import RsSageError
    from rs_sage_dev.demo import report, run_demo

    app = QgsApplication([], False)
    app.initQgis()
    try:
        labels, res = run_demo(OUT)
    except RsSageError as exc:
        print(f"demo failed: {exc}", file=sys.stderr)
        return 2
    render(labels, OUT / "demo_map.png")
    print(report(res))
    print(f"wrote {OUT / 'demo_map.png'}")
    app.exitQgis()
    return 0


if __name__ == "__main__":
    sys.exit(main())
