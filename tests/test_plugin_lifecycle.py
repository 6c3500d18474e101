"""The plugin loads like QGIS loads it, adds its GUI and provider, and unload removes them."""

import subprocess
import sys

from conftest import PLUGIN_LINKS, ROOT, _plugin_link


def test_init_gui_adds_action_dock_and_provider(loaded_plugin, recording_iface):
    from qgis.core import QgsApplication

    action = loaded_plugin.action
    assert action in recording_iface.toolbar.actions()
    assert action in recording_iface.menus["&RS-SAGE"].actions()
    assert loaded_plugin.dock in recording_iface.docks
    assert QgsApplication.processingRegistry().providerById("rs_sage") is not None

    action.setChecked(True)
    assert loaded_plugin.dock.isVisible()
    assert "RS-SAGE" in loaded_plugin.dock.status_label.text()
    action.setChecked(False)
    assert not loaded_plugin.dock.isVisible()


def test_unload_removes_everything(loaded_plugin, recording_iface):
    import sys

    import qgis.utils
    import rs_sage.core.model.engine
    import rs_sage.core.model.text_encoder  # noqa: F401
    from qgis.core import QgsApplication

    # the modules the plugin's unload will find (earlier tests may have reloaded the package)
    engine_module = sys.modules["rs_sage.core.model.engine"]
    text_encoder = sys.modules["rs_sage.core.model.text_encoder"]
    action, dock = loaded_plugin.action, loaded_plugin.dock
    engine_module._shared._value = object()  # as if the panel had loaded the model
    text_encoder.shared_encoder()
    assert qgis.utils.unloadPlugin("rs_sage")
    assert engine_module._shared.current is None and text_encoder._shared.current is None  # sessions released
    assert action not in recording_iface.toolbar.actions()
    assert "&RS-SAGE" not in recording_iface.menus
    assert dock not in recording_iface.docks
    assert QgsApplication.processingRegistry().providerById("rs_sage") is None


LOAD_AND_CHECK = f"""
import sys
sys.path.insert(0, {str(PLUGIN_LINKS)!r})
from qgis.core import QgsApplication
from qgis.PyQt.QtWidgets import QMainWindow
app = QgsApplication([], True); app.initQgis()
import qgis.utils
qgis.utils.plugin_paths.append({str(PLUGIN_LINKS)!r}); qgis.utils.updateAvailablePlugins()
from unittest import mock
iface = mock.MagicMock()
window = QMainWindow()
iface.mainWindow.return_value = window
with mock.patch.object(qgis.utils, "iface", iface):
    assert qgis.utils.loadPlugin("rs_sage") and qgis.utils.startPlugin("rs_sage")
heavy = sorted(m for m in ("torch", "onnxruntime", "transformers", "faiss") if m in sys.modules)
print("HEAVY=" + ",".join(heavy))
"""


def test_loading_the_plugin_imports_no_heavy_module():
    _plugin_link()
    proc = subprocess.run(
        [sys.executable, "-c", LOAD_AND_CHECK],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "HEAVY=\n" in proc.stdout, proc.stdout


def test_core_cli_help_without_qgis():
    """``python -m core --help`` lists the sub-commands and works with QGIS off the path."""
    code = (
        "import sys, runpy; sys.path = [p for p in sys.path if 'qgis' not in p and 'dist-packages' not in p];"
        "sys.argv = ['core', '--help']; runpy.run_module('core', run_name='__main__')"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    for sub in ("classify", "ask", "label", "kb", "eval", "bench"):
        assert sub in proc.stdout
    assert "qgis" not in proc.stderr.lower()
