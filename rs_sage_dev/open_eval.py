"""``python -m core open-eval``: open-vocabulary and "none of these" figures of a model.

- Accuracy with each data set's plain names: AID test (RSICD split, 30 names) and our EuroSAT
  test split (10 names), with the engine's default views.
- Leave-classes-out: for a model trained without some classes (``--leave-out``), accuracy on the
  images of the removed classes by name only (zero-shot, among all names of their data set), on
  the kept classes, and their harmonic mean. The same figures for any other model on the same
  names, so the shipped model of today can stand beside it.
- "None of these": the cosine threshold under which a tile matches none of the given labels,
  chosen on *validation* images (AID val + EuroSAT val): per image, the cosine with its own name
  is a positive, the best cosine with the other names of its data set (the right name left out
  of the list) a negative; the threshold maximises their balanced accuracy. Then, on test images,
  the share flagged with the true name absent from a one-label list, and noise, flat colours and
  stripes flagged.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .dataset import AID_CLASSES, AID_LABEL_TEXT
from .eurosat import EUROSAT_CLASSES, EUROSAT_TEXTS

# The leave-classes-out stand-in for held-back names (docs/results.md): 6 AID, 3 EuroSAT classes
# whose images and texts the stand-in model never sees.
DEFAULT_LEAVE_OUT = ("aid:Airport", "aid:Beach", "aid:Desert", "aid:Pond", "aid:StorageTanks", "aid:Viaduct",
                         "eurosat:Highway", "eurosat:Pasture", "eurosat:SeaLake")
AID_NAMES = [AID_LABEL_TEXT[c] for c in AID_CLASSES]
EUROSAT_NAMES = [EUROSAT_TEXTS[c][0] for c in EUROSAT_CLASSES]


def split_images(dataset: str, split: str, limit: int | None = None) -> tuple[list[Path], np.ndarray, list[str]]:
    """(image paths, class index within the data set, class names) of one split."""
    from core.setup.paths import data_root

    if dataset == "aid":
        from .dataset import image_path, load_samples

        s = [x for x in load_samples() if x.split == split][:limit]
        return [image_path(x) for x in s], np.array([AID_CLASSES.index(x.label) for x in s]), AID_CLASSES
    from .eurosat import load_eurosat

    s = [x for x in load_eurosat() if x.split == split]
    if limit:
        s = s[::max(1, len(s) // limit)][:limit]
    base = Path(data_root()) / "eurosat_rgb"
    return [base / x.image for x in s], np.array([EUROSAT_CLASSES.index(x.label) for x in s]), EUROSAT_CLASSES


def embed_paths(engine, paths: list[Path], batch: int = 128) -> np.ndarray:
    from .prepare import load_rgb

    out = [engine.embed([load_rgb(p) for p in paths[i:i + batch]]) for i in range(0, len(paths), batch)]
    return np.concatenate(out) if out else np.zeros((0, 384), np.float32)


# The threshold must hold for imagery as other sensors see it, not only for the training sensors:
# validation images are also scored as ``ood_eval.degrade`` makes them (coarser, Landsat colour,
# haze, all together). Chosen on clean validation images alone it was 0.255, and every tile of
# the 5 m sample fell under it with any label list.
CALIBRATION_CONDITIONS = ("clean", "30 m", "Landsat colour", "haze", "30 m + Landsat colour + 16-bit")


def embed_degraded(engine, paths: list[Path], cond: str, batch: int = 128) -> np.ndarray:
    from .ood_eval import degrade
    from .prepare import load_rgb

    rng = np.random.default_rng(1)
    out = [engine.embed([degrade(load_rgb(p), cond, rng) for p in paths[i:i + batch]])
           for i in range(0, len(paths), batch)]
    return np.concatenate(out)


def per_class_accuracy(cos: np.ndarray, labels: np.ndarray, classes: list[str]) -> dict[str, float]:
    pred = cos.argmax(1)
    return {c: float((pred[labels == i] == i).mean()) for i, c in enumerate(classes) if (labels == i).any()}


def leave_out_figures(cos: np.ndarray, labels: np.ndarray, classes: list[str], held: set[str]) -> dict:
    """Seen / unseen (zero-shot by name) accuracy over images, and their harmonic mean."""
    pred = cos.argmax(1)
    ok = pred == labels
    unseen = np.array([classes[y] in held for y in labels])
    s = float(ok[~unseen].mean()) if (~unseen).any() else None
    u = float(ok[unseen].mean()) if unseen.any() else None
    h = 2 * s * u / (s + u) if s is not None and u is not None and s + u > 0 else None
    # Zero-shot among the held-out names only (the user's list holds just the new names).
    held_idx = [i for i, c in enumerate(classes) if c in held]
    zsl = None
    if unseen.any():
        sub = cos[unseen][:, held_idx]
        zsl = float((np.array(held_idx)[sub.argmax(1)] == labels[unseen]).mean())
    return {"seen": s, "unseen": u, "harmonic": h, "unseen_among_unseen_names": zsl,
            "n_seen": int((~unseen).sum()), "n_unseen": int(unseen.sum())}


KEEP_RIGHT = 0.95


def balanced_threshold(pos: np.ndarray, neg: np.ndarray, keep: float = KEEP_RIGHT) -> dict:
    """The highest threshold that keeps ``keep`` of the right names (over clean and shifted
    validation images), so "no label fits" means it: the balanced-accuracy optimum (kept as
    ``balanced``) kept only 82 % of the right names on shifted views and flagged most tiles of the
    5 m sample whatever the labels."""
    grid = np.round(np.arange(-0.2, 0.9, 0.005), 3)
    bal = max(grid, key=lambda t: (pos >= t).mean() + (neg < t).mean())
    best = max([t for t in grid if (pos >= t).mean() >= keep] or [grid[0]])
    return {"threshold": float(best), "kept_right": float((pos >= best).mean()),
            "flagged_wrong": float((neg < best).mean()), "n": int(len(pos)), "rule": f"keep {keep:.0%} of right names",
            "balanced": {"threshold": float(bal), "kept_right": float((pos >= bal).mean()),
                         "flagged_wrong": float((neg < bal).mean())}}


def open_set_scores(cos: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(cosine with the right name, best cosine with any other name) per image."""
    pos = cos[np.arange(len(labels)), labels]
    other = cos.copy()
    other[np.arange(len(labels)), labels] = -np.inf
    return pos, other.max(1)


