"""Batch labelling on a Dask LocalCluster gives the single-process outputs, survives a killed
worker, and leaves nothing behind when cancelled."""

import os
import signal

import numpy as np
import pytest
from helpers import FIXTURES

from core.errors import RsSageError
from core.imagery.labeller import Cancelled, LabelParams, label_raster

distributed = pytest.importorskip("distributed")

RASTER = str(FIXTURES / "rgbn_clip.tif")  # a real 256 x 256 px clip; stride 32 px: 49 tiles


def _params(tmp_path, name, **kw):
    return LabelParams(RASTER, str(tmp_path / f"{name}.gpkg"), out_tif=str(tmp_path / f"{name}.tif"),
                       gsd=5, tile=64, stride=32, labels=["water", "forest", "farmland", "houses", "road"], **kw)


def _tiles(path):
    from osgeo import ogr

    ds = ogr.Open(path)
    return {(f.GetField("tile_row"), f.GetField("tile_col")): (f.GetField("label"), round(f.GetField("score"), 4),
                                                              f.GetField("uncertain"), f.GetField("top3"))
            for f in ds.GetLayer(0)}


def _classes(path):
    from osgeo import gdal

    return gdal.Open(path).ReadAsArray()


@pytest.fixture(scope="module")
def engine():
    from core.model.engine import Engine

    return Engine.load(user_kb=False)


@pytest.fixture(scope="module")
def cluster():
    from distributed import Client

    from core.scale_out.runner import local_cluster

    c = local_cluster(2)
    client = Client(c)
    yield client
    client.close()
    c.close()


@pytest.fixture(scope="module")
def single(tmp_path_factory, engine):
    tmp = tmp_path_factory.mktemp("single")
    res = label_raster(_params(tmp, "one"), engine)
    return res, _tiles(str(tmp / "one.gpkg")), _classes(str(tmp / "one.tif"))


def _run_dask(tmp_path, name, engine, client, progress=None, cancelled=None):
    return label_raster(_params(tmp_path, name), engine, progress=progress, cancelled=cancelled, dask_client=client)


def test_two_workers_write_what_one_process_writes(tmp_path, engine, cluster, single):
    res1, tiles1, classes1 = single
    res = _run_dask(tmp_path, "two", engine, cluster)
    assert res.labelled == res1.labelled == 49
    assert _tiles(str(tmp_path / "two.gpkg")) == tiles1
    assert np.array_equal(_classes(str(tmp_path / "two.tif")), classes1)
    assert res.summary == res1.summary
    def engine_loads():  # in the runtime the client shipped (its package name carries its sha256)
        import sys

        mods = [m for n, m in sys.modules.items() if n.startswith("rs_sage_worker_") and n.endswith(".runner")]
        return [m._worker_state.get("engine_loads") for m in mods]

    loads = cluster.run(engine_loads)
    # one engine per worker process, not one per task (a worker that got no task has none)
    assert [x for v in loads.values() for x in v if x is not None]
    assert all(v in ([1], [None], []) for v in loads.values())


def test_a_worker_killed_mid_run_still_gives_the_complete_output(tmp_path, engine, cluster, single, monkeypatch):
    from core.scale_out import runner as dist

    _, tiles1, classes1 = single
    monkeypatch.setattr(dist, "TILES_PER_TASK", 4)  # 13 tasks, so the kill lands mid-run
    pids = list(cluster.run(os.getpid).values())
    killed = []

    def progress(pct):
        if 0 < pct < 100 and not killed:
            os.kill(pids[0], signal.SIGKILL)
            killed.append(pids[0])

    res = _run_dask(tmp_path, "killed", engine, cluster, progress=progress)
    assert killed
    assert res.labelled == 49
    assert _tiles(str(tmp_path / "killed.gpkg")) == tiles1
    assert np.array_equal(_classes(str(tmp_path / "killed.tif")), classes1)
    cluster.wait_for_workers(2, timeout=60)  # the nanny restarted it


def test_cancelled_dask_run_leaves_nothing(tmp_path, engine, cluster):
    with pytest.raises(Cancelled):
        _run_dask(tmp_path, "cancel", engine, cluster, cancelled=lambda: True)
    assert sorted(os.listdir(tmp_path)) == []


def test_bad_scheduler_addresses_are_messages():
    from core.scale_out.runner import parse_scheduler

    assert parse_scheduler("local:3") == ("local", 3)
    assert parse_scheduler("tcp://10.0.0.5:8786") == ("remote", None)
    for bad in ("local:0", "local:x", "10.0.0.5:8786", "dask"):
        with pytest.raises(RsSageError):
            parse_scheduler(bad)


def test_cli_runs_on_a_local_cluster(tmp_path, single):
    from core.cli import main

    _, tiles1, _ = single
    out = tmp_path / "cli.gpkg"
    assert main(["label", RASTER, "--out", str(out), "--gsd", "5", "--tile", "64", "--stride", "32",
                 "--labels", "water", "forest", "farmland", "houses", "road", "--dask", "local:2", "--cog"]) == 0
    assert _tiles(str(out)) == tiles1


