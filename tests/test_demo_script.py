"""``make demo`` (scripts/demo.py), the project's main job, end to end in a subprocess.

It was broken for a whole session (an import path left over from the runtime/dev split) because
nothing ran it; this runs it as the Makefile does, into a temporary folder.
"""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_make_demo_labels_the_sample_and_renders_the_map(tmp_path):
    env = {**os.environ, "RS_SAGE_DEMO_OUT": str(tmp_path), "QT_QPA_PLATFORM": "offscreen"}
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "demo.py")], capture_output=True, text=True,
                       env=env, timeout=300, cwd=ROOT)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    for name in ("demo_labels.gpkg", "demo_classes.tif", "demo_summary.csv", "demo_map.png"):
        assert (tmp_path / name).is_file() and (tmp_path / name).stat().st_size > 0, name
    rows = list(csv.DictReader((tmp_path / "demo_summary.csv").open()))
    # 7 x 6 tiles of 384 m: the last row is shifted inwards to the raster's edge (0.1.0 skipped it
    # as "mostly nodata" because it hung past the raster)
    assert sum(int(r["tiles"]) for r in rows) == 42
    assert abs(sum(float(r["percent"]) for r in rows) - 100) < 0.5
    assert f"wrote {tmp_path / 'demo_map.png'}" in r.stdout and "tiles/s" in r.stdout
