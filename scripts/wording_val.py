"""Label-wording rows of the OOD suite on the *validation* images, with the most common errors.

Where wording changes (such as ``TextEncoder.split_joined``) are chosen, so that the test split
in ``python -m core eval --ood`` is run once, afterwards. Usage:
``.venv/bin/python scripts/wording_val.py [--no-split]`` (``--no-split``: embed labels as typed).
"""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from core.model.engine import Engine
    from rs_sage_dev.dataset import image_path, load_samples
    from rs_sage_dev.ood_eval import BROAD_NAMES, BROAD_UNSEEN, OTHER_NAMES, label_wording
    from rs_sage_dev.prepare import load_rgb

    engine = Engine.load(user_kb=False)
    if "--no-split" in sys.argv:
        engine.text.split_joined = lambda text: " ".join(text.split())
    samples = [s for s in load_samples() if s.split == "val"]
    tokens, queries = engine.encode_images([load_rgb(image_path(s)) for s in samples])
    rows = label_wording(engine, tokens, queries, samples)["rows"]
    truth = [s.label for s in samples]
    mappings = {**OTHER_NAMES, "broad land cover": BROAD_NAMES,
                "broad, never-trained wording": {c: BROAD_UNSEEN[b] for c, b in BROAD_NAMES.items()}}
    for name, r in rows.items():
        m = mappings[name]
        idx = [i for i, c in enumerate(truth) if c in m]
        got = engine.classify_encoded(tokens[idx], queries[idx], sorted(set(m.values())), top_k=1)
        errors = Counter(f"{m[truth[i]]} -> {g.label}" for i, g in zip(idx, got, strict=True) if g.label != m[truth[i]])
        print(f"{name:30s} {r['images']:4d} images  {100 * r['acc']:5.1f} %  "
              f"AID names {100 * r['aid_names_acc']:5.1f} %  ({100 * r['of_aid']:5.1f} %)  "
              f"errors: {dict(errors.most_common(3))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
