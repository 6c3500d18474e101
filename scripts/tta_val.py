"""Validation check of test-time augmentation: does averaging the 8 dihedral views help?

Uses the shipped engine on the validation images only (never test), one classify call per
view, and averages the class probabilities. Run: ``.venv/bin/python scripts/tta_val.py``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from core.dataset import DEFAULT_LABELS, image_path, load_samples  # noqa: E402
from core.engine import Engine  # noqa: E402
from core.prepare import load_rgb  # noqa: E402


def dihedral(img: np.ndarray, k: int) -> np.ndarray:
    out = np.rot90(img, k % 4)
    return np.ascontiguousarray(out[:, ::-1] if k >= 4 else out)


def main() -> None:
    engine = Engine.load(user_kb=False)
    samples = [s for s in load_samples() if s.split == "val"]
    images = [load_rgb(image_path(s)) for s in samples]
    truth = np.array([s.label_index for s in samples])
    probs = []
    for k in range(8):
        results = engine.classify([dihedral(im, k) for im in images], top_k=len(DEFAULT_LABELS))
        p = np.zeros((len(images), len(DEFAULT_LABELS)))
        for i, r in enumerate(results):
            for label, score in r.top:
                p[i, DEFAULT_LABELS.index(label)] = score
        probs.append(p)
    probs = np.stack(probs)
    for name, views in (("1 view", [0]), ("2 views (id, flip)", [0, 4]),
                        ("4 rotations", [0, 1, 2, 3]), ("8 dihedral views", list(range(8)))):
        hits = int((probs[views].mean(0).argmax(1) == truth).sum())
        print(f"{name:20s} val top-1 {hits}/{len(truth)} = {hits / len(truth) * 100:.2f} %")


if __name__ == "__main__":
    main()
