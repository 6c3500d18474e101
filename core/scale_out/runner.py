"""Batch labelling on a Dask cluster (``python -m core label ... --dask local:2 | tcp://host:8786``).

Windows of tiles become Dask tasks. Each worker process opens the raster itself (a path every
worker can see, or a GDAL virtual path such as ``/vsicurl/`` or ``/vsis3/``), keeps one engine
loaded for the life of the process (not one per task), and returns small per-tile attribute
dicts. The client writes the same GeoPackage, class GeoTIFF and summary as the single-process
path, as results arrive, with a bounded number of tasks in flight, so its memory stays flat.
A worker that dies has its tasks redone by Dask (``retries``); a cancelled or failed run leaves
nothing under the target names (the writer's atomic files).

Workers need nothing of RS-SAGE: the client ships the runtime code and the model pack to them
(``ship``, ``worker_boot``), so their answers are the client's; see ``docs/scale-out.md``.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

from ..errors import RsSageError

TILES_PER_TASK = 16  # about 0.5 s of work per task on one core: enough tasks to balance the last ones
IN_FLIGHT_PER_WORKER = 3

_worker_state: dict = {}
_worker_lock = threading.Lock()


def dask_missing_message() -> str:
    return ("Dask is not installed: pip install 'dask[distributed]' (into QGIS's Python: the panel's "
            "Install dependencies does not add it; run: python -m pip install 'dask[distributed]').")


def check_scheduler(address: str, timeout: float = 3.0) -> None:
    """Before any work (and before the model loads): a valid address, Dask importable (else how
    to get it), and for a tcp:// scheduler something listening there, in a few seconds."""
    kind, _ = parse_scheduler(address)
    try:
        import distributed  # noqa: F401
    except ImportError as exc:
        raise RsSageError(dask_missing_message()) from exc
    if kind == "remote" and address.strip().startswith("tcp://"):
        import socket

        host, _, port = address.strip()[len("tcp://"):].rpartition(":")
        try:
            with socket.create_connection((host.strip("[]") or "127.0.0.1", int(port or 8786)), timeout=timeout):
                pass
        except (OSError, ValueError) as exc:
            raise RsSageError(f"No Dask scheduler answers at {address} ({exc}); start one with "
                              "'dask scheduler' or check the address.") from exc


@dataclass(frozen=True)
class WorkerSpec:
    """Everything a worker needs to label windows exactly as the client would (picklable)."""

    raster: str
    bands: tuple[int, ...]
    stretch_low: tuple[float, ...]
    stretch_high: tuple[float, ...]
    rule: object  # core.imagery.valid_pixels.PixelRule
    tile: int
    min_valid: float
    labels: tuple[str, ...]
    views: int
    model_dir: str | None
    user_kb: str | None
    threads: int = 1
    precision: str = "float32"  # the client's image encoder, so workers answer exactly as it would
    experts_precision: str = "float32"  # and its experts


def spec_to_wire(spec: WorkerSpec) -> dict:
    """Plain data (no RS-SAGE class), so the scheduler unpickles it without this package."""
    from dataclasses import asdict

    return asdict(spec)


def spec_from_wire(data: dict) -> WorkerSpec:
    from ..imagery.valid_pixels import PixelRule

    rule = data["rule"]
    rule = PixelRule(**{k: _tuples(v) for k, v in rule.items()}) if isinstance(rule, dict) else rule
    return WorkerSpec(**{**data, "rule": rule})


def _tuples(v):
    return tuple(_tuples(x) for x in v) if isinstance(v, (list, tuple)) else v


def _worker_engine(spec: WorkerSpec):
    """One engine per worker process, loaded at its first task and kept."""
    from ..model.engine import Engine
    from ..setup.paths import RESOURCES

    key = (spec.model_dir, spec.user_kb, spec.views, spec.threads, spec.precision, spec.experts_precision,
           os.environ.get("RS_SAGE_MODELS_HOME"))
    with _worker_lock:
        if _worker_state.get("engine_key") != key:
            user_kb = RESOURCES / "user_kb" if spec.user_kb == SHIPPED_USER_KB else False
            _worker_state["engine"] = Engine.load(spec.model_dir, user_kb=user_kb, views=spec.views,
                                                  threads=spec.threads, precision=spec.precision,
                                                  experts_precision=spec.experts_precision)
            _worker_state["engine_key"] = key
            _worker_state["engine_loads"] = _worker_state.get("engine_loads", 0) + 1
        return _worker_state["engine"]


def _worker_raster(path: str):
    from ..imagery.raster import open_raster

    with _worker_lock:
        if _worker_state.get("raster_path") != path:
            _worker_state["raster"] = open_raster(path)
            _worker_state["raster_path"] = path
        return _worker_state["raster"]