def synthetic_non_scenes(n: int, size: int = 160, seed: int = 0) -> dict[str, list[np.ndarray]]:
    """Noise (uniform, Gaussian, salt-and-pepper), flat colours and stripes of random period,
    angle of 0 or 90 degrees and colours: images that are no scene."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[np.ndarray]] = {"noise": [], "flat colour": [], "stripes": []}
    for i in range(n):
        kind = i % 3
        if kind == 0:
            img = rng.integers(0, 256, (size, size, 3))
        elif kind == 1:
            img = np.clip(rng.normal(rng.uniform(60, 200), rng.uniform(20, 60), (size, size, 3)), 0, 255)
        else:
            img = np.where(rng.random((size, size, 1)) < 0.5, 0, 255).repeat(3, 2)
        out["noise"].append(img.astype(np.uint8))
        out["flat colour"].append(np.broadcast_to(rng.integers(0, 256, 3), (size, size, 3)).astype(np.uint8).copy())
        period = int(rng.integers(4, 48))
        a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
        line = (np.arange(size) // max(1, period // 2)) % 2
        img = np.where(line[:, None, None] == 1, a, b) * np.ones((1, size, 1))
        out["stripes"].append((img if rng.random() < 0.5 else img.transpose(1, 0, 2)).astype(np.uint8))
    return out


def run_open_eval(model_dir: Path | None, leave_out: tuple[str, ...] = (), limit: int | None = None,
                  calibrate: bool = False, threads: int | None = None) -> dict:
    from core.model.engine import Engine

    engine = Engine.load(model_dir, user_kb=False, threads=threads)
    text = engine.label_embeddings
    res: dict = {"model_dir": str(model_dir or "resources/models"), "views": engine.views,
                 "precision": [engine.precision, engine.experts_precision]}
    val_pos, val_neg = [], []
    for ds, names in (("aid", AID_NAMES), ("eurosat", EUROSAT_NAMES)):
        held = {c.split(":", 1)[1] for c in leave_out if c.startswith(ds + ":")}
        paths, labels, classes = split_images(ds, "test", limit)
        cos = embed_paths(engine, paths) @ text(names).T
        res[ds] = {"test_accuracy": float((cos.argmax(1) == labels).mean()), "n": len(labels),
                   "per_class": per_class_accuracy(cos, labels, classes),
                   "leave_out": leave_out_figures(cos, labels, classes, held) if held else None}
        pos, neg = open_set_scores(cos, labels)
        res[ds]["test_pos_neg"] = (pos, neg)
        if calibrate:
            vpaths, vlabels, _ = split_images(ds, "val", limit)
            for cond in CALIBRATION_CONDITIONS:
                emb = embed_paths(engine, vpaths) if cond == "clean" else embed_degraded(engine, vpaths, cond)
                vp, vn = open_set_scores(emb @ text(names).T, vlabels)
                val_pos.append(vp)
                val_neg.append(vn)
    tau = engine.match_below
    if calibrate:
        res["open_set_validation"] = balanced_threshold(np.concatenate(val_pos), np.concatenate(val_neg))
        tau = res["open_set_validation"]["threshold"]
    res["match_below"] = tau
    for ds in ("aid", "eurosat"):
        pos, neg = res[ds].pop("test_pos_neg")
        res[ds]["open_set_test"] = {"right_name_kept": float((pos >= tau).mean()),
                                    "right_name_absent_flagged": float((neg < tau).mean())}
    engine.match_below = tau
    flagged = {}
    for kind, imgs in synthetic_non_scenes(60).items():
        r = engine.classify(imgs, list(dict.fromkeys(AID_NAMES + EUROSAT_NAMES)), 1)
        flagged[kind] = float(np.mean([x.uncertain for x in r]))
    res["non_scenes_flagged"] = flagged
    return res


def write_settings(model_dir: Path, **values) -> None:
    """Into model.json and every ONNX file's metadata (float and int8)."""
    import onnx

    from core.model.model_files import write_checksums

    sidecar = model_dir / "model.json"
    meta = json.loads(sidecar.read_text())
    meta.update(values)
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    for path in sorted(model_dir.glob("*.onnx")):
        m = onnx.load(str(path))
        props = {p.key: p.value for p in m.metadata_props}
        props.update({k: json.dumps(v) for k, v in values.items()})
        del m.metadata_props[:]
        for k, v in props.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, str(path))
    write_checksums(model_dir)


