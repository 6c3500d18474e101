"""``python -m core classify`` and ``python -m core ask`` on image files."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from ..errors import RsSageError

MAX_IMAGE_PIXELS = 4096 * 4096  # one scene: larger images belong in ``python -m core label``


def read_image(path: str) -> np.ndarray:
    """An image file as RGB uint8. 16-bit and float images are stretched (2-98 % per band, as
    the labeller does) instead of being clipped to white; huge images are refused by size."""
    import warnings

    from PIL import Image, UnidentifiedImageError

    p = Path(path)
    if not p.is_file():
        raise RsSageError(f"Image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(p) as im:
                w, h = im.size
                if w * h > MAX_IMAGE_PIXELS:
                    raise RsSageError(f"{path} is {w} x {h} px, more than one scene ({MAX_IMAGE_PIXELS:,} px); "
                                      "label it as a raster with 'python -m core label' instead.")
                if im.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
                    return _stretch_to_rgb(np.asarray(im, dtype=np.float64))
                return np.asarray(im.convert("RGB"))
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise RsSageError(f"{path} is too large to open as one image: {exc}") from exc
    except (UnidentifiedImageError, OSError) as exc:
        raise RsSageError(f"Cannot read {path} as an image: {exc}") from exc


def _stretch_to_rgb(a: np.ndarray) -> np.ndarray:
    finite = a[np.isfinite(a)]
    if finite.size == 0:
        raise RsSageError("The image holds no finite values.")
    lo, hi = np.percentile(finite, [2, 98])
    grey = np.clip((np.nan_to_num(a, nan=lo) - lo) / max(hi - lo, 1e-6) * 255 + 0.5, 0, 255).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=2)


def _labels(args: argparse.Namespace) -> list[str] | None:
    """--labels (separate arguments, or 'a, b, c') or --labels-file; the panel's rule (core.model.label_text)."""
    from ..model.label_text import parse_labels

    if args.labels_file:
        p = Path(args.labels_file)
        if not p.is_file():
            raise RsSageError(f"Labels file not found: {p}")
        try:
            text = p.read_bytes()[:1_000_000].decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise RsSageError(f"The labels file {p} is not UTF-8 text (byte {exc.start}); save it as UTF-8, "
                              "one class name per line.") from exc
        if "\0" in text:
            raise RsSageError(f"The labels file {p} is binary, not a text file of class names.")
        labels = parse_labels(text)
        if not labels:
            raise RsSageError(f"The labels file {p} holds no class names.")
        return labels
    if args.labels is None:
        return None
    labels = parse_labels(args.labels)
    if not labels:  # "--labels ''" or ",,, ;" must not silently become the 30 AID names
        raise RsSageError("--labels holds no class names; leave it out for the default classes.")
    return labels


def classify(args: argparse.Namespace) -> int:
    from ..model.engine import Engine

    if args.top_k < 1:
        raise RsSageError(f"--top-k must be at least 1, not {args.top_k}.")
    labels = _labels(args)
    engine = Engine.load(args.model_dir)
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
    from ..model.engine import Engine
    from ..questions.question_parse import parse_question

    parsed = parse_question(args.question)  # refused questions stop here, before the model loads
    engine = Engine.load(args.model_dir)
    r = engine.ask(read_image(args.image), args.question)[0]
    if parsed.type in ("share", "comparison", "where", "open"):
        # The image is one tile: the region answer over that one tile (a share is 0 or 100 %).
        from ..questions.regions import RURAL_URBAN_Q, TileAnswer, region_answer

        ru = engine.ask(read_image(args.image), RURAL_URBAN_Q) if parsed.type == "open" else []
        answer, conf, _, shares, text = region_answer(parsed, [TileAnswer((0, 0, 1, 1), r.answer, r.confidence,
                                                                          r.scene)], [r], ru, 0.0)
        r.answer, r.confidence, r.text = answer, round(conf, 4), text
    print(json.dumps({"path": args.image, **r.to_dict()}) if args.json else r.text)
    return 0
