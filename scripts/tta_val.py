"""Validation check of test-time augmentation: does averaging rotated views help?

Runs the shipped engine with 1, 2, 4 and 8 views (``core.model.engine.VIEW_SETS``) on the validation
images only, never test. The engine's default number of views was chosen from this output.
Run: ``.venv/bin/python scripts/tta_val.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.model.engine import VIEW_SETS, Engine  # noqa: E402
from rs_sage_dev.dataset import DEFAULT_LABELS, image_path, load_samples  # noqa: E402
from rs_sage_dev.prepare import load_rgb  # noqa: E402


def main() -> None:
    samples = [s for s in load_samples() if s.split == "val"]
    images = [load_rgb(image_path(s)) for s in samples]
    truth = [DEFAULT_LABELS[s.label_index] for s in samples]
    engine = Engine.load(user_kb=False)
    for views in sorted(VIEW_SETS):
        engine.views = views
        hits = sum(r.label == t for r, t in zip(engine.classify(images), truth, strict=True))
        print(f"{views} view(s) {VIEW_SETS[views]}: val top-1 {hits}/{len(truth)} = {hits / len(truth) * 100:.2f} %")


if __name__ == "__main__":
    main()
