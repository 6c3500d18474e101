"""Model files verified against the checksums written when they were exported.

A scaled, truncated or swapped ONNX file would otherwise load (or fail deep inside protobuf)
and change answers without a word; the sha256 of each file travels in ``model.json``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ModelError

MODEL_FILES = ("encoder.onnx", "experts.onnx")
OPTIONAL_FILES = ("encoder.int8.onnx", "experts.int8.onnx")  # checked when present


def file_digest(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_checksums(model_dir: Path) -> dict[str, str]:
    """Record the files' sha256 in model.json (after every change to the files)."""
    sidecar = Path(model_dir) / "model.json"
    meta = json.loads(sidecar.read_text())
    names = list(MODEL_FILES) + [n for n in OPTIONAL_FILES if (Path(model_dir) / n).is_file()]
    meta["files_sha256"] = {name: file_digest(Path(model_dir) / name) for name in names}
    sidecar.write_text(json.dumps(meta, indent=2) + "\n")
    return meta["files_sha256"]


def verify(model_dir: Path, names: list[str] | None = None) -> None:
    """Raise ModelError unless every model file (or only ``names``: the engine checks the files it
    is about to load, not the float ones an int8 engine never opens) matches its recorded checksum."""
    sidecar = Path(model_dir) / "model.json"
    try:
        expected = json.loads(sidecar.read_text()).get("files_sha256")
    except (OSError, ValueError) as exc:
        raise ModelError(f"{sidecar} is missing or unreadable ({exc}); reinstall the plugin.") from exc
    if not expected:
        raise ModelError(f"{sidecar} records no checksums for the model files; re-export the model.")
    present = [n for n in OPTIONAL_FILES if (Path(model_dir) / n).is_file()]
    for name in names if names is not None else list(MODEL_FILES) + present:
        if file_digest(Path(model_dir) / name) != expected.get(name):
            raise ModelError(f"{Path(model_dir) / name} does not match the checksum recorded at export "
                             "(damaged, truncated or modified); reinstall the plugin or re-export the model.")
