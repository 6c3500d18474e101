"""A real Dask cluster: ``dask scheduler`` and two ``dask worker`` processes started on 127.0.0.1
from another folder, with no PYTHONPATH, so RS-SAGE is not importable there. The client ships the
runtime and the model pack; the output must be what one process writes, also when a worker is
SIGKILLed mid-run; a scheduler killed mid-run ends the run in one line with nothing written.
Every process is ended by the fixtures; each wait is bounded."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import FIXTURES

from core.imagery.labeller import LabelParams, label_raster
from rs_sage_dev.process_cluster import ProcessCluster, free_port

distributed = pytest.importorskip("distributed")

ROOT = Path(__file__).resolve().parents[1]
RASTER = str(FIXTURES / "rgbn_clip.tif")  # 256 x 256 px; 64 px tiles at stride 16: 169 tiles
LABELS = ["water", "forest", "farmland", "houses", "road"]


def _params(tmp, name, **kw):
    return LabelParams(RASTER, str(tmp / f"{name}.gpkg"), out_tif=str(tmp / f"{name}.tif"), gsd=5, tile=64,
                       stride=16, labels=LABELS, **kw)


def _tiles(path):
    from osgeo import ogr

    ds = ogr.Open(path)
    out = {(f.GetField("tile_row"), f.GetField("tile_col")): (f.GetField("label"), round(f.GetField("score"), 4),
                                                              f.GetField("uncertain"), f.GetField("top3"))
           for f in ds.GetLayer(0)}
    ds = None
    return out


@pytest.fixture()
def cluster(tmp_path):
    c = ProcessCluster(tmp_path)
    yield c
    c.stop()


@pytest.fixture(scope="module")
def engine():
    from core.model.engine import Engine

    return Engine.load(user_kb=False)


@pytest.fixture(scope="module")
def single(tmp_path_factory, engine):
    tmp = tmp_path_factory.mktemp("single")
    label_raster(_params(tmp, "one"), engine)
    return _tiles(str(tmp / "one.gpkg"))


def test_workers_do_not_have_rs_sage_on_their_path(cluster):
    from distributed import Client

    def importable():
        import importlib.util

        return importlib.util.find_spec("core") is not None, os.getcwd()

    with Client(cluster.address) as c:
        found = c.run(importable)
    assert len(found) == 2
    assert all(not has and cwd == str(cluster.tmp) for has, cwd in found.values())


def test_real_cluster_writes_what_one_process_writes_and_caches_the_pack(tmp_path, cluster, engine, single):
    from distributed import Client

    res = label_raster(_params(tmp_path, "dask", scheduler=cluster.address), engine)
    assert res.labelled == len(single)
    assert _tiles(str(tmp_path / "dask.gpkg")) == single
    packs = list((cluster.cache / "packs").iterdir())
    assert len(packs) == 1 and (packs[0] / "models" / "encoder.onnx").is_file()
    # A second run finds the pack on the scheduler and the workers: nothing is sent again.
    from core.scale_out.ship import ship
    from core.setup.paths import text_encoder_dir

    with Client(cluster.address) as c:
        again = ship(c, Path(engine.model_dir), text_encoder_dir())
    assert not again.sent_pack and again.pack.sha == packs[0].name


def test_worker_killed_mid_run_finishes_identical(tmp_path, cluster, engine, single):
    from distributed import Client

    with Client(cluster.address) as c:
        pids = sorted(c.run(os.getpid).values())
        killed = []

        def progress(pct):
            if pct > 0 and not killed:
                os.kill(pids[0], signal.SIGKILL)  # the worker process; its nanny starts a new one
                killed.append(pct)

        res = label_raster(_params(tmp_path, "killed"), engine, progress=progress, dask_client=c)
    assert killed and killed[0] < 100
    assert res.labelled == len(single)
    assert _tiles(str(tmp_path / "killed.gpkg")) == single


def _cli(tmp_path, address, *extra):
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    return subprocess.Popen([sys.executable, "-m", "core", "label", RASTER, "--out", str(tmp_path / "cli.gpkg"),
                             "--tif", str(tmp_path / "cli.tif"), "--gsd", "5", "--tile", "64", "--stride", "8",
                             "--dask", address, *extra, "--labels", *LABELS],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_scheduler_killed_mid_run_is_one_line_and_leaves_nothing(tmp_path, cluster):
    (tmp_path / "cli.gpkg").write_bytes(b"the user's earlier file")
    proc = _cli(tmp_path, cluster.address)
    lines = []
    deadline = time.time() + 120
    while time.time() < deadline:
        line = proc.stderr.readline()
        lines.append(line)
        if not line or ("%" in line and float(line.split("%")[0]) > 0):
            break
    assert "%" in lines[-1], "".join(lines)  # tiles have come back: the run is under way
    os.killpg(cluster.procs["scheduler"].pid, signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    errors = [ln for ln in err.splitlines() if ln.startswith("error")]
    assert proc.returncode != 0
    assert len(errors) == 1 and "went away" in errors[0], err
    assert "Traceback" not in err
    assert (tmp_path / "cli.gpkg").read_bytes() == b"the user's earlier file"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("cli", ".cli"))) == ["cli.gpkg"]


def test_no_scheduler_is_one_line_before_the_model_loads(tmp_path):
    proc = _cli(tmp_path, f"tcp://127.0.0.1:{free_port()}")
    t0 = time.time()
    out, err = proc.communicate(timeout=60)
    assert proc.returncode != 0
    assert [ln for ln in err.splitlines() if ln.strip()] == [ln for ln in err.splitlines() if "No Dask scheduler" in ln]
    assert time.time() - t0 < 30  # generous: the check itself gives up after 3 s, before any model loads
    assert not (tmp_path / "cli.gpkg").exists()
    assert json.dumps(out) == '""'
