"""EuroSAT RGB (Sentinel-2, 10 m, 64 px): samples, our own split, label texts and a stem cache.

The split is a hash of the file name (train 82 %, validation 6 %, test 12 %), so it never shifts
when files are listed in another order and a held-back set can never leak into it by position.
EuroSAT has no captions; its images are trained against the label texts below and the broad
concepts of ``open_vocab``.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.setup.paths import data_root

EUROSAT_CLASSES = [
    "AnnualCrop", "Forest", "HerbaceousVegetation", "Highway", "Industrial", "Pasture",
    "PermanentCrop", "Residential", "River", "SeaLake",
]
# What a user would type for each class, then other wordings: the plain name comes first and is
# the one evaluation scores against.
EUROSAT_TEXTS = {
    "AnnualCrop": ["annual crop", "annual crops", "arable land", "crop fields", "cultivated fields"],
    "Forest": ["forest", "woodland", "dense trees", "wooded area"],
    "HerbaceousVegetation": ["herbaceous vegetation", "natural grassland", "shrubs and herbs",
                             "wild vegetation"],
    "Highway": ["highway", "motorway", "major road", "road through fields"],
    "Industrial": ["industrial area", "industrial buildings", "factories and warehouses"],
    "Pasture": ["pasture", "grazing land", "grassland for livestock", "meadow pasture"],
    "PermanentCrop": ["permanent crop", "orchard", "vineyard", "fruit plantation"],
    "Residential": ["residential area", "houses", "housing", "residential buildings"],
    "River": ["river", "stream", "river course"],
    "SeaLake": ["sea or lake", "lake", "sea", "open water"],
}
TEST_FRACTION, VAL_FRACTION = 0.12, 0.06
EUROSAT_VIEWS = 3  # cached augmented views per training image (AID has 8; EuroSAT is 2.4x larger)


@dataclass(frozen=True)
class EuroSample:
    image: str  # path relative to data_root()/eurosat_rgb
    label: str  # EuroSAT class folder name
    split: str


def split_of(image: str) -> str:
    h = int.from_bytes(hashlib.sha1(("eurosat/" + image).encode()).digest()[:4], "big") / 2**32
    return "test" if h < TEST_FRACTION else "val" if h < TEST_FRACTION + VAL_FRACTION else "train"


def load_eurosat(root: Path | None = None) -> list[EuroSample]:
    base = Path(root or data_root()) / "eurosat_rgb"
    if not base.is_dir():
        raise FileNotFoundError(f"{base} not found; set RS_SAGE_DATA to the shared data folder")
    out = []
    for c in EUROSAT_CLASSES:
        for p in sorted((base / c).glob("*.jpg")):
            rel = f"{c}/{p.name}"
            out.append(EuroSample(rel, c, split_of(rel)))
    return out


def prepare_eurosat(cache: Path, views: int = EUROSAT_VIEWS, seed: int = 1, size: int = 160) -> None:
    """``eurosat_{split}.npy`` stem features beside the AID ones in ``cache`` (stem.onnx of the
    AID cache, so both come from the same frozen stem): one clean view for test and validation,
    one clean plus ``views - 1`` augmented views for training."""
    from .prepare import augment, load_rgb, resize, stem_session, write_stem_views

    sess = stem_session(cache)
    rng = np.random.default_rng(seed)
    samples = load_eurosat()
    base = Path(data_root()) / "eurosat_rgb"
    for split, n_views in (("test", 1), ("val", 1), ("train", views)):
        out_path = cache / f"eurosat_{split}.npy"
        if out_path.is_file():
            continue
        subset = [s for s in samples if s.split == split]
        t0 = time.time()
        write_stem_views(sess, lambda i0, i1, subset=subset: [load_rgb(base / s.image) for s in subset[i0:i1]],
                         len(subset), n_views,
                         lambda im, v: resize(im, size) if v == 0 else augment(im, rng, size), out_path)
        print(f"eurosat {split}: {len(subset)} images x {n_views} views, {time.time() - t0:.0f}s", flush=True)
        (cache / f"eurosat_{split}.json").write_text(json.dumps([[s.image, s.label] for s in subset]))
