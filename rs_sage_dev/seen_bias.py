"""Seen-name bias (generalised zero-shot): does lowering the names the model was trained on help
the names it was not?

A model trained to put each image on one of its class names puts an image of an unseen class on
the nearest *seen* name: the leave-classes-out stand-in scores 0-5 % on unseen classes among all
names. Calibrated stacking (Chao et al. 2016) subtracts a constant from seen classes' scores; with
free-text labels "seen" is a degree, so here each label's score is lowered by ``gamma`` times its
familiarity, the best cosine between the label and any class text the model was trained on.
``gamma`` is chosen on validation images (harmonic mean of seen and unseen accuracy), then test
images are scored once.

``python -m rs_sage_dev.seen_bias --model-dir .cache/leaveout_model --leave-out default --out F.json``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .open_eval import AID_NAMES, DEFAULT_LEAVE_OUT, EUROSAT_NAMES, embed_paths, leave_out_figures, split_images

GAMMAS = np.round(np.arange(0.0, 0.405, 0.01), 3)


def trained_texts(leave_out: tuple[str, ...]) -> list[str]:
    """Every class text (names, aliases, descriptions) the model's class losses saw."""
    from core.model.knowledge import KnowledgeBase

    from .open_vocab import OPEN_CLASSES, class_texts

    texts = class_texts(KnowledgeBase.load(user_dir=False))
    return sorted({t for c, ts in zip(OPEN_CLASSES, texts, strict=True) if c not in leave_out for t in ts})


def vocabulary(leave_out: tuple[str, ...]) -> list[str]:
    """Every text the stand-in's losses pulled images towards: kept class texts, the objects
    mined from captions (knowledge-base object rows) and the broad land-cover words."""
    from core.model.knowledge import KnowledgeBase

    from .training import BROAD_CONCEPTS

    kb = KnowledgeBase.load(user_dir=False)
    words = [w for ws, _ in BROAD_CONCEPTS.values() for w in ws]
    return sorted(set(trained_texts(leave_out)) | {r.name for r in kb.rows_of("object")} | set(words))


def project(names_emb: np.ndarray, vocab_emb: np.ndarray, tau: float, k: int, alpha: float) -> np.ndarray:
    """Each label moved towards the trained texts nearest to it: alpha * label + (1 - alpha) *
    softmax(cos / tau)-weighted mean of its k nearest vocabulary texts, unit length."""
    sim = names_emb @ vocab_emb.T
    idx = np.argsort(-sim, 1)[:, :k]
    w = np.exp(np.take_along_axis(sim, idx, 1) / tau)
    w /= w.sum(1, keepdims=True)
    near = np.einsum("nk,nkd->nd", w, vocab_emb[idx])
    out = alpha * names_emb + (1 - alpha) * near
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def kb_descriptions(names: list[str]) -> list[str | None]:
    """Each label's knowledge-base scene description (the paper's semantic augmentation applied to
    the label instead of the image): the scene row whose name or alias is the label, ignoring case,
    else None. The descriptions are written texts of what each scene looks like from above, not
    mined from any image."""
    from core.model.knowledge import KnowledgeBase

    rows = KnowledgeBase.load(user_dir=False).rows_of("scene")
    index = {}
    for r in rows:
        for key in (r.name, *getattr(r, "aliases", ())):
            index.setdefault(" ".join(key.lower().split()), r.text)

    def find(name: str) -> str | None:
        key = " ".join(name.lower().split())
        if key in index:
            return index[key]
        parts = [index.get(p.strip()) for p in key.split(" or ")]  # "sea or lake": both rows
        return (" ".join(p for p in parts if p) or None) if len(parts) > 1 else None

    return [find(n) for n in names]


def described_names(text_emb, names: list[str]) -> tuple[np.ndarray, np.ndarray, list[bool]]:
    """The labels' embeddings, those of 'label: description' (the label alone where the knowledge
    base has no description), and which labels have one."""
    desc = kb_descriptions(names)
    full = text_emb([f"{n}: {d}" if d else n for n, d in zip(names, desc, strict=True)])
    return text_emb(names), full, [d is not None for d in desc]


def mix(base: np.ndarray, full: np.ndarray, alpha: float) -> np.ndarray:
    """alpha * label + (1 - alpha) * 'label: description', unit length."""
    out = alpha * base + (1 - alpha) * full
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def familiarity(text_emb, names: list[str], trained: np.ndarray) -> np.ndarray:
    return (text_emb(names) @ trained.T).max(1)


def _combined_h(figs: list[dict]) -> float:
    s = sum(f["seen"] * f["n_seen"] for f in figs) / max(1, sum(f["n_seen"] for f in figs))
    u = sum(f["unseen"] * f["n_unseen"] for f in figs) / max(1, sum(f["n_unseen"] for f in figs))
    return 2 * s * u / (s + u) if s + u else 0.0


