"""Component ablations measured out of domain (issue: generalisation, part 4).

Each variant (full, no_retrieval, shared_expert, scene_only) is retrained on the same augmented
cache with the same seed and budget (``--epochs``, default 2; the shipped model has 10), exported
to ONNX, and run through the out-of-domain suite (``rs_sage_dev.ood_eval``) with one view per image.
Resumes: trained variants are not retrained. Writes docs/ablation_ood.json.

    .venv/bin/python scripts/ablation_ood.py [--epochs 2] [--train-only]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

VARIANTS = ["full", "no_retrieval", "shared_expert", "scene_only"]


def main() -> int:
    from rs_sage_dev.training import TrainConfig, train

    ap = argparse.ArgumentParser()
    ap.add_argument("--epochs", type=int, default=2)
    ap.add_argument("--root", default=".checkpoints/ablation_ood")
    ap.add_argument("--train-only", action="store_true")
    args = ap.parse_args()
    root = Path(args.root)
    for v in VARIANTS:
        out = root / v
        if not (out / "model.pt").is_file():
            t0 = time.time()
            print(f"training {v} ({args.epochs} epochs)", flush=True)
            train(TrainConfig(out=str(out), epochs=args.epochs, variant=v))
            (out / "wall_seconds.txt").write_text(f"{time.time() - t0:.0f}\n")
    if args.train_only:
        return 0
    from core.model.engine import Engine
    from rs_sage_dev.evaluate import load_test_images
    from rs_sage_dev.export import export_onnx
    from rs_sage_dev.ood_eval import evaluate_ood

    samples, images = load_test_images()
    rows = {}
    for v in VARIANTS:
        onnx_dir = root / v / "onnx"
        if not (onnx_dir / "experts.onnx").is_file():
            export_onnx(root / v / "model.pt", onnx_dir)
        engine = Engine.load(onnx_dir, user_kb=False, views=1)
        tokens, queries = engine.encode_images(images)
        from rs_sage_dev.evaluate import classification_metrics

        ood = evaluate_ood(engine, tokens, queries, samples)
        ood["aid_test_top1"] = classification_metrics(engine, tokens, queries, samples)["top1"]
        ood["log"] = str(root / v / "log.jsonl")
        rows[v] = ood
        print(v, json.dumps({"aid": ood["aid_test_top1"],
                             "sensor": {k: round(r["acc"], 4) for k, r in ood["sensor_shift"]["conditions"].items()}}),
              flush=True)
    (ROOT / "docs" / "ablation_ood.json").write_text(json.dumps({"epochs": args.epochs, "seed": 0, "views": 1,
                                                                  "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
