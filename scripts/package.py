"""Zip the tracked plugin files as ``rs_sage/`` for QGIS's "Install from ZIP"."""

import subprocess
import sys
import zipfile
from pathlib import Path

EXCLUDED_TOP = {"tests", ".ci", "scripts", "docs", ".gitignore", "Makefile", "pyproject.toml", "rs_sage_dev"}


def main(out: str) -> None:
    root = Path(__file__).resolve().parent.parent
    files = subprocess.run(
        ["git", "ls-files"], cwd=root, check=True, capture_output=True, text=True
    ).stdout.split()
    kept = [f for f in files if f.split("/")[0] not in EXCLUDED_TOP]
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for f in kept:
            zf.write(root / f, f"rs_sage/{f}")
    print(f"{out}: {len(kept)} files")


if __name__ == "__main__":
    main(sys.argv[1])
