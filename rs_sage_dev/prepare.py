"""Training caches: frozen-stem features of augmented views, and text embeddings.

Views are made once (random resized crop over a wide scale range, one of the 8 dihedral
transforms, colour jitter, and a random sensor shift from ``sensor_shift``: coarser resolution,
colour balance, haze, a 16-bit stretch, noise, JPEG; overhead imagery has no "up" and users'
imagery is not Google Earth's) and passed through the frozen stem with onnxruntime, which runs
it about 35x faster than torch eager on this CPU. Training then samples one cached view per
image per epoch. Test and validation images get one clean view each.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

from .dataset import image_path, load_samples

INPUT_SIZE = 160
VIEWS = 8
AUGMENT_VERSION = 2  # 1: crop/flip/jitter only; 2: + sensor shift and wider scale range


def load_rgb(path: Path) -> np.ndarray:
    from PIL import Image

    with Image.open(path) as im:
        return np.asarray(im.convert("RGB"))


def resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    return np.asarray(Image.fromarray(img).resize((size, size), Image.BILINEAR))


def augment(img: np.ndarray, rng: np.random.Generator, size: int = INPUT_SIZE) -> np.ndarray:
    h, w = img.shape[:2]
    scale = rng.uniform(0.35, 1.0)
    ratio = np.exp(rng.uniform(np.log(3 / 4), np.log(4 / 3)))
    ch = int(round(min(h, np.sqrt(scale * h * w / ratio))))
    cw = int(round(min(w, np.sqrt(scale * h * w * ratio))))
    y0, x0 = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
    out = resize(np.ascontiguousarray(img[y0:y0 + ch, x0:x0 + cw]), size).astype(np.float32)
    out = np.rot90(out, int(rng.integers(4)))
    if rng.random() < 0.5:
        out = out[:, ::-1]
    gray = out.mean(axis=2, keepdims=True)
    out = gray + (out - gray) * rng.uniform(0.75, 1.25)  # saturation
    out = out.mean() + (out - out.mean()) * rng.uniform(0.8, 1.2)  # contrast
    out = np.clip(out * rng.uniform(0.8, 1.2), 0, 255)  # brightness
    if rng.random() < 0.6:
        from .sensor_shift import random_sensor

        out = random_sensor(out, rng)
    return np.clip(out, 0, 255)


def normalise(batch: np.ndarray) -> np.ndarray:
    """uint8/float HxWx3 batch -> NCHW float32 in the backbone's range."""
    x = batch.astype(np.float32) / 255.0
    x = (x - 0.5) / 0.5
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def export_stem(backbone: str, path: Path, size: int = INPUT_SIZE, frozen_blocks: int | None = None) -> None:
    import torch

    from .backbone import Stem, load_efficientnet, stem_blocks

    stem = Stem(load_efficientnet(backbone), stem_blocks(backbone, frozen_blocks)).eval()
    torch.onnx.export(stem, torch.zeros(1, 3, size, size), str(path), dynamo=False,
                      input_names=["image"], output_names=["features"], opset_version=17,
                      dynamic_axes={"image": {0: "batch"}, "features": {0: "batch"}})


def stem_settings(backbone: str, size: int, frozen_blocks: int | None) -> dict:
    """What a cache's stem features depend on; training refuses a cache made otherwise."""
    from .backbone import stem_blocks

    return {"backbone": backbone, "input_size": size, "frozen_blocks": stem_blocks(backbone, frozen_blocks),
            "augment": AUGMENT_VERSION}


def prepare(cache: Path, backbone: str = "efficientnet-lite0", views: int = VIEWS, seed: int = 0,
            size: int = INPUT_SIZE, frozen_blocks: int | None = None) -> None:
    from core.model.text_encoder import shared_encoder

    from .questions import generate

    cache.mkdir(parents=True, exist_ok=True)
    samples = load_samples()
    t0 = time.time()
    items = generate(samples)
    enc = shared_encoder()
    questions = sorted({i.question for i in items})
    np.save(cache / "question_emb.npy", enc.encode(questions))
    (cache / "questions.json").write_text(json.dumps(questions))
    train_caps = [s.captions for s in samples]
    caps = sorted({c for cs in train_caps for c in cs})
    np.save(cache / "caption_emb.npy", enc.encode(caps))
    (cache / "captions.json").write_text(json.dumps(caps))
    print(f"text embeddings: {len(questions)} questions, {len(caps)} captions, {time.time()-t0:.0f}s", flush=True)

    stem_path = cache / "stem.onnx"
    export_stem(backbone, stem_path, size, frozen_blocks)
    sess = stem_session(cache)
    rng = np.random.default_rng(seed)
    for split, n_views in (("test", 1), ("val", 1), ("train", views)):
        subset = [s for s in samples if s.split == split]
        out_path = cache / f"stem_{split}.npy"
        if out_path.is_file():
            continue
        feats = None
        t0 = time.time()
        for v in range(n_views):
            for i in range(0, len(subset), 128):
                chunk = subset[i:i + 128]
                imgs = [load_rgb(image_path(s)) for s in chunk]
                if v == 0:
                    batch = np.stack([resize(im, size) for im in imgs])
                else:
                    batch = np.stack([augment(im, rng, size) for im in imgs])
                y = sess.run(None, {"image": normalise(batch)})[0].astype(np.float16)
                if feats is None:
                    feats = np.lib.format.open_memmap(
                        str(out_path) + ".tmp.npy", mode="w+", dtype=np.float16,
                        shape=(n_views, len(subset), *y.shape[1:]))
                feats[v, i:i + len(chunk)] = y
            print(f"{split}: view {v + 1}/{n_views} done, {time.time()-t0:.0f}s", flush=True)
        feats.flush()
        del feats
        Path(str(out_path) + ".tmp.npy").rename(out_path)
        (cache / f"stem_{split}.json").write_text(json.dumps([s.image for s in subset]))
    (cache / "stem.json").write_text(json.dumps(stem_settings(backbone, size, frozen_blocks)) + "\n")


def write_stem_views(sess, load, n_images: int, n_views: int, make_view, out_path: Path, chunk: int = 256) -> None:
    """Stem features of ``n_views`` views of ``n_images`` images into ``out_path``
    ([views, images, ...] float16), image chunk by image chunk so each image is read once;
    written under a temporary name and renamed when complete (an interrupted run leaves none).
    ``load(i0, i1)`` returns the RGB arrays of images i0..i1; ``make_view(img, v)`` one view."""
    if n_images < 1 or n_views < 1:
        raise ValueError(f"no stem features to write to {out_path}: {n_images} images x {n_views} views")
    feats = None
    for i in range(0, n_images, chunk):
        imgs = load(i, min(i + chunk, n_images))
        for v in range(n_views):
            batch = np.stack([make_view(im, v) for im in imgs])
            y = sess.run(None, {"image": normalise(batch)})[0].astype(np.float16)
            if feats is None:
                feats = np.lib.format.open_memmap(str(out_path) + ".tmp.npy", mode="w+", dtype=np.float16,
                                                  shape=(n_views, n_images, *y.shape[1:]))
            feats[v, i:i + len(imgs)] = y
    feats.flush()
    del feats
    Path(str(out_path) + ".tmp.npy").rename(out_path)


def stem_session(cache: Path):
    """The cache's own frozen stem (``stem.onnx``), so every view comes from the same weights."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 2
    return ort.InferenceSession(str(cache / "stem.onnx"), so, providers=["CPUExecutionProvider"])