def label_windows(spec: dict, windows: list[tuple[int, int, int, int, int]], batch: int = 32) -> dict:
    """Dask task (through ``worker_boot.run``): label these windows; returns the tiles' attributes
    and how many were nodata, as plain data."""
    import numpy as np

    from ..imagery.raster import Stretch, read_valid_tile
    from ..imagery.tile_schema import tile_attributes

    spec = spec_from_wire(spec)
    engine = _worker_engine(spec)
    try:
        ds = _worker_raster(spec.raster)
    except RsSageError as exc:  # said on the client in one line (run_on_dask)
        raise RuntimeError(f"{UNREADABLE_ON_WORKER} {exc}") from None
    stretch = Stretch(np.array(spec.stretch_low, np.float32), np.array(spec.stretch_high, np.float32))
    tiles, metas, skipped = [], [], 0
    for w in windows:
        rgb = read_valid_tile(ds, list(spec.bands), w[2], w[3], w[4], spec.tile, stretch, spec.min_valid, spec.rule)
        if rgb is None:
            skipped += 1
        else:
            tiles.append(rgb)
            metas.append(w)
    out = []
    for i in range(0, len(tiles), batch):
        results = engine.classify(tiles[i:i + batch], list(spec.labels), top_k=3)
        for (row, col, x, y, size), res in zip(metas[i:i + batch], results, strict=True):
            out.append((x, y, size, tile_attributes(row, col, res), getattr(res, "embedding", None)))
    return {"tiles": out, "skipped_nodata": skipped, "pid": os.getpid(),
            "engine_loads": _worker_state.get("engine_loads", 0)}


SHIPPED_USER_KB = "@shipped"  # the user's knowledge entries travel in the runtime bundle
UNREADABLE_ON_WORKER = "A worker cannot read the raster:"


def parse_scheduler(address: str) -> tuple[str, int | None]:
    """("local", N) or ("remote", None); a clear message for anything else."""
    a = address.strip()
    if a == "local" or a.startswith("local:"):
        n = a.partition(":")[2]
        if n and (not n.isdigit() or int(n) < 1):
            raise RsSageError(f"'{address}': use local, local:N (N workers, N >= 1) or tcp://host:8786.")
        return "local", int(n) if n else None
    if a.startswith(("tcp://", "tls://", "ws://", "wss://", "inproc://")):
        return "remote", None
    raise RsSageError(f"Unknown Dask scheduler '{address}': use local, local:N or tcp://host:8786.")


def local_cluster(n_workers: int):
    """N single-threaded worker processes on this machine.

    Dask starts workers with MALLOC_TRIM_THRESHOLD_=65536, which pins glibc's mmap threshold so
    every large inference buffer is mapped and unmapped again: measured 7 % slower per tile here
    (33.0 -> 35.7 tiles/s for one worker, ``python -m core bench --section dask``). Left out.
    """
    import dask
    from distributed import LocalCluster

    environ = dict(dask.config.get("distributed.nanny.pre-spawn-environ", {}))
    environ.pop("MALLOC_TRIM_THRESHOLD_", None)
    _use_python_for_workers()
    with dask.config.set({"distributed.nanny.pre-spawn-environ": environ}):
        return LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=":0",
                            silence_logs=40)


