"""The main job's labelling step: the committed sample raster through the streaming labeller.

``make demo`` runs this and then renders the map with QGIS (scripts/demo.py);
``python -m core demo`` runs this alone, without QGIS.
"""

from __future__ import annotations

from pathlib import Path

from core.setup.paths import PROJECT_ROOT, SAMPLE_DIR

SAMPLE = SAMPLE_DIR / "rgbn_5m.tif"
# 128 px tiles read at 3 m/px: 384 m x 384 m each, near the footprint of an AID scene and inside
# the 2-32 m/px range the model saw.
GSD, TILE = 3.0, 128


def run_demo(out: Path = PROJECT_ROOT / "out"):
    """Label the sample into out/demo_*; returns (label list, LabelResult)."""
    from core.imagery.labeller import LabelParams, label_raster
    from core.model.engine import Engine

    out.mkdir(parents=True, exist_ok=True)
    engine = Engine.load()
    params = LabelParams(raster=str(SAMPLE), out_gpkg=str(out / "demo_labels.gpkg"),
                         out_tif=str(out / "demo_classes.tif"), out_summary=str(out / "demo_summary.csv"),
                         gsd=GSD, tile=TILE)
    return list(engine.default_labels), label_raster(params, engine)


def report(res) -> str:
    lines = [f"Labelled {SAMPLE.name}: {res.labelled} tiles of {TILE} px at {res.gsd} m/px in {res.seconds:.2f} s "
             f"({res.tiles_per_s:.1f} tiles/s on {res.device}, model load included)",
             f"{'class':28s} {'area (ha)':>10s} {'share':>7s}"]
    for name, s in sorted(res.summary.items(), key=lambda kv: -kv[1]["area_ha"]):
        lines.append(f"{name:28s} {s['area_ha']:10.2f} {s['percent']:6.1f} %")
    lines += [f"wrote {res.outputs[key]}" for key in ("gpkg", "tif", "summary")]
    return "\n".join(lines)