def _embeddings(engine, model_dir, ds: str, split: str, paths) -> np.ndarray:
    """Image embeddings, kept under .cache so other scoring rules can be tried on the same ones."""
    import hashlib

    key = hashlib.sha1(f"{Path(model_dir or 'resources/models').resolve()}|{ds}|{split}|{len(paths)}|{paths[:3]}"
                       .encode()).hexdigest()[:16]
    cache = Path(".cache/open_eval_embeddings") / f"{ds}_{split}_{key}.npy"
    if cache.is_file():
        return np.load(cache)
    emb = embed_paths(engine, paths)
    cache.parent.mkdir(parents=True, exist_ok=True)
    np.save(cache, emb)
    return emb


def run(model_dir: Path | None, leave_out: tuple[str, ...], limit: int | None = None) -> dict:
    from core.model.engine import Engine
    from core.model.text_encoder import shared_encoder

    engine = Engine.load(model_dir, user_kb=False)
    trained = shared_encoder().encode(trained_texts(leave_out))
    data: dict = {}
    raw: dict = {}
    for ds, names in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES)):
        held = {c.split(":", 1)[1] for c in leave_out if c.startswith(ds + ":")}
        fam = familiarity(engine.label_embeddings, names, trained)
        for split in ("val", "test"):
            paths, labels, classes = split_images(ds, split, limit)
            raw[ds, split] = _embeddings(engine, model_dir, ds, split, paths)
            data[ds, split] = (raw[ds, split] @ engine.label_embeddings(names).T, labels, classes, held, fam)

    def figures(split: str, gamma: float) -> dict:
        return {ds: leave_out_figures(cos - gamma * fam[None], labels, classes, held)
                for (ds, sp), (cos, labels, classes, held, fam) in data.items() if sp == split}

    val = {float(g): _combined_h(list(figures("val", g).values())) for g in GAMMAS}
    best = max(val, key=lambda g: (val[g], -g))
    # The other rule: labels projected towards the trained vocabulary (chosen on validation too).
    vocab = shared_encoder().encode(vocabulary(leave_out))
    names_emb = {"aid": engine.label_embeddings(AID_NAMES), "eurosat": engine.label_embeddings(EUROSAT_NAMES)}

    def proj_figures(split: str, tau: float, k: int, alpha: float) -> dict:
        out = {}
        for (ds, sp), (_, labels, classes, held, _) in data.items():
            if sp == split:
                e = raw[ds, sp] @ project(names_emb[ds], vocab, tau, k, alpha).T
                out[ds] = leave_out_figures(e, labels, classes, held)
        return out

    grid = [(t, k, a) for t in (0.02, 0.05, 0.1) for k in (3, 10, 30) for a in (0.0, 0.3, 0.6)]
    pval = {f"tau={t} k={k} alpha={a}": _combined_h(list(proj_figures("val", t, k, a).values())) for t, k, a in grid}
    pbest = max(grid, key=lambda g: pval[f"tau={g[0]} k={g[1]} alpha={g[2]}"])
    # The third rule: labels expanded with their knowledge-base descriptions (alpha on validation).
    described = {ds: described_names(shared_encoder().encode, n)
                 for ds, n in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES))}

    def desc_figures(split: str, alpha: float) -> dict:
        out = {}
        for (ds, sp), (_, labels, classes, held, _) in data.items():
            if sp == split:
                base, full, _ = described[ds]
                out[ds] = leave_out_figures(raw[ds, sp] @ mix(base, full, alpha).T, labels, classes, held)
        return out

    alphas = (0.0, 0.25, 0.5, 0.75, 1.0)
    dval = {a: _combined_h(list(desc_figures("val", a).values())) for a in alphas}
    dbest = max(alphas, key=lambda a: (dval[a], a))
    return {"model_dir": str(model_dir or "resources/models"), "leave_out": list(leave_out),
            "described_validation_harmonic": dval, "described_alpha": dbest,
            "described_names": {ds: dict(zip(n, described[ds][2], strict=True))
                                for ds, n in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES))},
            "test_described": desc_figures("test", dbest),
            "familiarity": {ds: dict(zip(n, data[ds, "test"][4].round(3).tolist(), strict=True))
                            for ds, n in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES))},
            "validation_harmonic_by_gamma": val, "gamma": best,
            "test_without": figures("test", 0.0), "test_with": figures("test", best),
            "projection_validation_harmonic": pval, "projection_best": list(pbest),
            "test_projected": proj_figures("test", *pbest)}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model-dir", default=None)
    p.add_argument("--leave-out", default="default")
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    leave = DEFAULT_LEAVE_OUT if a.leave_out == "default" else tuple(x for x in a.leave_out.split(",") if x)
    res = run(Path(a.model_dir) if a.model_dir else None, leave, a.limit)
    import sys

    res["command"] = "python -m rs_sage_dev.seen_bias " + " ".join(argv if argv is not None else sys.argv[1:])
    text = json.dumps(res, indent=1)
    if a.out:
        Path(a.out).write_text(text + "\n")
    print(json.dumps({k: res[k] for k in ("gamma", "test_without", "test_with", "projection_best",
                                          "test_projected", "described_alpha", "test_described")}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
