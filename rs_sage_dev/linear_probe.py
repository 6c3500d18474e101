"""``python -m rs_sage_dev.linear_probe [--cache DIR] [--out JSON]``: is the leave-classes-out
failure in our trained head, or already in the pretrained features and the text space?

A ridge map from ImageNet EfficientNet-Lite0 features (1,280, pooled, one clean 160 px view) to the
sentence-embedding space the engine scores names in, fitted without the stand-in's 9 classes
(``DEFAULT_LEAVE_OUT``: neither their images nor their texts), on three targets: the plain class
name, the mean of the image's 5 RSICD captions (AID; EuroSAT has none, so its name), or both. It is
then scored zero-shot like the stand-in: unseen = images of left-out classes among all names of
their data set, seen = the others, and among the unseen names only. The ridge weight is reported
for every value tried (chosen on nothing: the point is the spread, not a model to ship).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .dataset import AID_CLASSES, image_path, load_samples
from .eurosat import EUROSAT_CLASSES
from .open_eval import AID_NAMES, DEFAULT_LEAVE_OUT, EUROSAT_NAMES, split_images

SPLITS = (("aid", "train", None), ("aid", "val", None), ("aid", "test", None),
          ("eurosat", "train", 6000), ("eurosat", "val", None), ("eurosat", "test", None))
CLASSES = {"aid": AID_CLASSES, "eurosat": EUROSAT_CLASSES}
NAMES = {"aid": AID_NAMES, "eurosat": EUROSAT_NAMES}


def pretrained_features(cache: Path) -> dict[tuple[str, str], tuple[np.ndarray, np.ndarray, list[str]]]:
    """(features, labels, paths) per (data set, split), cached as npz in ``cache``."""
    import torch

    from .backbone import load_efficientnet
    from .prepare import load_rgb, normalise, resize

    cache.mkdir(parents=True, exist_ok=True)
    net, out = None, {}
    for ds, split, limit in SPLITS:
        f = cache / f"{ds}_{split}.npz"
        if not f.is_file():
            net = net or load_efficientnet("efficientnet-lite0").eval()
            paths, labels, _ = split_images(ds, split, limit)
            feats = []
            for i in range(0, len(paths), 64):
                x = normalise(np.stack([resize(load_rgb(p), 160) for p in paths[i:i + 64]]))
                with torch.inference_mode():
                    feats.append(net.extract_features(torch.from_numpy(x)).mean((2, 3)).numpy())
            np.savez(f, x=np.concatenate(feats), y=labels, paths=np.array([str(p) for p in paths]))
        with np.load(f) as z:
            out[(ds, split)] = (z["x"].astype(np.float64), z["y"], [str(p) for p in z["paths"]])
    return out


def probe(cache: Path, lams=(10, 100, 1000, 10000)) -> list[dict]:
    from core.model.text_encoder import shared_encoder

    enc = shared_encoder()
    feats = pretrained_features(cache)
    held = {ds: np.array([f"{ds}:{c}" in DEFAULT_LEAVE_OUT for c in CLASSES[ds]]) for ds in CLASSES}
    name_emb = {ds: enc.encode(NAMES[ds]) for ds in CLASSES}
    xa, ya, pa = feats[("aid", "train")]
    xe, ye, _ = feats[("eurosat", "train")]
    ka, ke = ~held["aid"][ya], ~held["eurosat"][ye]
    captions = {str(image_path(s)): s.captions for s in load_samples()}
    cap_mean = np.stack([enc.encode(list(captions[p])).mean(0) for p, k in zip(pa, ka, strict=True) if k])
    targets = {"names": name_emb["aid"][ya[ka]], "captions": cap_mean, "both": cap_mean + name_emb["aid"][ya[ka]]}
    x = np.concatenate([xa[ka], xe[ke]])
    mu, sd = x.mean(0), x.std(0) + 1e-6
    xs = (x - mu) / sd
    rows = []
    for target, t_aid in targets.items():
        t = np.concatenate([t_aid, name_emb["eurosat"][ye[ke]]])
        t = t / np.linalg.norm(t, axis=1, keepdims=True)
        for lam in lams:
            w = np.linalg.solve(xs.T @ xs + lam * np.eye(xs.shape[1]), xs.T @ t)
            row = {"target": target, "ridge": lam}
            for ds in CLASSES:
                xt, yt, _ = feats[(ds, "test")]
                cos = ((xt - mu) / sd) @ w @ name_emb[ds].T
                pred, un = cos.argmax(1), held[ds][yt]
                hi = np.flatnonzero(held[ds])
                among = hi[cos[:, hi].argmax(1)]
                row[ds] = {"unseen": round(100 * float((pred[un] == yt[un]).mean()), 1),
                           "seen": round(100 * float((pred[~un] == yt[~un]).mean()), 1),
                           "among_unseen_names": round(100 * float((among[un] == yt[un]).mean()), 1)}
            rows.append(row)
            print(json.dumps(row), flush=True)
    return rows


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cache", type=Path, default=Path(".cache/linear_probe"))
    ap.add_argument("--out", type=Path, default=Path("docs/open_vocab/linear_probe.json"))
    args = ap.parse_args()
    res = probe(args.cache)
    args.out.write_text(json.dumps({"command": "python -m rs_sage_dev.linear_probe", "test_images": True,
                                    "leave_out": list(DEFAULT_LEAVE_OUT), "rows": res}, indent=1) + "\n")
