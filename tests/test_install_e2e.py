"""The whole user path, offline: plugin ZIP (no models: at most 20 MB) into a fresh QGIS profile,
*Install dependencies* from a folder of wheels with no index, the model pack from a file, then
Classify extent through qgis_process.bin with QGIS's own Python (no venv) and torch and
transformers unimportable."""

import json
import os
import subprocess
import sys
import zipfile

import pytest
from conftest import ROOT
from helpers import FIXTURES

QP = "/usr/bin/qgis_process.bin"
QGIS_PYTHON = "/usr/bin/python3"  # the interpreter Debian's QGIS embeds


def _clean_env(home) -> dict:
    """No venv, no pip configuration (so no index and no extra find-links), a fresh HOME."""
    keep = {k: v for k, v in os.environ.items()
            if k in ("PATH", "LANG", "LC_ALL", "TMPDIR", "PROJ_DATA", "DISPLAY", "XAUTHORITY")}
    return {**keep, "HOME": str(home), "PIP_CONFIG_FILE": os.devnull, "PYTHONNOUSERSITE": "1",
            "PATH": "/usr/local/bin:/usr/bin:/bin"}


@pytest.mark.skipif(not (os.path.exists(QP) and os.path.exists(QGIS_PYTHON)), reason="needs Debian's QGIS")
def test_zip_offline_install_and_classify_without_torch(tmp_path):
    dist = tmp_path / "dist"
    subprocess.run([sys.executable, "scripts/package.py", str(dist)], cwd=ROOT, check=True, capture_output=True)
    zip_path = dist / "rs_sage.zip"
    pack = next(dist.glob("rs_sage-models-*.zip"))
    home = tmp_path / "home"
    profile = home / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default"
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    with zipfile.ZipFile(zip_path) as zf:
        zf.extractall(plugins)
    plugin = plugins / "rs_sage"
    assert (plugin / "core" / "model" / "engine.py").is_file() and (plugin / "resources" / "model_pack.json").is_file()
    assert not (plugin / "rs_sage_dev").exists() and not (plugin / "tests").exists()
    assert not (plugin / "resources" / "models").exists() and not (plugin / "resources" / "text_encoder").exists()

    # On a connected machine: the wheel folder for QGIS's Python and numpy.
    env = _clean_env(home)
    numpy_version = subprocess.run([QGIS_PYTHON, "-c", "import numpy; print(numpy.__version__)"], env=env,
                                   capture_output=True, text=True, check=True).stdout.strip()
    wheels = tmp_path / "wheels"
    made = subprocess.run([sys.executable, "-m", "core", "deps", "wheelhouse", "--out", str(wheels),
                           "--numpy", numpy_version], cwd=ROOT, capture_output=True, text=True, timeout=600)
    if made.returncode != 0:
        pytest.skip("no package index reachable to make the wheel folder: " + made.stderr[-300:])

    # Offline, with QGIS's interpreter and the plugin as installed: no index, only that folder.
    base = profile / "rs_sage" / "python"
    site_before = sorted(os.listdir("/usr/lib/python3/dist-packages"))
    inst = subprocess.run([QGIS_PYTHON, "-m", "core", "deps", "install", "--wheels", str(wheels),
                           "--target", str(base)], cwd=plugin, env=env, capture_output=True, text=True, timeout=600)
    assert inst.returncode == 0, (inst.stdout + inst.stderr)[-3000:]
    assert "--no-index" in inst.stdout
    if numpy_version == "1.24.2":  # Debian 12's QGIS: the shipped lock applies (exact, hash-checked)
        assert "--require-hashes" in inst.stdout and "python3.11-linux_x86_64-numpy1.24.2.txt" in inst.stdout
    target = next(base.glob("python3.*"))
    installed = {p.name.split("-")[0].lower() for p in target.iterdir()}
    assert {"onnxruntime", "tokenizers", "faiss", "shapely", "rs_sage_deps.json"} <= installed
    assert not {n for n in installed if n.startswith("numpy")}, "QGIS's numpy must stay the one imported"
    assert sorted(os.listdir("/usr/lib/python3/dist-packages")) == site_before
    assert not list(base.glob("*.partial"))

    # The model pack from a file (the offline route), into this profile, checked before use.
    models = subprocess.run([QGIS_PYTHON, "-m", "core", "models", "install", str(pack)], cwd=plugin, env=env,
                            capture_output=True, text=True, timeout=600)
    assert models.returncode == 0, (models.stdout + models.stderr)[-3000:]
    assert (profile / "rs_sage" / "models" / "current.json").is_file()

    # torch and transformers cannot be imported at all.
    block = tmp_path / "block"
    for name in ("torch", "transformers"):
        (block / name).mkdir(parents=True)
        (block / name / "__init__.py").write_text("raise ImportError('blocked by the test')\n")
    qenv = {**env, "QT_QPA_PLATFORM": "offscreen", "PYTHONPATH": str(block)}
    enable = subprocess.run([QP, "plugins", "enable", "rs_sage"], env=qenv, capture_output=True, text=True,
                            timeout=120)
    assert enable.returncode == 0 or "already enabled" in enable.stdout + enable.stderr, enable.stdout + enable.stderr
    out = tmp_path / "classes.gpkg"
    from osgeo import gdal

    ds = gdal.Open(str(FIXTURES / "rgbn_clip.tif"))
    gt, w, h = ds.GetGeoTransform(), ds.RasterXSize, ds.RasterYSize
    extent = f"{gt[0]},{gt[0] + w * gt[1]},{gt[3] + h * gt[5]},{gt[3]} [EPSG:32618]"
    run = subprocess.run([QP, "run", "rs_sage:classify_extent", "--json", "--", f"INPUT={FIXTURES / 'rgbn_clip.tif'}",
                          f"EXTENT={extent}", "GSD=5", "TILE=64", f"OUTPUT={out}"],
                         env=qenv, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, (run.stdout + run.stderr)[-3000:]
    json.loads(run.stdout[run.stdout.index("{"):])
    layer = gdal.OpenEx(str(out))
    assert layer.GetLayer(0).GetFeatureCount() == 16
    assert "Traceback" not in run.stderr
