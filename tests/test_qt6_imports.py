"""QGIS 4 runs plugins on PyQt6. Where PyQt6 installs from the package index, every plugin module
(panel, Processing, adapters) is imported against it: ``qgis.PyQt.X`` is PyQt6's ``X`` and
nothing else (no Qt5 names such as ``QtWidgets.QAction``), while ``qgis.core`` / ``qgis.gui``
are stand-ins, since no QGIS 4 build exists here. What runs at import time (class bodies,
default arguments, module constants, every Qt import) is checked; ``tests/test_qt6_ready.py``
checks the rest of the source (scoped enums, ``exec()``)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

MODULES = ["plugin", "ui.dock", "ui.sections", "ui.similar", "ui.tasks", "ui.map_tool", "ui.result_layers",
           "ui.dependencies", "processing_provider.provider", "processing_provider.algorithms",
           "processing_provider.common", "qgis_adapter.layer_source", "qgis_adapter.tile_features"]

STAND_IN = '''
class _Meta(type):
    def __getattr__(cls, name):
        if name.startswith("__"):
            raise AttributeError(name)
        return _stand_in(name)

    def __call__(cls, *a, **k):
        return super().__call__()

    def __or__(cls, other):
        return cls


def _stand_in(name):
    return _Meta(name, (), {})


def __getattr__(name):
    if name.startswith("__"):
        raise AttributeError(name)
    return _stand_in(name)
'''


@pytest.fixture(scope="module")
def pyqt6(tmp_path_factory):
    """PyQt6 in a folder of its own (a cache under .cache, reused by later runs)."""
    target = ROOT / ".cache" / "pyqt6"
    if not list(target.glob("PyQt6/QtWidgets*")):
        run = subprocess.run([sys.executable, "-m", "pip", "install", "--disable-pip-version-check", "--quiet",
                              "--target", str(target), "PyQt6"], capture_output=True, text=True, timeout=600)
        if run.returncode != 0:
            pytest.skip("PyQt6 does not install here: " + run.stderr[-300:])
    shim = tmp_path_factory.mktemp("qt6")
    (shim / "qgis" / "PyQt").mkdir(parents=True)
    (shim / "qgis" / "__init__.py").write_text("")
    (shim / "qgis" / "PyQt" / "__init__.py").write_text("")
    for mod in ("QtCore", "QtGui", "QtWidgets", "QtNetwork", "QtSvg", "QtXml"):
        (shim / "qgis" / "PyQt" / f"{mod}.py").write_text(f"from PyQt6.{mod} import *  # noqa\n")
    for mod in ("core", "gui", "utils", "processing"):
        (shim / "qgis" / f"{mod}.py").write_text(STAND_IN)
    (shim / "processing.py").write_text(STAND_IN)
    (shim / "rs_sage").symlink_to(ROOT, target_is_directory=True)
    return shim, target


def test_every_plugin_module_imports_against_pyqt6(pyqt6):
    shim, target = pyqt6
    code = ("import importlib, sys\n"
            "import PyQt6.QtCore as c; assert c.PYQT_VERSION_STR.startswith('6')\n"
            f"for m in {MODULES!r}:\n"
            "    importlib.import_module('rs_sage.' + m)\n"
            "    print('ok', m)\n")
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": f"{shim}:{target}",
           "QT_QPA_PLATFORM": "offscreen"}
    run = subprocess.run([sys.executable, "-c", code], cwd=shim, env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr[-3000:]
    assert run.stdout.count("ok ") == len(MODULES)


def test_the_stand_in_catches_a_qt5_only_import(pyqt6):
    """The check can fail: QAction lives in QtGui under Qt6, not in QtWidgets."""
    shim, target = pyqt6
    env = {**{k: v for k, v in os.environ.items() if k != "PYTHONPATH"}, "PYTHONPATH": f"{shim}:{target}"}
    run = subprocess.run([sys.executable, "-c", "from qgis.PyQt.QtWidgets import QAction"], cwd=shim, env=env,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode != 0 and "QAction" in run.stderr
    assert Path(shim / "rs_sage" / "metadata.txt").is_file()
