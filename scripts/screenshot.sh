#!/usr/bin/env bash
# Desktop QGIS with the plugin under a virtual display. With SHOT_CODE=scripts/shot_panel.py QGIS
# classifies, asks, saves its own window grabs to out/ and quits; a full-screen grab is kept too.
set -euo pipefail
display=$1; out=$2; root=$(cd "$(dirname "$0")/.." && pwd)
Xvfb "$display" -screen 0 1440x900x24 >/dev/null 2>&1 & xvfb=$!
qgis=""
trap 'kill $qgis $xvfb 2>/dev/null || true' EXIT
sleep 2
raster=${SHOT_RASTER:-$(ls "$root"/resources/sample/*.tif | head -1)}
DISPLAY=$display HOME=${PROFILE_HOME:-$root/.profile} QGIS_PLUGINPATH=${SHOT_PLUGINS:-$root/build/plugins} SHOT_OUT=$root/out \
  PYTHONPATH=$root/.venv/lib/python3.11/site-packages HF_HUB_OFFLINE=1 \
  qgis --noversioncheck --nologo --code "${SHOT_CODE:-$root/scripts/show_panel.py}" "$raster" \
  >"$root/out/qgis_desktop.log" 2>&1 & qgis=$!
for _ in $(seq "${SHOT_WAIT:-25}"); do
  kill -0 $qgis 2>/dev/null || break
  sleep 1
done
if kill -0 $qgis 2>/dev/null; then DISPLAY=$display import -window root "$out"; echo "screenshot: $out"; fi
ls "$root"/out/screenshot_*.png 2>/dev/null || true
