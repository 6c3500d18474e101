"""AID training views at the coarse scale EuroSAT and Landsat users bring (``stem_train_coarse.npy``).

Why: with EuroSAT's 64 px, 10 m tiles in training, model 0.2.0 learned that a coarse-looking image
is one of EuroSAT's ten scenes and lost 7-14 pt on AID scenes seen at 30 m (``docs/ood_021.json``;
3-epoch runs with and without EuroSAT put the loss on EuroSAT). The ordinary training views are
coarsened in only about one in five (``sensor_shift.random_sensor``). These extra views are all
coarse (area-averaged by a factor of 2.5-8 at the 160 px model input, the scale of a 64 px
EuroSAT tile upsampled and coarser), and ``train --open --coarse-share S`` swaps that share of the
AID images of every batch for one of them, so a blurry field keeps AID's names as well as
EuroSAT's.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np

COARSE_VIEWS = 2
COARSE_FACTORS = (2.5, 8.0)
COARSE_SEED = 2


def coarse_augment(img: np.ndarray, rng: np.random.Generator, size: int) -> np.ndarray:
    """The ordinary training view (crop, flip, colour, random sensor), then coarsened."""
    from .prepare import augment
    from .sensor_shift import coarser

    return np.clip(coarser(augment(img, rng, size), rng.uniform(*COARSE_FACTORS)), 0, 255)


def prepare_coarse(cache: Path, views: int = COARSE_VIEWS, seed: int = COARSE_SEED, size: int = 160) -> Path:
    """``stem_train_coarse.npy`` [views, n_train, ...] in the image order of ``stem_train.json``."""
    from .dataset import image_path, load_samples
    from .prepare import load_rgb, stem_session, write_stem_views

    out_path = cache / "stem_train_coarse.npy"
    if out_path.is_file():
        return out_path
    order = json.loads((cache / "stem_train.json").read_text())
    by_image = {s.image: s for s in load_samples()}
    subset = [by_image[im] for im in order]
    rng = np.random.default_rng(seed)
    t0 = time.time()
    write_stem_views(stem_session(cache), lambda i0, i1: [load_rgb(image_path(s)) for s in subset[i0:i1]],
                     len(subset), views, lambda im, v: coarse_augment(im, rng, size), out_path)
    print(f"coarse AID views: {len(subset)} images x {views}, {time.time() - t0:.0f} s", flush=True)
    return out_path


if __name__ == "__main__":
    import sys

    prepare_coarse(Path(sys.argv[1] if len(sys.argv) > 1 else ".cache/train"))
