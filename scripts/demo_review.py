"""Redo docs/demo_review.md's table from out/demo_labels.gpkg (after ``make demo``).

The judgement of each tile is a person's, written once from the true-colour image (the
description in brackets) as the labels that are right, and those that are arguable; this script
only applies it to whatever the current model says, so the review follows the model honestly.
"""

from __future__ import annotations

import sys
from pathlib import Path

from osgeo import ogr

RES = {"dense residential area", "medium residential area"}
SPARSE = {"sparse residential area", "medium residential area"}
GRAVEL = {"bare land", "river"}
# (row, col): (what the image shows, right labels, arguable labels)
TRUTH = {
    (1, 1): ("town", RES, set()), (1, 2): ("town", RES, set()),
    (1, 3): ("town with fields", RES | SPARSE, {"farmland"}),
    (1, 4): ("river bed and fields", GRAVEL | {"farmland"}, set()),
    (1, 5): ("river gravel and forest", GRAVEL | {"forest"}, set()),
    (1, 6): ("houses along a road", SPARSE, set()), (1, 7): ("fields", {"farmland"}, set()),
    (2, 1): ("town", RES, set()), (2, 2): ("town", RES, set()), (2, 3): ("town", RES, set()),
    (2, 4): ("half town, half river gravel", GRAVEL | RES, set()), (2, 5): ("river gravel", GRAVEL, set()),
    (2, 6): ("forest with houses", {"forest", "sparse residential area"}, set()),
    (2, 7): ("fields and road", {"farmland"}, set()),
    (3, 1): ("town", RES, set()), (3, 2): ("houses", RES | SPARSE, set()),
    (3, 3): ("houses and trees", SPARSE, {"forest"}),
    (3, 4): ("hillside with houses", {"sparse residential area"}, {"mountain"}),
    (3, 5): ("river gravel, ravine", GRAVEL, {"mountain"}),
    (3, 6): ("forest, a few houses", {"forest", "sparse residential area"}, set()),
    (3, 7): ("forest and road", {"forest"}, set()),
    (4, 1): ("village on a slope", SPARSE, {"mountain"}),
    (4, 2): ("sparse houses on a slope", {"sparse residential area"}, {"mountain"}),
    (4, 3): ("ravine, terraces", {"mountain"}, {"farmland", "park"}),
    (4, 4): ("ravines", {"mountain"}, set()), (4, 5): ("river gravel", GRAVEL, set()),
    (4, 6): ("gravel, forest edge", GRAVEL, {"forest"}),
    (4, 7): ("forest, road, houses; no open water", {"forest", "sparse residential area"}, set()),
    (5, 1): ("slope with houses", {"sparse residential area"}, {"mountain"}),
    (5, 2): ("slope with houses", {"sparse residential area"}, {"mountain"}),
    (5, 3): ("ravines", {"mountain"}, set()), (5, 4): ("ravines", {"mountain"}, set()),
    (5, 5): ("ravines", {"mountain"}, set()), (5, 6): ("river gravel", GRAVEL, set()),
    (5, 7): ("houses by the river bed", SPARSE, {"bare land"}),
}
# The 6th row is shifted inwards to end at the raster's bottom edge: it covers the lower 5/6 of row 5.
TRUTH.update({(6, c): TRUTH[(5, c)] for c in range(1, 8)})


def review(gpkg: str) -> tuple[str, dict]:
    ds = ogr.Open(gpkg)
    tiles = {(f.GetField("tile_row") + 1, f.GetField("tile_col") + 1): (f.GetField("label"), f.GetField("uncertain"))
             for f in ds.GetLayer(0)}
    counts = {"right": 0, "arguable": 0, "wrong": 0, "uncertain": 0, "uncertain_not_right": 0}
    rows = ["| row | " + " | ".join(str(c) for c in range(1, 8)) + " |", "|---" * 8 + "|"]
    for r in range(1, 7):
        cells = []
        for c in range(1, 8):
            label, unc = tiles.get((r, c), ("-", 0))
            what, right, arguable = TRUTH[(r, c)]
            verdict = "right" if label in right else "arguable" if label in arguable else "wrong"
            counts[verdict] += 1
            counts["uncertain"] += int(bool(unc))
            counts["uncertain_not_right"] += int(bool(unc) and verdict != "right")
            mark = "?" if unc else ""
            shown = f"**{verdict}**" if verdict == "right" else verdict
            cells.append(f"{label}{mark}: {shown} ({what})")
        rows.append(f"| {r} | " + " | ".join(cells) + " |")
    return "\n".join(rows), counts


if __name__ == "__main__":
    table, counts = review(sys.argv[1] if len(sys.argv) > 1 else str(Path("out") / "demo_labels.gpkg"))
    print(table)
    print(counts)
