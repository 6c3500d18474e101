"""AID images with labels, RSICD captions and split, from the shared data set.

The RSICD test split (1,027 images) is the test set and is never trained on; validation is
carved deterministically from RSICD train (hash of the file name, so it never shifts when the
list order changes).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from core.model.vocab import AID_CLASSES, AID_LABEL_TEXT, DEFAULT_LABELS  # noqa: F401 (re-exported)
from core.setup.paths import data_root

VAL_FRACTION = 0.06


@dataclass(frozen=True)
class Sample:
    image: str  # path relative to data_root()/aid
    label: str  # AID class folder name
    captions: tuple[str, ...]
    split: str  # train / val / test

    @property
    def label_index(self) -> int:
        return AID_CLASSES.index(self.label)


def _is_val(image: str) -> bool:
    digest = hashlib.sha1(image.encode()).digest()
    return int.from_bytes(digest[:4], "big") / 2**32 < VAL_FRACTION


def load_samples(root: Path | None = None) -> list[Sample]:
    root = Path(root or data_root())
    path = root / "aid" / "aid_rsicd_captions.jsonl.gz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found; set RS_SAGE_DATA to the shared data folder")
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            split = d["rsicd_split"]
            if split == "train" and _is_val(d["image"]):
                split = "val"
            out.append(Sample(d["image"], d["label"], tuple(d["captions"]), split))
    out.sort(key=lambda s: s.image)
    return out


def image_path(sample: Sample, root: Path | None = None) -> Path:
    return Path(root or data_root()) / "aid" / sample.image
