"""The attributes of a labelled tile: one schema for the GeoPackage, the panel's layer and
Processing's sink, so the three can never drift apart."""

from __future__ import annotations

import json
from dataclasses import dataclass

# (name, Python type) in output order.
TILE_FIELDS: list[tuple[str, type]] = [
    ("tile_row", int), ("tile_col", int), ("label", str), ("score", float), ("top3", str),
    ("scene_cues", str), ("object_cues", str), ("fine_cues", str), ("router", str), ("uncertain", int),
]
FIELD_NAMES = [name for name, _ in TILE_FIELDS]


def tile_attributes(row: int, col: int, result) -> dict:
    """A ClassifyResult as the tile's attribute values (plain Python, in TILE_FIELDS order)."""
    attrs = {
        "tile_row": int(row), "tile_col": int(col), "label": result.label, "score": float(result.score),
        "top3": "; ".join(f"{lab} {s:.2f}" for lab, s in result.top[:3]),
    }
    for lv, name in (("scene", "scene_cues"), ("object", "object_cues"), ("fine", "fine_cues")):
        attrs[name] = ", ".join(c.name for c in result.cues[lv][:5])
    attrs["router"] = json.dumps(result.router)
    attrs["uncertain"] = int(bool(getattr(result, "uncertain", False)))
    return attrs


@dataclass
class TileRecord:
    """A labelled tile in memory: its footprint in the raster's CRS and its attributes."""

    bounds: tuple[float, float, float, float]  # xmin, ymin, xmax, ymax
    attributes: dict
    vector: object = None  # the tile's scene embedding (numpy float32), for Find similar in the panel

    @property
    def wkt(self) -> str:
        x0, y0, x1, y1 = self.bounds
        return f"POLYGON (({x0} {y1}, {x1} {y1}, {x1} {y0}, {x0} {y0}, {x0} {y1}))"
