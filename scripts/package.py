"""``make package``: the plugin ZIP (code, icons, knowledge base: what the official QGIS plugin
repository takes, at most 20 MB) and the model pack beside it (``core.setup.model_pack``).

    python3 scripts/package.py OUT_DIR        -> OUT_DIR/rs_sage.zip, OUT_DIR/rs_sage-models-<v>.zip

``resources/model_pack.json`` (the pack's version, file name, sha256 and size, which the plugin
checks a download against) is rewritten from the pack just built; the pack is deterministic, so
it only changes when the model files do.
"""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# Top-level entries that are development material, never plugin code.
EXCLUDED_TOP = {"tests", ".ci", "scripts", "docs", ".gitignore", "Makefile", "pyproject.toml", "rs_sage_dev",
                "requirements.txt", "constraints.txt"}
# Large model files travel in the pack, not in the ZIP.
EXCLUDED_PREFIXES = ("resources/models/", "resources/text_encoder/")
ZIP_LIMIT_BYTES = 20 * 1024 * 1024


def plugin_files(root: Path = ROOT) -> list[str]:
    """Tracked files that belong in the plugin ZIP (a QGIS profile or cache is never tracked)."""
    files = subprocess.run(["git", "ls-files", "-z"], cwd=root, check=True, capture_output=True,
                           text=True).stdout.split("\0")
    return [f for f in files if f and f.split("/")[0] not in EXCLUDED_TOP and not f.startswith(".")
            and not f.startswith(EXCLUDED_PREFIXES) and (root / f).is_file()]


def build_zip(out: Path, root: Path = ROOT) -> list[str]:
    kept = plugin_files(root)
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in kept:
            zf.write(root / f, f"rs_sage/{f}")
    size = out.stat().st_size
    if size > ZIP_LIMIT_BYTES:
        raise SystemExit(f"{out} is {size / 1e6:.1f} MB, over the 20 MB limit")
    return kept


def main(out_dir: str) -> None:
    from core.setup.model_pack import build_pack
    from core.setup.paths import MODEL_DIR, RESOURCES, TEXT_ENCODER_DIR

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    version = json.loads((MODEL_DIR / "model.json").read_text())["version"]
    info = build_pack(MODEL_DIR, TEXT_ENCODER_DIR, out, version)
    (RESOURCES / "model_pack.json").write_text(json.dumps(
        {"version": info.version, "file": info.file, "sha256": info.sha256, "size": info.size}, indent=2) + "\n")
    kept = build_zip(out / "rs_sage.zip")
    print(f"{out / 'rs_sage.zip'}: {len(kept)} files, {(out / 'rs_sage.zip').stat().st_size / 1e6:.1f} MB")
    print(f"{out / info.file}: {info.size / 1e6:.1f} MB, sha256 {info.sha256}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "out")
