"""``python -m core calibrate``: the score under which a tile is marked *uncertain*, chosen on
validation images only, and written into the model's metadata.

The measure is the top probability rescaled so that chance is 0 (``engine.relative_score``), so
one threshold serves label lists of any length. It is the highest score under which answers are
wrong at least half the time (so *uncertain* means "a coin flip or worse", not "slightly less
sure than usual"), measured over the AID validation images, clean and as other sensors see them
(``ood_eval.degrade``), scored with the AID names and with broad land-cover names. Youden's J
(wrong flagged minus right flagged) was tried first: it flagged 19 % of validation answers, 82 %
of them right, too many to be useful on a map.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

CONDITIONS = ("clean", "10 m", "30 m", "Landsat colour", "haze", "30 m + Landsat colour + 16-bit")


def collect(engine, limit: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(relative scores, correct) for every validation image, condition and label list."""
    from core.model.engine import relative_score

    from .dataset import AID_LABEL_TEXT, DEFAULT_LABELS, image_path, load_samples
    from .ood_eval import BROAD_NAMES, degrade
    from .prepare import load_rgb

    samples = [s for s in load_samples() if s.split == "val"][:limit]
    images = [load_rgb(image_path(s)) for s in samples]
    broad = sorted(set(BROAD_NAMES.values()))
    scores, correct = [], []
    for cond in CONDITIONS:
        rng = np.random.default_rng(1)
        shifted = [degrade(im, cond, rng) for im in images]
        tokens, queries = engine.encode_images(shifted)
        for labels, truth in ((DEFAULT_LABELS, {s.label: AID_LABEL_TEXT[s.label] for s in samples}),
                              (broad, BROAD_NAMES)):
            idx = [i for i, s in enumerate(samples) if s.label in truth]
            for i, r in zip(idx, engine.classify_encoded(tokens[idx], queries[idx], labels, 1), strict=True):
                scores.append(relative_score(r.score, len(labels)))
                correct.append(r.label == truth[samples[i].label])
    return np.array(scores), np.array(correct)


MAX_FLAGGED_ACCURACY = 0.5


def choose_threshold(scores: np.ndarray, correct: np.ndarray) -> dict:
    """The highest threshold whose flagged answers are right at most half the time, with the
    rates it gives."""
    best = {"threshold": 0.0}
    wrong = ~correct
    for t in np.round(np.arange(0.01, 1.0, 0.01), 2):
        flagged = scores < t
        if flagged.any() and correct[flagged].mean() <= MAX_FLAGGED_ACCURACY:
            best = {"threshold": float(t)}
    flagged = scores < best["threshold"]
    best["wrong_flagged"] = float(flagged[wrong].mean()) if wrong.any() else 0.0
    best["right_flagged"] = float(flagged[correct].mean()) if correct.any() else 0.0
    best.update(n=int(len(scores)), accuracy_all=float(correct.mean()),
                accuracy_kept=float(correct[~flagged].mean()) if (~flagged).any() else 0.0,
                accuracy_flagged=float(correct[flagged].mean()) if flagged.any() else 0.0,
                flagged_share=float(flagged.mean()))
    return best


def write_threshold(model_dir: Path, threshold: float) -> None:
    """Into model.json and both ONNX files' metadata (the engine reads the experts file's)."""
    import onnx

    sidecar = model_dir / "model.json"
    meta = json.loads(sidecar.read_text())
    meta["uncertain_below"] = threshold
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    for name in ("encoder.onnx", "experts.onnx"):
        m = onnx.load(str(model_dir / name))
        props = {p.key: p.value for p in m.metadata_props}
        props["uncertain_below"] = json.dumps(threshold)
        del m.metadata_props[:]
        for k, v in props.items():
            m.metadata_props.add(key=k, value=v)
        onnx.save(m, str(model_dir / name))
    from core.model.model_files import write_checksums

    write_checksums(model_dir)


def main(args: argparse.Namespace) -> int:
    from core.model.engine import Engine
    from core.setup.paths import MODEL_DIR

    model_dir = Path(args.model_dir or MODEL_DIR)
    engine = Engine.load(model_dir, user_kb=False)
    scores, correct = collect(engine, args.limit)
    Path(".cache").mkdir(exist_ok=True)
    np.savez(".cache/uncertainty_scores.npz", scores=scores, correct=correct)  # re-choosable
    res = choose_threshold(scores, correct)
    res["conditions"] = list(CONDITIONS)
    print(json.dumps(res, indent=2))
    if not args.dry_run:
        write_threshold(model_dir, res["threshold"])
        Path(args.report).write_text(json.dumps(res, indent=2) + "\n")
        print(f"wrote uncertain_below={res['threshold']} into {model_dir} and {args.report}")
    return 0