@contextmanager
def _quiet_client_logs():
    """A scheduler that goes away makes Dask's client log reconnect tracebacks; the run says it in
    one line instead (``run_on_dask``)."""
    import logging

    loggers = [logging.getLogger(n) for n in ("distributed.client", "distributed.core", "distributed.comm",
                                              "distributed.batched")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def dask_client(address: str):
    """A distributed Client: a LocalCluster of single-threaded worker processes, or a remote scheduler."""
    with _quiet_client_logs():
        yield from _dask_client(address)


def _dask_client(address: str):
    try:
        from distributed import Client
    except ImportError as exc:
        raise RsSageError(dask_missing_message()) from exc
    kind, n = parse_scheduler(address)
    if kind == "local":
        cluster = local_cluster(n or max(1, (os.cpu_count() or 2)))
        client = Client(cluster)
        try:
            yield client
        finally:
            client.close()
            cluster.close()
        return
    try:
        client = Client(address, timeout=30)
    except OSError as exc:
        raise RsSageError(f"Cannot reach the Dask scheduler at {address} ({exc}).") from exc
    try:
        yield client
    finally:
        client.close()


def _use_python_for_workers() -> None:
    """Inside QGIS (or qgis_process) ``sys.executable`` is the QGIS binary, or whatever ``python3``
    came first on PATH: worker processes are started with QGIS's own interpreter instead."""
    import multiprocessing
    import sys

    from ..setup.deps import python_executable

    python = python_executable()
    if Path(python) != Path(sys.executable):
        multiprocessing.set_executable(python)


def _chunks(windows, size: int):
    chunk = []
    for w in windows:
        chunk.append(w)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def run_on_dask(job, engine, record, skipped: Counter, progress, cancelled, client=None) -> int:
    """The labeller's Dask runner: same windows, same rule and stretch, results written as they come."""
    from distributed import as_completed

    from ..setup.paths import text_encoder_dir
    from .ship import ship

    params = job.params
    user_kb = getattr(engine, "user_kb_dir", None)
    user_kb = Path(user_kb) if user_kb and Path(user_kb).is_dir() and any(Path(user_kb).iterdir()) else None
    spec = WorkerSpec(
        raster=os.path.abspath(params.raster) if "://" not in params.raster and not params.raster.startswith("/vsi")
        else params.raster, bands=tuple(job.bands), stretch_low=tuple(float(v) for v in job.stretch.low),
        stretch_high=tuple(float(v) for v in job.stretch.high), rule=job.rule, tile=params.tile,
        min_valid=params.min_valid, labels=tuple(job.labels), views=engine.views,
        model_dir=None,  # the shipped model pack, which is this engine's model folder
        user_kb=SHIPPED_USER_KB if user_kb else None,
        precision=getattr(engine, "precision", "float32"),
        experts_precision=getattr(engine, "experts_precision", "float32"))
    wire = spec_to_wire(spec)
    with (dask_client(params.scheduler) if client is None else nullcontext(client)) as c:
        shipment = ship(c, Path(engine.model_dir), text_encoder_dir(), user_kb, local=_is_local(c, params.scheduler))
        task = shipment.task()
        n_workers = max(1, len(c.scheduler_info().get("workers", {})))
        limit = IN_FLIGHT_PER_WORKER * n_workers
        chunks = _chunks(job.windows(skipped), TILES_PER_TASK)
        # The settings travel with every task (a few kB), not as one scattered copy: a run
        # survives the loss of every worker that held them, since restarted workers get them again.
        pending = as_completed()
        in_flight, index, done = 0, 0, 0

        def submit_next() -> bool:
            nonlocal in_flight, index
            chunk = next(chunks, None)
            if chunk is None:
                return False
            fut = c.submit(task, shipment.runtime.sha, shipment.pack.sha, "label_windows", wire, chunk, params.batch,
                           retries=3, pure=False,
                           key=f"rs_sage-{os.getpid()}-{id(job)}-{index}")
            index += 1
            in_flight += 1
            pending.add(fut)
            return True

        while in_flight < limit and submit_next():
            pass
        try:
            for fut in pending:
                in_flight -= 1
                if cancelled and cancelled():
                    from ..errors import Cancelled

                    raise Cancelled()
                part = fut.result()
                fut.release()
                for x, y, size, attrs, vector in part["tiles"]:
                    record(x, y, size, attrs, vector)
                done += len(part["tiles"])
                skipped["nodata"] += part["skipped_nodata"]
                if progress:
                    progress(min(100.0, 100.0 * (done + sum(skipped.values())) / job.grid.count))
                while in_flight < limit and submit_next():
                    pass
        except BaseException as exc:
            for fut in list(pending.futures):
                try:
                    fut.cancel()
                except Exception:  # noqa: BLE001 - the scheduler may be gone already
                    pass
            if UNREADABLE_ON_WORKER in str(exc):
                raise RsSageError(f"{str(exc).strip()} Workers open the raster themselves: give a path every "
                                  "worker can read (a shared file system) or a GDAL virtual path "
                                  "(/vsicurl/, /vsis3/).") from None
            if _cluster_lost(exc):
                raise RsSageError(f"The Dask cluster at {params.scheduler or 'the given client'} went away mid-run "
                                  f"({type(exc).__name__}); nothing was written under the target names.") from exc
            raise
    return done


def _is_local(client, scheduler: str | None) -> bool:
    """Workers on this machine (a local:N cluster): they copy the model files from disk."""
    if scheduler:
        return parse_scheduler(scheduler)[0] == "local"
    return type(getattr(client, "cluster", None)).__name__ == "LocalCluster"


def _cluster_lost(exc: BaseException) -> bool:
    """The scheduler or every worker died (not a cancel by the user, not a bug in the task)."""
    from ..errors import Cancelled

    if isinstance(exc, (Cancelled, KeyboardInterrupt, RsSageError)):
        return False
    names = {t.__name__ for t in type(exc).__mro__}
    return bool(names & {"CommClosedError", "FutureCancelledError", "CancelledError", "TimeoutError",
                         "StreamClosedError", "KilledWorker", "ConnectionRefusedError", "OSError"})

