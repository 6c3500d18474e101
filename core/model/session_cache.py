"""onnxruntime sessions that start fast: the optimised graph is saved on first use and loaded
as is afterwards, in a cache folder of this machine.

Graph optimisation at session creation is most of the image model's load time (encoder 97 ->
31 ms, experts 123 -> 53 ms measured here). The optimised graph holds CPU-specific layouts
(onnxruntime warns it is valid "only in the same environment"), so it is never shipped: it is
keyed by the model file's sha256, the onnxruntime version and this CPU's instruction-set flags,
written atomically, and any failure to use it falls back to the original file.
"""

from __future__ import annotations

import hashlib
import os
import platform
from pathlib import Path


def cache_dir() -> Path:
    env = os.environ.get("RS_SAGE_CACHE")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "rs_sage" / "onnxruntime"


def _cpu_id() -> str:
    flags = ""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8"):
            if line.startswith(("flags", "Features")):
                flags = line
                break
    except OSError:
        pass
    return hashlib.sha256(f"{platform.machine()} {platform.processor()} {flags}".encode()).hexdigest()[:12]


def cpu_session(path: Path, sha256: str | None, so, providers: list[str]):
    """An InferenceSession of ``path``; on the CPU provider, through the optimised-graph cache."""
    import onnxruntime as ort

    if not sha256 or providers[0] != "CPUExecutionProvider":
        return ort.InferenceSession(str(path), so, providers=providers)
    cached = cache_dir() / f"{sha256[:20]}-ort{ort.__version__}-{_cpu_id()}.onnx"
    if cached.is_file():
        fast = ort.SessionOptions()
        fast.intra_op_num_threads, fast.inter_op_num_threads = so.intra_op_num_threads, so.inter_op_num_threads
        fast.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
        try:
            return ort.InferenceSession(str(cached), fast, providers=providers)
        except Exception:  # noqa: BLE001 - a damaged cache entry: drop it and rebuild from the model
            cached.unlink(missing_ok=True)
    try:
        cached.parent.mkdir(parents=True, exist_ok=True)
        tmp = cached.with_name(f".{cached.name}.{os.getpid()}.tmp")
        so.optimized_model_filepath = str(tmp)
        session = ort.InferenceSession(str(path), so, providers=providers)
        so.optimized_model_filepath = ""
        if tmp.is_file():
            tmp.replace(cached)
        return session
    except OSError:  # a read-only home: no cache, same session
        so.optimized_model_filepath = ""
        return ort.InferenceSession(str(path), so, providers=providers)
