"""The plugin ZIP (listed: only the plugin, at most 20 MB) and our plugin repository, fetched on
127.0.0.1 by QGIS's own installer module (pyplugin_installer) and installed from its URL."""

from __future__ import annotations

import http.server
import sys
import threading
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))


@pytest.fixture(scope="module")
def plugin_zip(tmp_path_factory):
    from package import build_zip

    out = tmp_path_factory.mktemp("dist") / "rs_sage.zip"
    build_zip(out)
    return out


def test_the_zip_holds_only_the_plugin(plugin_zip):
    names = zipfile.ZipFile(plugin_zip).namelist()
    assert plugin_zip.stat().st_size <= 20 * 1024 * 1024
    assert all(n.startswith("rs_sage/") for n in names)
    tops = {n.split("/")[1] for n in names}
    assert {"metadata.txt", "__init__.py", "plugin.py", "core", "ui", "processing_provider", "resources"} <= tops
    forbidden = ("tests/", "rs_sage_dev/", ".qgis-settings", "__pycache__", ".pyc", "resources/models/",
                 "resources/text_encoder/", ".cache", ".checkpoints", "docs/", "qgis-auth.db")
    assert not [n for n in names if any(f in n for f in forbidden)]
    assert "rs_sage/resources/model_pack.json" in names and "rs_sage/resources/knowledge/manifest.json" in names


def test_the_repository_is_read_by_qgis_plugin_installer(plugin_zip, tmp_path, qgis_app):
    sys.path.insert(0, "/usr/share/qgis/python")
    pytest.importorskip("pyplugin_installer")
    from plugin_repo import main as make_repo
    from qgis.core import QgsSettings
    from qgis.PyQt.QtCore import QCoreApplication

    repo = tmp_path / "repo"
    httpd = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(repo), **k))
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    base = f"http://127.0.0.1:{httpd.server_address[1]}"
    make_repo(str(plugin_zip), str(repo), base)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    settings = QgsSettings()
    key = "app/plugin_repositories/RS-SAGE test repository"
    settings.setValue(key + "/url", base + "/plugins.xml")
    settings.setValue(key + "/enabled", True)
    try:
        from pyplugin_installer.installer_data import plugins, repositories

        repositories.load()
        name = "RS-SAGE test repository"
        repositories.requestFetching(name)
        import time

        t0 = time.time()
        while repositories.fetchingInProgress() and time.time() - t0 < 30:
            QCoreApplication.processEvents()
        found = [p for p in plugins.mPlugins.values() if p.get("id") == "rs_sage"] or \
            [p for p in plugins.repoCache.get(name, [])]
        assert found, repositories.mRepositories[name].get("error")
        plugin = found[0]
        assert plugin["version_available"] == plugin.get("version_available")
        url = plugin["download_url"]
        assert url == base + "/rs_sage.zip"

        # Install as the Plugin Manager does: download the URL, unzip with its unzip helper.
        import urllib.request

        from pyplugin_installer.unzip import unzip

        data = urllib.request.urlopen(url, timeout=30).read()
        (tmp_path / "dl.zip").write_bytes(data)
        target = tmp_path / "profile" / "python" / "plugins"
        target.mkdir(parents=True)
        unzip(str(tmp_path / "dl.zip"), str(target))
        assert (target / "rs_sage" / "metadata.txt").is_file()
        assert "supportsQt6=True" in (target / "rs_sage" / "metadata.txt").read_text()
    finally:
        settings.remove(key)
        httpd.shutdown()