START, END = "<!-- open-vocabulary:start -->", "<!-- open-vocabulary:end -->"


def _pct(v) -> str:
    return "-" if v is None else f"{100 * v:.1f} %"


def combined(res: dict) -> dict:
    """Seen / unseen / harmonic over the images of both data sets together."""
    s = u = ns = nu = 0.0
    for ds in ("aid", "eurosat"):
        lo = res[ds].get("leave_out")
        if not lo:
            return {}
        if lo["seen"] is not None:
            s += lo["seen"] * lo["n_seen"]
            ns += lo["n_seen"]
        if lo["unseen"] is not None:
            u += lo["unseen"] * lo["n_unseen"]
            nu += lo["n_unseen"]
    s, u = s / max(ns, 1), u / max(nu, 1)
    return {"seen": s, "unseen": u, "harmonic": 2 * s * u / (s + u) if s + u else 0.0}


def fill_leave_out(res: dict, leave_out: tuple[str, ...] = DEFAULT_LEAVE_OUT) -> dict:
    """Seen / unseen figures of a run made without ``--leave-out``, from its per-class accuracy
    (classified among all names of the data set) and the test split's class sizes."""
    for ds in ("aid", "eurosat"):
        if res[ds].get("leave_out"):
            continue
        _, labels, classes = split_images(ds, "test")
        held = {c.split(":", 1)[1] for c in leave_out if c.startswith(ds + ":")}
        n = {c: int((labels == i).sum()) for i, c in enumerate(classes)}
        pc = res[ds]["per_class"]
        seen_n = sum(n[c] for c in classes if c not in held)
        un_n = sum(n[c] for c in classes if c in held)
        s = sum(pc[c] * n[c] for c in classes if c not in held) / seen_n
        u = sum(pc[c] * n[c] for c in classes if c in held) / un_n
        res[ds]["leave_out"] = {"seen": s, "unseen": u, "harmonic": 2 * s * u / (s + u) if s + u else 0.0,
                                "unseen_among_unseen_names": None, "n_seen": seen_n, "n_unseen": un_n}
    return res


