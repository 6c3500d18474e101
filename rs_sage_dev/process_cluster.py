"""A Dask cluster of real processes on 127.0.0.1 (``dask scheduler`` + ``dask worker``), started
from a folder of their own with no PYTHONPATH, so RS-SAGE is not importable there: what an
operator starts on other machines. Used by ``tests/test_dask_processes.py`` and
``python -m core bench --section dask``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ProcessCluster:
    """Scheduler and workers as processes of their own; ``stop`` ends every one of them."""

    def __init__(self, folder: Path, workers: int = 2, cache: Path | None = None):
        self.tmp, self.port = Path(folder), free_port()
        self.address = f"tcp://127.0.0.1:{self.port}"
        self.cache = Path(cache or self.tmp / "worker-cache")
        self.procs: dict[str, subprocess.Popen] = {}
        try:
            self.start("scheduler", ["distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port",
                                     str(self.port), "--dashboard-address", ":0"])
            for i in range(workers):
                self.start(f"worker{i}", ["distributed.cli.dask_worker", self.address, "--nthreads", "1",
                                          "--nworkers", "1", "--no-dashboard"])
            self.wait_for_workers(workers)
        except BaseException:
            self.stop()
            raise

    def env(self) -> dict:
        env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RS_SAGE_MODELS_HOME")}
        env["RS_SAGE_WORKER_CACHE"] = str(self.cache)
        env.pop("MALLOC_TRIM_THRESHOLD_", None)
        return env

    def start(self, name: str, args: list[str]) -> None:
        with open(self.tmp / f"{name}.log", "w") as log:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", *args], cwd=self.tmp, env=self.env(),
                                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)

    def wait_for_workers(self, n: int, timeout: float = 60) -> None:
        from distributed import Client

        with Client(self.address, timeout=30) as c:
            c.wait_for_workers(n, timeout=timeout)

    def stop(self) -> None:
        for p in self.procs.values():
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
        for p in self.procs.values():
            p.wait(timeout=30)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()
