"""``python -m rs_sage_dev.transductive_val [--out JSON]``: does refining labels with the
affinity between the images of one batch help (issue 24, optional item 6; the idea of
RS-TransCLIP, not its code)? Measured on validation images only, each split taken as one batch.

The refinement is label propagation: start from the engine's probabilities over the plain names
(softmax of the logit scale x cosine), build a symmetric k-nearest-neighbour graph of the scene
embeddings (weights exp(cos / 0.1)), and iterate ``P = alpha P0 + (1 - alpha) W P`` ten times.
It would be on by default only if it helped on validation; see docs/results.md for the answer.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

GRID = {"k": (5, 10, 20), "alpha": (0.3, 0.5, 0.7)}


def propagate(emb: np.ndarray, cos: np.ndarray, scale: float, k: int, alpha: float, steps: int = 10) -> np.ndarray:
    """Refined class probabilities [N, L] of N unit embeddings whose label cosines are ``cos``."""
    z = scale * cos
    p0 = np.exp(z - z.max(1, keepdims=True))
    p0 /= p0.sum(1, keepdims=True)
    sim = emb @ emb.T
    np.fill_diagonal(sim, -np.inf)
    near = np.argsort(-sim, 1)[:, :k]
    rows = np.arange(len(sim))[:, None]
    w = np.zeros_like(sim)
    w[rows, near] = np.exp(sim[rows, near] / 0.1)
    w = w + w.T
    w /= w.sum(1, keepdims=True)
    p = p0.copy()
    for _ in range(steps):
        p = alpha * p0 + (1 - alpha) * w @ p
    return p


def main(argv: list[str] | None = None) -> int:
    from core.model.engine import Engine
    from core.setup.paths import MODEL_DIR

    from .open_eval import AID_NAMES, EUROSAT_NAMES, embed_paths, split_images

    ap = argparse.ArgumentParser(prog="python -m rs_sage_dev.transductive_val", description=__doc__.split("\n\n")[0])
    ap.add_argument("--model-dir", default=None)
    ap.add_argument("--out", default=None, help="JSON file for the figures")
    args = ap.parse_args(argv)
    engine = Engine.load(args.model_dir or MODEL_DIR, user_kb=False, precision="float32")
    res: dict = {}
    for ds, names in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES)):
        paths, labels, _ = split_images(ds, "val")
        emb = embed_paths(engine, paths)
        cos = emb @ engine.label_embeddings(names).T
        row = {"images": len(labels), "none": round(100 * float((cos.argmax(1) == labels).mean()), 2)}
        for k in GRID["k"]:
            for a in GRID["alpha"]:
                p = propagate(emb, cos, engine.logit_scale, k, a)
                row[f"k{k}_alpha{a}"] = round(100 * float((p.argmax(1) == labels).mean()), 2)
        res[ds] = row
        print(ds, json.dumps(row), flush=True)
    if args.out:
        Path(args.out).write_text(json.dumps(res, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
