"""Make a clean QGIS profile under the given HOME with the rs_sage plugin enabled."""

import configparser
import sys
from pathlib import Path

home = Path(sys.argv[1])
ini = home / ".local/share/QGIS/QGIS3/profiles/default/QGIS/QGIS3.ini"
ini.parent.mkdir(parents=True, exist_ok=True)
cfg = configparser.ConfigParser()
cfg.optionxform = str
if ini.exists():
    cfg.read(ini)
for section, values in {
    "PythonPlugins": {"rs_sage": "true"},
    "qgis": {"showTips322": "false", "checkVersion": "false"},
    "core": {"NewsFeed\\httpsfeedqgisorg\\disabled": "true"},
}.items():
    if not cfg.has_section(section):
        cfg.add_section(section)
    for k, v in values.items():
        cfg.set(section, k, v)
with open(ini, "w") as f:
    cfg.write(f)
print(f"profile ready: {ini}")
