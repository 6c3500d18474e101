"""``python -m core doctor`` and the panel's *Diagnostics*: what a bug report needs, in one text.

Versions, paths, the onnxruntime providers a session really uses (the available-providers list
claims CUDA on machines without a GPU), the GPU, and the checksums of the model, text encoder and
knowledge base, each checked. Every probe is guarded: a broken install is what this is for.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path

from .. import __version__
from .paths import KB_DIR, PROJECT_ROOT, deps_base, model_dir, text_encoder_dir, user_kb_dir

PACKAGES = ("numpy", "onnxruntime", "tokenizers", "faiss", "shapely", "osgeo", "torch", "transformers")


def _probe(fn: Callable[[], object]) -> object:
    try:
        return fn()
    except Exception as exc:  # noqa: BLE001 - a diagnostic reports every failure as text
        return f"ERROR: {type(exc).__name__}: {exc}"


def _version(module: str) -> str:
    """Version and folder without importing the package (torch alone takes seconds)."""
    from importlib.metadata import packages_distributions, version

    spec = importlib.util.find_spec(module)
    if spec is None:
        return "not installed"
    if module == "osgeo":
        from osgeo import gdal

        return f"GDAL {gdal.__version__}"
    dists = packages_distributions().get(module, [])
    where = Path(spec.origin).parent if spec.origin else "?"
    return ", ".join(f"{d} {version(d)}" for d in sorted(set(dists))) + f"  ({where})" if dists else f"? ({where})"


def _providers() -> dict:
    import onnxruntime as ort

    from ..model.engine import Engine

    eng = Engine.load(user_kb=False)
    return {"available": ort.get_available_providers(), "used_by_encoder": eng.encoder.get_providers(),
            "device": eng.device, "image_encoder_precision": eng.precision,
            "experts_precision": eng.experts_precision}


def _checksums() -> dict:
    from ..model.knowledge import KnowledgeBase
    from ..model.model_files import verify
    from ..model.text_encoder import verify_text_encoder

    out = {}
    out["model"] = _probe(lambda: (verify(model_dir()), "ok")[1])
    out["text_encoder"] = _probe(lambda: (verify_text_encoder(text_encoder_dir()), "ok")[1])
    out["knowledge_base"] = _probe(lambda: "ok " + KnowledgeBase.load(user_dir=False).checksum[:16])
    meta = _probe(lambda: json.loads((model_dir() / "model.json").read_text()))
    if isinstance(meta, dict):
        out["model_files_sha256"] = {k: v[:16] for k, v in meta.get("files_sha256", {}).items()}
    return out


def _gpu() -> str:
    from .deps import nvidia_gpu

    if not nvidia_gpu():
        return "no NVIDIA GPU found"
    import subprocess

    run = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total", "--format=csv,noheader"],
                         capture_output=True, text=True, timeout=10)
    return run.stdout.strip() or "NVIDIA driver present"


def report(qgis_version: str | None = None, with_engine: bool = True) -> dict:
    from ..model.session_cache import cache_dir as _cache_dir
    from .deps import deps_dir, missing_packages

    return {
        "rs_sage": __version__,
        "qgis": qgis_version or "not running inside QGIS",
        "python": f"{sys.version.split()[0]} ({sys.executable})",
        "platform": platform.platform(),
        "packages": {m: _probe(lambda m=m: _version(m)) for m in PACKAGES},
        "missing_runtime_packages": _probe(missing_packages),
        "paths": {"plugin": str(PROJECT_ROOT), "models": str(model_dir()), "text_encoder": str(text_encoder_dir()),
                  "knowledge_base": str(KB_DIR), "user_knowledge": str(user_kb_dir()),
                  "installed_dependencies": str(deps_dir(deps_base())),
                  "machine_cache (optimised graphs, text embeddings)": str(_cache_dir())},
        "onnxruntime_providers": _probe(_providers) if with_engine else "not probed",
        "gpu": _probe(_gpu),
        "checksums": _probe(_checksums),
    }


def as_text(rep: dict) -> str:
    """Plain text for the clipboard of a bug report."""
    lines = ["RS-SAGE diagnostics"]

    def walk(d: dict, indent: str) -> None:
        for k, v in d.items():
            if isinstance(v, dict):
                lines.append(f"{indent}{k}:")
                walk(v, indent + "  ")
            else:
                lines.append(f"{indent}{k}: {v}")

    walk(rep, "")
    return "\n".join(lines)
