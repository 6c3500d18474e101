"""``python -m core classify`` and ``python -m core ask`` on image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .errors import RsSageError


def read_image(path: str) -> np.ndarray:
    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise RsSageError(f"Image not found: {path}")
    try:
        with Image.open(p) as im:
            return np.asarray(im.convert("RGB"))
    except (UnidentifiedImageError, OSError) as exc:
        raise RsSageError(f"Cannot read {path} as an image: {exc}") from exc


def _labels(args: argparse.Namespace) -> list[str] | None:
    if args.labels_file:
        p = Path(args.labels_file)
        if not p.is_file():
            raise RsSageError(f"Labels file not found: {p}")
        return [line.strip() for line in p.read_text(encoding="utf-8").splitlines() if line.strip()]
    return args.labels


def classify(args: argparse.Namespace) -> int:
    from .engine import Engine

    engine = Engine.load(args.model_dir)
    labels = _labels(args)
    for i in range(0, len(args.images), 64):
        paths = args.images[i:i + 64]
        results = engine.classify([read_image(p) for p in paths], labels, args.top_k)
        for path, r in zip(paths, results, strict=True):
            d = {"path": path, **r.to_dict()}
            if args.json:
                print(json.dumps(d))
            else:
                top = ", ".join(f"{lab} {s:.2f}" for lab, s in r.top[:3])
                print(f"{path}: {r.label} ({r.score:.2f})  [{top}]")
    return 0


def ask(args: argparse.Namespace) -> int:
    from .engine import Engine

    engine = Engine.load(args.model_dir)
    r = engine.ask(read_image(args.image), args.question)[0]
    print(json.dumps({"path": args.image, **r.to_dict()}) if args.json else r.text)
    return 0
