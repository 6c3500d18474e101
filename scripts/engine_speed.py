"""Classification speed of several engines on the same tiles, in one process and one run.

This machine's speed varies by up to ~35 % between runs, so engines are compared only inside one
run: each round classifies the same tiles with every engine in turn, and each engine's best
round is kept. An engine is a model folder, or a commit whose ``resources/models`` is checked out
into a temporary folder (the engine as it was then), each with a precision.

    python scripts/engine_speed.py [--tiles 256] [--tile-px 224] [--views 4] \
        float32@git:b491b90 int8@resources/models float32@resources/models
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL_FILES = ("model.json", "encoder.onnx", "experts.onnx", "encoder.int8.onnx", "experts.int8.onnx")


def checkout_models(commit: str, dest: Path) -> Path:
    """``resources/models`` as it was at ``commit`` (files the commit lacks are skipped)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in MODEL_FILES:
        got = subprocess.run(["git", "show", f"{commit}:resources/models/{name}"], cwd=ROOT,
                             capture_output=True)
        if got.returncode == 0:
            (dest / name).write_bytes(got.stdout)
    return dest


def main(argv: list[str] | None = None) -> int:
    import numpy as np

    from core.model.engine import Engine

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("engines", nargs="+", metavar="PRECISION@DIR|PRECISION@git:COMMIT")
    p.add_argument("--tiles", type=int, default=256)
    p.add_argument("--tile-px", type=int, default=224, help="tile size in px (the labeller's default)")
    p.add_argument("--views", type=int, default=4)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    tiles = [rng.integers(0, 255, (args.tile_px, args.tile_px, 3), dtype=np.uint8) for _ in range(args.tiles)]
    with tempfile.TemporaryDirectory() as tmp:
        engines = {}
        for i, spec in enumerate(args.engines):
            precision, _, where = spec.partition("@")
            folder = checkout_models(where[4:], Path(tmp) / str(i)) if where.startswith("git:") else Path(where)
            eng = Engine.load(folder, user_kb=False, views=args.views, precision=precision)
            eng.classify(tiles[:8])
            engines[spec] = eng
        best = {spec: float("inf") for spec in engines}
        for _ in range(args.rounds):
            for spec, eng in engines.items():
                t = time.perf_counter()
                eng.classify(tiles)
                best[spec] = min(best[spec], time.perf_counter() - t)
    first = args.engines[0]
    out = {spec: {"input_px": engines[spec].input_size, "precision": engines[spec].precision,
                  "experts_precision": engines[spec].experts_precision,
                  "tiles_per_s": round(args.tiles / best[spec], 1),
                  f"vs_{first}": round(best[first] / best[spec], 3)} for spec in engines}
    print(json.dumps({"tiles": args.tiles, "tile_px": args.tile_px, "views": args.views,
                      "rounds": args.rounds, "engines": out}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
