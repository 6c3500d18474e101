"""Shared fixtures: the plugin loaded the way QGIS loads it, and the shared data set."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PLUGIN_LINKS = ROOT / "build" / "plugins"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("PROJ_DATA", "/usr/share/proj")
# Per-machine caches (optimised graphs, text embeddings) go to a folder of this test run, so
# tests neither read what an earlier run or the user left in ~/.cache nor write there.
if "RS_SAGE_CACHE" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["RS_SAGE_CACHE"] = tempfile.mkdtemp(prefix="rs_sage_test_cache_")
    atexit.register(shutil.rmtree, os.environ["RS_SAGE_CACHE"], ignore_errors=True)  # ~100 MB of graphs


# Model packs a test installs go to a folder of this run, never the user's profile.
if "RS_SAGE_MODELS_HOME" not in os.environ:
    import atexit
    import shutil
    import tempfile

    os.environ["RS_SAGE_MODELS_HOME"] = tempfile.mkdtemp(prefix="rs_sage_test_models_")
    atexit.register(shutil.rmtree, os.environ["RS_SAGE_MODELS_HOME"], ignore_errors=True)


def _plugin_link() -> Path:
    """``build/plugins/rs_sage`` -> repo root, the same link ``make setup`` makes."""
    link = PLUGIN_LINKS / "rs_sage"
    if not link.exists():
        PLUGIN_LINKS.mkdir(parents=True, exist_ok=True)
        link.symlink_to(ROOT, target_is_directory=True)
    return PLUGIN_LINKS


class RecordingIface:
    """Gives pytest-qgis's stub iface a real toolbar, raster menu and main window.

    The stub accepts toolbar icons and docks but drops them, so nothing could tell whether the
    plugin added or removed anything; these real widgets make that observable.
    """

    def __init__(self, iface):
        from qgis.PyQt.QtWidgets import QMainWindow, QMenu, QToolBar

        self.window = QMainWindow()
        self.toolbar = QToolBar("Plugins", self.window)
        self.menus: dict[str, QMenu] = {}
        self.docks = []
        self.window.show()
        iface.addToolBarIcon = self.toolbar.addAction
        iface.removeToolBarIcon = self.toolbar.removeAction
        iface.addPluginToRasterMenu = self._add_menu
        iface.removePluginRasterMenu = self._remove_menu
        iface.addDockWidget = self._add_dock
        iface.removeDockWidget = self._remove_dock
        iface.mainWindow = lambda: self.window

    def _add_menu(self, name, action):
        from qgis.PyQt.QtWidgets import QMenu

        self.menus.setdefault(name, QMenu(name, self.window)).addAction(action)

    def _remove_menu(self, name, action):
        menu = self.menus.get(name)
        if menu is not None:
            menu.removeAction(action)
            if not menu.actions():
                del self.menus[name]

    def _add_dock(self, area, dock):
        self.window.addDockWidget(area, dock)
        self.docks.append(dock)

    def _remove_dock(self, dock):
        self.window.removeDockWidget(dock)
        self.docks.remove(dock)


# The plugin's GUI modules are imported as QGIS imports them: as the package ``rs_sage``.
if str(_plugin_link()) not in sys.path:
    sys.path.insert(0, str(PLUGIN_LINKS))


@pytest.fixture
def recording_iface(qgis_iface, monkeypatch):
    original = {
        name: getattr(qgis_iface, name)
        for name in (
            "addToolBarIcon",
            "removeToolBarIcon",
            "addDockWidget",
            "removeDockWidget",
            "mainWindow",
        )
    }
    rec = RecordingIface(qgis_iface)
    yield rec
    for name, fn in original.items():
        setattr(qgis_iface, name, fn)
    for name in ("addPluginToRasterMenu", "removePluginRasterMenu"):
        qgis_iface.__dict__.pop(name, None)


@pytest.fixture
def loaded_plugin(qgis_app, qgis_processing, recording_iface):
    """The plugin loaded by qgis.utils from QGIS_PLUGINPATH, as desktop QGIS does."""
    import qgis.utils

    path = str(_plugin_link())
    if path not in sys.path:
        sys.path.insert(0, path)
    if path not in qgis.utils.plugin_paths:
        qgis.utils.plugin_paths.append(path)
    qgis.utils.updateAvailablePlugins()
    assert "rs_sage" in qgis.utils.available_plugins, "metadata.txt not found on the plugin path"
    assert qgis.utils.loadPlugin("rs_sage"), "qgis.utils.loadPlugin('rs_sage') failed"
    assert qgis.utils.startPlugin("rs_sage"), "qgis.utils.startPlugin('rs_sage') failed"
    plugin = qgis.utils.plugins["rs_sage"]
    yield plugin
    if "rs_sage" in qgis.utils.plugins:
        qgis.utils.unloadPlugin("rs_sage")


def data_root() -> Path:
    return Path(os.environ.get("RS_SAGE_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    root = data_root()
    if not (root / "aid" / "aid_rsicd_captions.jsonl.gz").is_file():
        pytest.skip(f"shared data set not found at {root} (set RS_SAGE_DATA)")
    return root


@pytest.fixture
def raster(tmp_path):
    """A copy of the 5 m clip the test may point outputs at (never the committed fixture)."""
    import shutil

    path = tmp_path / "in.tif"
    shutil.copy(FIXTURES / "rgbn_clip.tif", path)
    return path
