#!/usr/bin/env bash
# Desktop QGIS with the plugin under a virtual display, then a screenshot of the whole screen.
set -euo pipefail
display=$1; out=$2; root=$(cd "$(dirname "$0")/.." && pwd)
Xvfb "$display" -screen 0 1440x900x24 >/dev/null 2>&1 & xvfb=$!
trap 'kill $qgis $xvfb 2>/dev/null || true' EXIT
sleep 2
raster=$(ls "$root"/resources/sample/*.tif | head -1)
DISPLAY=$display HOME=$root/.profile QGIS_PLUGINPATH=$root/build/plugins \
  PYTHONPATH=$root/.venv/lib/python3.11/site-packages HF_HUB_OFFLINE=1 \
  qgis --noversioncheck --code "${SHOT_CODE:-$root/scripts/show_panel.py}" "$raster" >/tmp/rs_sage_qgis.log 2>&1 & qgis=$!
sleep "${SHOT_WAIT:-25}"
DISPLAY=$display import -window root "$out"
echo "screenshot: $out"
