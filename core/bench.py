"""``python -m core bench``: speed numbers, measured here and printed (``--json`` for machines)."""

from __future__ import annotations

import argparse
import json
import platform
import time

import numpy as np


def _best_of(fn, repeat: int = 50) -> float:
    fn()
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def bench_retrieval(batch: int = 64, k: int = 8) -> dict:
    """3 levels x top-k for a batch of queries through FAISS (what the engine does per batch)."""
    from .knowledge import KnowledgeBase

    kb = KnowledgeBase.load(user_dir=False)
    rng = np.random.default_rng(0)
    q = rng.standard_normal((batch, 3, kb.embeddings.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=-1, keepdims=True)
    seconds = _best_of(lambda: kb.search_levels(q, k))
    return {"batch": batch, "levels": 3, "k": k, "entries": len(kb.entries),
            "best_ms": round(seconds * 1000, 3), "target_ms": 2.0}


def bench_engine(n: int = 256) -> dict:
    """Classification throughput of the ONNX engine on synthetic tiles at the model input size."""
    from .engine import Engine

    engine = Engine.load(user_kb=False)
    rng = np.random.default_rng(0)
    s = engine.input_size
    tiles = [rng.integers(0, 255, (s, s, 3), dtype=np.uint8) for _ in range(n)]
    engine.classify(tiles[:8])
    t = time.perf_counter()
    engine.classify(tiles)
    dt = time.perf_counter() - t
    return {"tiles": n, "tile_px": s, "seconds": round(dt, 3), "tiles_per_s": round(n / dt, 1),
            "device": engine.device}


def run_bench(args: argparse.Namespace) -> int:
    res: dict = {"machine": f"{platform.machine()} {platform.processor()}".strip()}
    if args.section in ("all", "retrieval"):
        res["retrieval"] = bench_retrieval()
    if args.section in ("all", "engine"):
        res["engine"] = bench_engine()
    if args.json:
        print(json.dumps(res, indent=2))
    else:
        if "retrieval" in res:
            r = res["retrieval"]
            print(f"retrieval: {r['levels']} levels x top-{r['k']} for {r['batch']} queries over "
                  f"{r['entries']} entries: {r['best_ms']:.3f} ms (target < {r['target_ms']} ms)")
        if "engine" in res:
            e = res["engine"]
            print(f"engine classify: {e['tiles']} tiles of {e['tile_px']} px in {e['seconds']} s = "
                  f"{e['tiles_per_s']} tiles/s on {e['device']}")
    return 0