def report(runs: list[tuple[str, dict]]) -> str:
    """The open-vocabulary section of docs/results.md from ``open-eval`` JSON results."""
    runs = [(name, fill_leave_out(r)) for name, r in runs]
    lines = [START, "## Open vocabulary and 'none of these'", "",
             "Produced by `python -m core open-eval` (the command of each row is in its JSON file under "
             "`docs/open_vocab/`); test images only: the RSICD test split of AID (1,027) and our EuroSAT test "
             "split (12 % of the files by a hash of the name, 3,093 images; `docs/data.md`). Each data set is "
             "scored with its own plain names (30 / 10), 4 views per image.", "",
             "Leave-classes-out (the visible stand-in for held-back names): the stand-in model was trained "
             "without the images *and* texts of " + ", ".join(DEFAULT_LEAVE_OUT) + ". *Unseen* is the accuracy "
             "on the images of those classes, named only at test time, among all names of their data set; "
             "*seen* on the other classes; H their harmonic mean. The same figures of the other models are on "
             "the same names (they saw every class in training, 0.1.0 saw no EuroSAT image).", "",
             "| model | AID test | EuroSAT test | AID unseen / seen / H | EuroSAT unseen / seen / H "
             "| both unseen / seen / H | unseen among the unseen names only (AID / EuroSAT) |",
             "|---|---|---|---|---|---|---|"]
    for name, r in runs:
        cells = []
        for ds in ("aid", "eurosat"):
            lo = r[ds].get("leave_out") or {}
            cells.append(f"{_pct(lo.get('unseen'))} / {_pct(lo.get('seen'))} / {_pct(lo.get('harmonic'))}")
        c = combined(r)
        zsl = " / ".join(_pct((r[ds].get("leave_out") or {}).get("unseen_among_unseen_names"))
                         for ds in ("aid", "eurosat"))
        lines.append(f"| {name} | {_pct(r['aid']['test_accuracy'])} | {_pct(r['eurosat']['test_accuracy'])} | "
                     f"{cells[0]} | {cells[1]} | {_pct(c.get('unseen'))} / {_pct(c.get('seen'))} / "
                     f"{_pct(c.get('harmonic'))} | {zsl} |")
    lines += ["", "EuroSAT test, per class (10 plain names):", "",
              "| class | " + " | ".join(n for n, _ in runs) + " |", "|---|" + "---|" * len(runs)]
    for c in EUROSAT_CLASSES:
        lines.append(f"| {EUROSAT_TEXTS[c][0]} | " + " | ".join(_pct(r['eurosat']['per_class'].get(c))
                                                                for _, r in runs) + " |")
    lines += ["", "'None of these' (a cosine threshold chosen on validation images, `match_below`; test "
              "images here): *kept* = the right name in the list is not flagged; *flagged* = with the right "
              "name left out of the list, the tile is flagged 'no label fits'; synthetic noise, flat colours "
              "and stripes (60 each) flagged as not a scene.", "",
              "| model | threshold | AID kept / flagged | EuroSAT kept / flagged | noise / flat / stripes flagged |",
              "|---|---|---|---|---|"]
    for name, r in runs:
        a, e, n = r["aid"]["open_set_test"], r["eurosat"]["open_set_test"], r["non_scenes_flagged"]
        lines.append(f"| {name} | {r['match_below']:.3f} | {_pct(a['right_name_kept'])} / "
                     f"{_pct(a['right_name_absent_flagged'])} | {_pct(e['right_name_kept'])} / "
                     f"{_pct(e['right_name_absent_flagged'])} | {_pct(n['noise'])} / {_pct(n['flat colour'])} / "
                     f"{_pct(n['stripes'])} |")
    return "\n".join(lines + [END]) + "\n"


def write_report(results_md: Path, runs: list[tuple[str, dict]]) -> None:
    """The section in ``results_md`` and in ``results_notes.md`` beside it, the hand-written part
    that ``python -m core eval`` appends when it writes the page again (so neither loses it)."""
    section = report(runs)
    for path in (results_md, results_md.parent / "results_notes.md"):
        text = path.read_text() if path.is_file() else ""
        if START in text and END in text:
            text = text[:text.index(START)] + section + text[text.index(END) + len(END) + 1:]
        elif path == results_md:
            text = text.rstrip() + "\n\n" + section
        else:
            continue
        path.write_text(text)
