"""The model pack: encoders, experts, text encoder and tokenizer as one versioned, checksummed file.

Why a pack: the official QGIS plugin repository refuses archives over 25 MB and the model files
are about 95 MB, so the plugin ZIP carries code and the knowledge base and the models follow on
first use (download) or from a file (offline machines). A pack is a ZIP with ``manifest.json``
(name, version, and the sha256 and size of every file) and the files under ``models/`` and
``text_encoder/``.

Installing never leaves a half pack: the download goes to ``<home>/downloads/<name>.part``
(resumed with an HTTP Range request after a broken connection), the whole file is checked
against the expected sha256, it is unpacked into a temporary folder, every file is checked
against the manifest, and only then is the folder renamed into place and ``current.json``
replaced (one atomic rename) to point at it.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..errors import RsSageError
from ..model.model_files import file_digest
from .paths import HOME_ENV, MANIFEST, installed_root, models_home  # noqa: F401 (re-exported)

PACK_NAME = "rs_sage-models"
PACK_PARTS = {"models": ("encoder.onnx", "experts.onnx", "encoder.int8.onnx", "experts.int8.onnx", "model.json"),
              "text_encoder": ("minilm.onnx", "text_encoder.json", "tokenizer.json")}
# Where the pack of this plugin version is published. One place; organisations that mirror it set
# RS_SAGE_MODELS_URL (or the QGIS setting "rs_sage/models_url", which the panel passes on).
DEFAULT_URL = "https://github.com/rs-sage/rs-sage/releases/download/models-{version}/{file}"
URL_ENV = "RS_SAGE_MODELS_URL"
CHUNK = 1 << 16


class PackError(RsSageError):
    """A pack that cannot be used: missing, damaged, wrong checksum, refused download."""


class PackCancelledError(RsSageError):
    """The user cancelled; nothing was installed (a partial download is kept for resuming)."""


@dataclass(frozen=True)
class PackInfo:
    """What this plugin version expects: pack version, file name, sha256 and size of the ZIP."""
    version: str
    file: str
    sha256: str
    size: int

    @classmethod
    def load(cls, path: Path | None = None) -> PackInfo:
        from .paths import RESOURCES

        p = Path(path or RESOURCES / "model_pack.json")
        try:
            d = json.loads(p.read_text())
            return cls(str(d["version"]), str(d["file"]), str(d["sha256"]), int(d["size"]))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise PackError(f"{p} is missing or damaged ({exc}); reinstall the plugin.") from exc


def pack_size_text() -> str:
    """'94.5 MB': the size of the pack this plugin expects (for the panel's wording)."""
    try:
        return f"{PackInfo.load().size / 1e6:.1f} MB"
    except PackError:
        return "about 100 MB"


def pack_url(info: PackInfo, override: str | None = None) -> str:
    """The download URL: an explicit override, else RS_SAGE_MODELS_URL, else the default.
    ``{version}`` and ``{file}`` are filled in; a URL ending in '/' gets the file name appended."""
    url = override or os.environ.get(URL_ENV) or DEFAULT_URL
    url = url.format(version=info.version, file=info.file) if "{" in url else url
    return url + info.file if url.endswith("/") else url


# ---- building (make package) ------------------------------------------------------------------
def build_pack(models: Path, text_encoder: Path, out_dir: Path, version: str) -> PackInfo:
    """Write ``<out_dir>/rs_sage-models-<version>.zip`` deterministically (fixed timestamps, sorted
    entries, so the same files give the same sha256) and return its PackInfo."""
    files: dict[str, Path] = {}
    for part, names in PACK_PARTS.items():
        folder = models if part == "models" else text_encoder
        for name in names:
            if (folder / name).is_file():
                files[f"{part}/{name}"] = folder / name
            elif name not in ("encoder.int8.onnx", "experts.int8.onnx"):
                raise PackError(f"{folder / name} is missing; export the model first.")
    manifest = {"name": PACK_NAME, "version": version,
                "files": {k: {"sha256": file_digest(p), "size": p.stat().st_size} for k, p in sorted(files.items())}}
    out_dir.mkdir(parents=True, exist_ok=True)
    out = out_dir / f"{PACK_NAME}-{version}.zip"
    tmp = out.with_suffix(".zip.tmp")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for arc, data in [(MANIFEST, json.dumps(manifest, indent=2).encode())] + \
                         [(k, None) for k in sorted(files)]:
            zi = zipfile.ZipInfo(arc, date_time=(2020, 1, 1, 0, 0, 0))
            zi.compress_type = zipfile.ZIP_DEFLATED
            zi.external_attr = 0o644 << 16
            zf.writestr(zi, data if data is not None else files[arc].read_bytes())
    tmp.replace(out)
    return PackInfo(version, out.name, file_digest(out), out.stat().st_size)


# ---- where packs live: core.setup.paths (models_home, installed_root), re-exported here ------------------
def verify_folder(root: Path, manifest: dict | None = None) -> dict:
    """Check every file of an unpacked pack against its manifest; the manifest."""
    try:
        manifest = manifest or json.loads((root / MANIFEST).read_text())
        files = manifest["files"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise PackError(f"{root / MANIFEST} is missing or damaged ({exc}).") from exc
    for rel, want in files.items():
        p = root / rel
        if not p.is_file():
            raise PackError(f"{p} is missing from the installed model pack; install it again.")
        if p.stat().st_size != want["size"] or file_digest(p) != want["sha256"]:
            raise PackError(f"{p} does not match the pack's manifest (damaged or modified); install it again.")
    return manifest


# ---- installing -------------------------------------------------------------------------------
def install_file(pack: Path, info: PackInfo | None = None, home: Path | None = None) -> Path:
    """Verify and install a pack file; the installed folder. Nothing changes if anything fails."""
    pack = Path(pack)
    home = Path(home or models_home())
    if not pack.is_file():
        raise PackError(f"{pack} does not exist.")
    if info is not None and file_digest(pack) != info.sha256:
        raise PackError(f"{pack.name} does not have the expected sha256 ({info.sha256[:12]}...): damaged, "
                        "incomplete or another version. Nothing was installed.")
    try:
        zf = zipfile.ZipFile(pack)
    except (zipfile.BadZipFile, OSError) as exc:
        raise PackError(f"{pack} is not a model pack ({exc}). Nothing was installed.") from exc
    with zf:
        try:
            manifest = json.loads(zf.read(MANIFEST))
            version = str(manifest["version"])
            names = set(manifest["files"])
        except (KeyError, ValueError, TypeError) as exc:
            raise PackError(f"{pack} has no valid {MANIFEST}. Nothing was installed.") from exc
        if manifest.get("name") != PACK_NAME:
            raise PackError(f"{pack} is not an RS-SAGE model pack.")
        if info is not None and version != info.version:
            raise PackError(f"{pack} holds models {version}; this plugin needs {info.version}.")
        bad = [n for n in names if n.startswith("/") or ".." in Path(n).parts or n.split("/")[0] not in PACK_PARTS]
        if bad or set(zf.namelist()) - names - {MANIFEST}:
            raise PackError(f"{pack} holds unexpected paths ({sorted(bad)[:3]}). Nothing was installed.")
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".incoming-{os.getpid()}-{time.time_ns()}"
        try:
            for n in sorted(names):
                (tmp / n).parent.mkdir(parents=True, exist_ok=True)
                with zf.open(n) as src, open(tmp / n, "wb") as dst:
                    shutil.copyfileobj(src, dst, CHUNK)
            (tmp / MANIFEST).write_text(json.dumps(manifest, indent=2))
            verify_folder(tmp, manifest)
            folder = f"{PACK_NAME}-{version}"
            final = home / folder
            old = home / f".old-{os.getpid()}-{time.time_ns()}"
            if final.exists():
                final.rename(old)
            tmp.rename(final)
            cur = home / "current.json.tmp"
            cur.write_text(json.dumps({"folder": folder, "version": version,
                                       "installed": time.strftime("%Y-%m-%d %H:%M:%S")}) + "\n")
            cur.replace(home / "current.json")
            shutil.rmtree(old, ignore_errors=True)
            return final
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise


def download(url: str, dest: Path, sha256: str | None = None,
             progress: Callable[[int, int], None] | None = None,
             cancelled: Callable[[], bool] | None = None, proxy: str | None = None,
             timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``dest``, resuming ``dest.part`` with a Range request; checked against
    ``sha256`` before it is renamed to ``dest``. ``proxy``: "http://host:port" (QGIS's setting)."""
    dest = Path(dest)
    part = dest.with_name(dest.name + ".part")
    dest.parent.mkdir(parents=True, exist_ok=True)
    handlers = [urllib.request.ProxyHandler({"http": proxy, "https": proxy})] if proxy else []
    opener = urllib.request.build_opener(*handlers)
    have = part.stat().st_size if part.is_file() else 0
    req = urllib.request.Request(url, headers={"Range": f"bytes={have}-"} if have else {})
    try:
        resp = opener.open(req, timeout=timeout)
    except urllib.error.HTTPError as exc:
        if exc.code == 416 and have:  # already complete
            resp = None
        else:
            raise PackError(f"The model pack could not be downloaded from {url}: "
                            f"HTTP {exc.code} {exc.reason}.") from exc
    except (urllib.error.URLError, OSError) as exc:
        raise PackError(f"The model pack could not be downloaded from {url} ({getattr(exc, 'reason', exc)}). "
                        "Offline? Use 'Install from file...' with a pack copied from another machine.") from exc
    if resp is not None:
        with resp:
            resumed = have and resp.status == 206
            total = int(resp.headers.get("Content-Length") or 0) + (have if resumed else 0)
            done = have if resumed else 0
            with open(part, "ab" if resumed else "wb") as f:
                while True:
                    if cancelled and cancelled():
                        raise PackCancelledError("Download cancelled; it resumes where it stopped next time.")
                    try:
                        chunk = resp.read(CHUNK)
                    except (OSError, http.client.HTTPException) as exc:
                        f.write(getattr(exc, "partial", b"") or b"")  # IncompleteRead keeps what came
                        raise PackError(f"The download broke off after {done:,} bytes ({exc}); "
                                        "try again to resume it.") from exc
                    if not chunk:
                        break
                    f.write(chunk)
                    done += len(chunk)
                    if progress:
                        progress(done, total)
            if total and done < total:
                raise PackError(f"The download broke off after {done:,} of {total:,} bytes; try again to resume it.")
    if sha256 and file_digest(part) != sha256:
        part.unlink(missing_ok=True)
        raise PackError(f"The downloaded file from {url} does not have the expected sha256; it was deleted and "
                        "nothing was installed (a damaged mirror or another version).")
    part.replace(dest)
    return dest


def install_url(url: str | None = None, info: PackInfo | None = None, home: Path | None = None,
                progress: Callable[[int, int], None] | None = None,
                cancelled: Callable[[], bool] | None = None, proxy: str | None = None) -> Path:
    """Download (resuming) and install the pack this plugin needs."""
    info = info or PackInfo.load()
    home = Path(home or models_home())
    src = pack_url(info, url)
    file = download(src, home / "downloads" / info.file, info.sha256, progress, cancelled, proxy)
    root = install_file(file, info, home)
    file.unlink(missing_ok=True)
    return root


def status(home: Path | None = None, info: PackInfo | None = None) -> dict:
    """What is installed and whether it is the pack this plugin needs (for the panel and doctor)."""
    root = installed_root(home)
    try:
        need = (info or PackInfo.load()).version
    except PackError:
        need = None
    if root is None:
        return {"installed": None, "needed": need, "ok": False}
    cur = json.loads((Path(home or models_home()) / "current.json").read_text())
    return {"installed": cur.get("version"), "needed": need, "folder": str(root),
            "ok": need is None or cur.get("version") == need}
