"""``make repo``: a QGIS plugin repository of our own: ``plugins.xml`` and the plugin ZIP in the
layout QGIS's Plugin Manager reads (Settings > Repositories > Add, URL = .../plugins.xml).

    python3 scripts/plugin_repo.py ZIP OUT_DIR [BASE_URL]

BASE_URL is where OUT_DIR will be served from (download_url = BASE_URL/rs_sage.zip); the default
is a relative file name, which QGIS resolves against the repository URL.
"""

from __future__ import annotations

import configparser
import shutil
import sys
from pathlib import Path
from xml.sax.saxutils import escape

ROOT = Path(__file__).resolve().parent.parent


def metadata(path: Path = ROOT / "metadata.txt") -> dict[str, str]:
    cp = configparser.ConfigParser(interpolation=None)
    cp.read(path, encoding="utf-8")
    return dict(cp["general"])


def plugins_xml(meta: dict[str, str], zip_name: str, base_url: str) -> str:
    url = f"{base_url.rstrip('/')}/{zip_name}" if base_url else zip_name
    fields = {
        "description": meta.get("description", ""), "about": meta.get("about", ""),
        "version": meta["version"], "qgis_minimum_version": meta.get("qgisminimumversion", "3.22"),
        "qgis_maximum_version": meta.get("qgismaximumversion", "4.99"), "homepage": meta.get("homepage", ""),
        "file_name": zip_name, "icon": meta.get("icon", ""), "author_name": meta.get("author", ""),
        "download_url": url, "repository": meta.get("repository", ""), "tracker": meta.get("tracker", ""),
        "tags": meta.get("tags", ""), "experimental": meta.get("experimental", "False"),
        "deprecated": meta.get("deprecated", "False"), "trusted": "False",
        "server": meta.get("server", "False"), "supports_qt6": meta.get("supportsqt6", "False"),
    }
    body = "\n".join(f"    <{k}>{escape(v)}</{k}>" for k, v in fields.items())
    return ('<?xml version="1.0" encoding="UTF-8"?>\n<plugins>\n'
            f'  <pyqgis_plugin name="{escape(meta["name"])}" version="{escape(meta["version"])}" plugin_id="1">\n'
            f"{body}\n  </pyqgis_plugin>\n</plugins>\n")


def main(zip_path: str, out_dir: str, base_url: str = "") -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shutil.copy(zip_path, out / "rs_sage.zip")
    xml = out / "plugins.xml"
    xml.write_text(plugins_xml(metadata(), "rs_sage.zip", base_url), encoding="utf-8")
    print(f"{xml}: repository of rs_sage {metadata()['version']}")
    return xml


if __name__ == "__main__":
    main(*sys.argv[1:4])