def test_missing_dask_is_a_clear_message(tmp_path):
    import subprocess
    import sys

    from conftest import ROOT

    code = ("import importlib.abc, sys\n"
            "class Block(importlib.abc.MetaPathFinder):\n"
            "    def find_spec(self, name, path=None, target=None):\n"
            "        if name.split('.')[0] in ('dask', 'distributed'):\n"
            "            raise ImportError('blocked')\n"
            "sys.meta_path.insert(0, Block())\n"
            "from core.cli import main\n"
            f"sys.exit(main(['label', {RASTER!r}, '--out', {str(tmp_path / 'x.gpkg')!r}, '--gsd', '5', "
            "'--tile', '64', '--dask', 'local:2']))\n")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert run.returncode == 2, run.stderr[-2000:]
    assert "pip install 'dask[distributed]'" in run.stderr and "Traceback" not in run.stderr
    assert not (tmp_path / "x.gpkg").exists()


def test_embeddings_are_the_same_with_and_without_dask(tmp_path, engine, cluster):
    from core.questions.similar import load_store

    a = label_raster(LabelParams(RASTER, None, gsd=5, tile=64, labels=["water", "forest"],
                                 embeddings=str(tmp_path / "one.gpkg")), engine)
    b = label_raster(LabelParams(RASTER, None, gsd=5, tile=64, labels=["water", "forest"],
                                 embeddings=str(tmp_path / "two.gpkg")), engine, dask_client=cluster)
    assert a.labelled == b.labelled == 16
    s1, s2 = load_store(tmp_path / "one.gpkg"), load_store(tmp_path / "two.gpkg")
    v1 = {c: v for c, v in zip(s1.cells, s1.vectors, strict=True)}
    v2 = {c: v for c, v in zip(s2.cells, s2.vectors, strict=True)}
    assert v1.keys() == v2.keys() and len(v1) == 16
    assert max(float(np.abs(v1[c] - v2[c]).max()) for c in v1) < 1e-5


def test_no_scheduler_is_one_line_in_seconds_before_the_model_loads(tmp_path, capsys):
    import socket
    import time

    from core.cli import main

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    t0 = time.perf_counter()
    rc = main(["label", RASTER, "--out", str(tmp_path / "t.gpkg"), "--dask", f"tcp://127.0.0.1:{port}"])
    err = capsys.readouterr().err
    assert rc == 2 and time.perf_counter() - t0 < 5
    assert "No Dask scheduler answers" in err and len(err.strip().splitlines()) == 1


def test_partial_journal_files_of_a_killed_run_are_cleaned(tmp_path):
    from core.imagery.labeller import clean_stale_partials

    dead = 2 ** 22 + 12345  # no such process
    names = [f".t.partial-{dead}.gpkg", f".t.partial-{dead}.gpkg-journal", f".t.partial-{dead}.gpkg-wal"]
    for n in names:
        (tmp_path / n).write_bytes(b"x")
    clean_stale_partials(str(tmp_path / "t.gpkg"))
    assert not any((tmp_path / n).exists() for n in names)


def test_local_workers_start_with_qgis_python_not_paths(tmp_path, monkeypatch):
    """Inside desktop QGIS sys.executable is PATH's first python3 (or the QGIS binary): local:N
    worker processes must be started with QGIS's own interpreter instead."""
    import multiprocessing
    import sys

    from core.scale_out import runner as dist

    fake = tmp_path / "pyenv" / "bin" / "python3"
    fake.parent.mkdir(parents=True)
    fake.write_text("#!/bin/sh\nexit 1\n")
    fake.chmod(0o755)
    chosen = []
    monkeypatch.setattr(multiprocessing, "set_executable", chosen.append)
    monkeypatch.setattr(sys, "executable", str(fake))
    monkeypatch.setattr(sys, "exec_prefix", "/usr")
    monkeypatch.setattr(sys, "base_exec_prefix", "/usr")
    dist._use_python_for_workers()
    assert len(chosen) == 1 and chosen[0].startswith("/usr/bin/python3") and str(fake) not in chosen[0]


def test_a_raster_the_workers_cannot_read_is_one_line(tmp_path, engine, cluster):
    """No shared file system: the client can open the raster (here in its own memory), the workers
    cannot; the run ends with one line saying so, and nothing is written."""
    from osgeo import gdal

    mem = "/vsimem/rs_sage_client_only.tif"
    gdal.Translate(mem, RASTER)
    try:
        with pytest.raises(RsSageError, match="A worker cannot read the raster.*shared file system"):
            label_raster(LabelParams(mem, str(tmp_path / "m.gpkg"), gsd=5, tile=64, stride=32,
                                     labels=["water", "forest"]), engine, dask_client=cluster)
    finally:
        gdal.Unlink(mem)
    assert not list(tmp_path.iterdir())
