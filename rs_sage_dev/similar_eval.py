"""Find-similar quality and scale (issue 27).

- ``precision_at_10``: query by example on a test split, one example image per query (every test
  image in turn), the other test images searched; the share of the 10 nearest that are of the
  example's class, averaged per class. Query by words: the class's plain name as the query.
- ``bench_million``: 1,000,000 stored vectors (the test embeddings plus small Gaussian offsets,
  so they cluster like real tiles), search time per query of the index ``core.questions.similar`` builds
  at that size, its recall@10 against exact search, and its memory.
"""

from __future__ import annotations

import time

import numpy as np


def precision_at_10(emb: np.ndarray, labels: np.ndarray, classes: list[str], names_emb: np.ndarray) -> dict:
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    top = np.argsort(-sims, axis=1)[:, :10]
    hit = (labels[top] == labels[:, None]).mean(1)
    by_words = np.argsort(-(names_emb @ emb.T), axis=1)[:, :10]
    out = {}
    for i, c in enumerate(classes):
        if (labels == i).any():
            out[c] = {"example": float(hit[labels == i].mean()), "words": float((labels[by_words[i]] == i).mean())}
    mean = {k: float(np.mean([v[k] for v in out.values()])) for k in ("example", "words")}
    return {"per_class": out, "mean": mean, "n": int(len(labels))}


def run(model_dir=None) -> dict:
    from core.model.engine import Engine

    from .open_eval import AID_NAMES, EUROSAT_NAMES, embed_paths, split_images

    engine = Engine.load(model_dir, user_kb=False)
    res = {}
    for ds, names in (("eurosat", EUROSAT_NAMES), ("aid", AID_NAMES)):
        paths, labels, classes = split_images(ds, "test")
        emb = embed_paths(engine, paths)
        res[ds] = precision_at_10(emb, labels, classes, engine.label_embeddings(names))
        if ds == "eurosat":
            res["bench_million"] = bench_million(emb)
    return res


def bench_million(base: np.ndarray, n: int = 1_000_000, queries: int = 100, seed: int = 0) -> dict:
    import faiss

    from core.questions.similar import EXACT_MAX, make_index

    rng = np.random.default_rng(seed)
    x = base[rng.integers(0, len(base), n)] + rng.normal(0, 0.05, (n, base.shape[1])).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    q = x[rng.choice(n, queries, replace=False)] + rng.normal(0, 0.02, (queries, base.shape[1])).astype(np.float32)
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    exact = faiss.IndexFlatIP(x.shape[1])
    exact.add(x)
    t0 = time.perf_counter()
    _, truth = exact.search(q, 10)
    exact_ms = 1000 * (time.perf_counter() - t0) / queries
    t0 = time.perf_counter()
    index = make_index(x, np.arange(n))
    build_s = time.perf_counter() - t0
    times = []
    found = np.zeros((queries, 10), np.int64)
    for i in range(queries):
        t = time.perf_counter()
        _, found[i:i + 1] = index.search(q[i:i + 1], 10)
        times.append(1000 * (time.perf_counter() - t))
    recall = float(np.mean([len(set(truth[i]) & set(found[i])) / 10 for i in range(queries)]))
    ivf = faiss.extract_index_ivf(index.index) if n > EXACT_MAX else None
    memory_mb = (n * x.shape[1] * 4 + (ivf.nlist * x.shape[1] * 4 if ivf else 0) + n * 8 * 2) / 1e6
    return {"vectors": n, "dim": int(x.shape[1]), "index": type(faiss.downcast_index(index.index)).__name__,
            "nlist": int(ivf.nlist) if ivf else None, "nprobe": int(ivf.nprobe) if ivf else None,
            "build_s": round(build_s, 1), "query_ms_median": round(float(np.median(times)), 2),
            "query_ms_p95": round(float(np.percentile(times, 95)), 2), "exact_query_ms_batched": round(exact_ms, 2),
            "recall_at_10_vs_exact": recall, "index_memory_mb_approx": round(memory_mb)}


if __name__ == "__main__":
    import json
    import sys
    from pathlib import Path

    out = run(Path(sys.argv[1]) if len(sys.argv) > 1 else None)
    print(json.dumps(out, indent=2))
    Path("docs/similar.json").write_text(json.dumps(out, indent=2) + "\n")
