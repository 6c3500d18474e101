"""``python -m rs_sage_dev.val_gate MODEL_DIR [...]``: the validation figures a new model must
reach before its test split is run, out of domain included.

Why: model 0.2.0 shipped on AID and EuroSAT validation accuracy alone and lost 7-14 pt on coarse
imagery and on broad wording it was never trained on; nobody looked, because the out-of-domain
suite ran on the test split afterwards. Here the same rows are measured on *validation* images
only (the sensor-shift rows already use AID validation; the label-wording rows are taken on AID
validation instead of test), so they can decide shipping without touching the test split.

Prints and writes one JSON object per model folder (``--out``); the engine is float32, 4 views.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

GATE_CONDITIONS = ("clean", "30 m", "30 m from a 5 m scene", "30 m + Landsat colour + 16-bit")
GATE_WORDING = ("broad land cover", "broad, never-trained wording")


def val_figures(model_dir: Path) -> dict:
    from core.model.engine import Engine

    from .dataset import image_path, load_samples
    from .int8_layers import validation_predictions
    from .ood_eval import label_wording, sensor_shift
    from .prepare import load_rgb

    t0 = time.time()
    p = validation_predictions(model_dir, cache=False)
    row: dict = {"model_dir": str(model_dir)}
    for ds in ("aid", "eurosat"):
        row[f"{ds}_val"] = f"{int((p[ds] == p[f'{ds}_labels']).sum())}/{len(p[ds])}"
    engine = Engine.load(model_dir, user_kb=False, precision="float32")
    ss = sensor_shift(engine, conditions=GATE_CONDITIONS)["conditions"]
    row["sensor_shift_val"] = {c: round(100 * ss[c]["acc"], 1) for c in GATE_CONDITIONS}
    samples = [s for s in load_samples() if s.split == "val"]
    tokens, queries = engine.encode_images([load_rgb(image_path(s)) for s in samples])
    lw = label_wording(engine, tokens, queries, samples)["rows"]
    row["wording_val"] = {n: round(100 * lw[n]["acc"], 1) for n in GATE_WORDING}
    row["wording_all_val"] = {n: round(100 * v["acc"], 1) for n, v in lw.items()}  # other benchmarks' names too
    row["wording_val_images"] = lw[GATE_WORDING[0]]["images"]
    row["never_trained_per_name"] = never_trained_per_name(engine, tokens, queries, samples)
    row["seconds"] = round(time.time() - t0, 1)
    return row


def never_trained_per_name(engine, tokens, queries, samples) -> dict[str, str]:
    """Right / images for each never-trained broad wording: which concept the loss is in."""
    from .ood_eval import BROAD_NAMES, BROAD_UNSEEN

    idx = [i for i, s in enumerate(samples) if s.label in BROAD_NAMES]
    truth = [BROAD_UNSEEN[BROAD_NAMES[samples[i].label]] for i in idx]
    got = engine.classify_encoded(tokens[idx], queries[idx], sorted(set(BROAD_UNSEEN.values())), top_k=1)
    out: dict[str, list[int]] = {}
    for t, r in zip(truth, got, strict=True):
        out.setdefault(t, []).append(int(r.label == t))
    return {t: f"{sum(v)}/{len(v)}" for t, v in sorted(out.items())}


URBAN_CLASSES = ("Industrial", "DenseResidential", "MediumResidential", "Commercial", "Center")
WORD_PROBES = ("town", "woods", "grass cover", "exposed ground", "fields", "lakes and rivers", "urban area",
               "city", "buildings", "settlement", "village", "houses", "industrial area")


def urban_word_cosines(model_dir: Path) -> dict[str, float]:
    """Mean cosine of the urban AID validation images' scene embeddings with broad words: where
    "town" stands against "woods" and the trained built-up words (why the wording row fails)."""
    import numpy as np

    from core.model.engine import Engine

    from .dataset import image_path, load_samples
    from .open_eval import embed_paths

    paths = [image_path(s) for s in load_samples() if s.split == "val" and s.label in URBAN_CLASSES]
    engine = Engine.load(model_dir, user_kb=False, precision="float32")
    emb = embed_paths(engine, paths)
    words = engine.label_embeddings(list(WORD_PROBES))
    words = words / np.linalg.norm(words, axis=1, keepdims=True)
    cos = (emb / np.linalg.norm(emb, axis=1, keepdims=True)) @ words.T
    return {"images": len(paths), **{w: round(float(cos[:, i].mean()), 3) for i, w in enumerate(WORD_PROBES)},
            "text_cosine_to_town": {w: round(float(words[0] @ words[i]), 2) for i, w in enumerate(WORD_PROBES)}}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m rs_sage_dev.val_gate", description=__doc__.split("\n\n")[0])
    ap.add_argument("model_dirs", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, default=None, help="append the rows to this .jsonl file")
    ap.add_argument("--urban-words", action="store_true",
                    help="instead: mean cosine of the urban validation images with broad words")
    args = ap.parse_args(argv)
    for d in args.model_dirs:
        emit_row({"model_dir": str(d), **urban_word_cosines(d)} if args.urban_words else val_figures(d), args.out)
    return 0


def emit_row(row: dict, out: str | Path | None) -> None:
    """Print one row as JSON and append it to ``out`` (a selection log) when given."""
    print(json.dumps(row), flush=True)
    if out:
        with open(out, "a") as f:
            f.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    raise SystemExit(main())
