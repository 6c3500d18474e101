#!/usr/bin/env bash
# A new user's first install in desktop QGIS under Xvfb (issue 25), scripted end to end:
#   - a clean profile (a fresh HOME) and ANOTHER python3 first on PATH (it fails loudly and leaves
#     a mark if anything runs it);
#   - the plugin from our repository (make repo's layout, served on 127.0.0.1) through QGIS's
#     Plugin Manager installer; Install dependencies (QGIS's own Python; the package index this
#     machine's pip is configured with); Download models (the pack, served on 127.0.0.1 too);
#     Classify extent on the 5 m sample.
# Screenshots: docs/screenshots/install_*.png; summary: out/desktop_install/install.json.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
display=${DISPLAY_NUM:-:97}
work=$(mktemp -d /tmp/rs_sage_install.XXXXXX)
out=$root/out/desktop_install
rm -rf "$out"; mkdir -p "$out" "$work/home" "$work/fakebin"
py=${PY:-$root/.venv/bin/python}

"$py" "$root/scripts/package.py" "$work/dist" >/dev/null
port=$("$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
base=http://127.0.0.1:$port
"$py" "$root/scripts/plugin_repo.py" "$work/dist/rs_sage.zip" "$work/repo" "$base" >/dev/null
cp "$work"/dist/rs_sage-models-*.zip "$work/repo/"
pack=$(basename "$work"/repo/rs_sage-models-*.zip)

cat > "$work/fakebin/python3" <<FAKE
#!/bin/sh
echo "\$0 \$*" >> "$work/other_python_used"
echo "this is not QGIS's Python (numpy 2.1.0)" >&2
exit 1
FAKE
chmod +x "$work/fakebin/python3"; cp "$work/fakebin/python3" "$work/fakebin/python"

/usr/bin/python3 -m http.server "$port" --bind 127.0.0.1 --directory "$work/repo" >/dev/null 2>&1 & server=$!
Xvfb "$display" -screen 0 1440x900x24 >/dev/null 2>&1 & xvfb=$!
qgis_pid=""
trap 'kill $qgis_pid $server $xvfb 2>/dev/null || true' EXIT
sleep 2
env -i DISPLAY="$display" HOME="$work/home" PATH="$work/fakebin:/usr/local/bin:/usr/bin:/bin" LANG=C.UTF-8 \
  RS_SAGE_MODELS_URL="$base/$pack" SHOT_REPO="$base/plugins.xml" SHOT_OUT="$out" \
  SHOT_RASTER="$root/resources/sample/rgbn_5m.tif" \
  qgis --noversioncheck --nologo --code "$root/scripts/shot_install.py" >"$out/qgis.log" 2>&1 & qgis_pid=$!
for _ in $(seq "${SHOT_WAIT:-400}"); do kill -0 $qgis_pid 2>/dev/null || break; sleep 1; done
if kill -0 $qgis_pid 2>/dev/null; then DISPLAY=$display import -window root "$out/stuck.png"; echo "QGIS did not finish"; fi
if [ -e "$work/other_python_used" ]; then echo "the other python3 was run:"; cat "$work/other_python_used"; fi
python3 - "$out/install.json" "$work" <<'PYEOF'
import json, os, sys
s = json.load(open(sys.argv[1]))
s["other_python_used"] = os.path.exists(os.path.join(sys.argv[2], "other_python_used"))
profile = os.path.join(sys.argv[2], "home/.local/share/QGIS/QGIS3/profiles/default/rs_sage")
def size(p):
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, fs in os.walk(p) for f in fs)
s["installed_mb"] = {k: round(size(os.path.join(profile, k)) / 1e6, 1) for k in ("python", "models")
                     if os.path.isdir(os.path.join(profile, k))}
json.dump(s, open(sys.argv[1], "w"), indent=1)
print(json.dumps(s, indent=1))
PYEOF
