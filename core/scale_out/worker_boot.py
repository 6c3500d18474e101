"""What a Dask worker runs before any RS-SAGE code is importable there (standard library only).

A worker needs nothing but a Python with the runtime dependencies and dask. The client ships
two bundles as worker plugins, each named by the sha256 of its manifest:

- the *runtime*: the ``core`` package's modules under one package name that does not depend on
  the client (``rs_sage_worker_<sha>``, the same for the CLI, QGIS or a notebook) and the
  knowledge base, a few MB;
- the *model pack*: image model and text encoder, about 100 MB.

Each worker unpacks a bundle once into its cache (``RS_SAGE_WORKER_CACHE``, default
``~/.cache/rs_sage/dask``) under that sha256, after checking every file against the manifest,
so later runs and a worker restarted by its nanny find it there. The scheduler keeps the
plugins and hands them to workers that join later.

This module is pickled *by value* (cloudpickle), so neither the scheduler nor a worker imports
it by name: it must not import anything of RS-SAGE, at module level or inside a function.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import tempfile
import zipfile

from distributed.diagnostics.plugin import WorkerPlugin

PACKAGE_PREFIX = "rs_sage_worker_"
MANIFEST = "manifest.json"


def cache_root() -> str:
    return os.environ.get("RS_SAGE_WORKER_CACHE") or os.path.join(os.path.expanduser("~"), ".cache", "rs_sage",
                                                                  "dask")


def bundle_dir(kind: str, sha: str) -> str:
    return os.path.join(cache_root(), kind, sha)


def has_bundle(kind: str, sha: str) -> bool:
    """The bundle is complete on this worker (its manifest is written last, then the folder renamed)."""
    return os.path.isfile(os.path.join(bundle_dir(kind, sha), MANIFEST))


def plugin_names(dask_scheduler=None) -> list[str]:
    """Run on the scheduler: the worker plugins it holds (and gives to workers that join)."""
    return list(dask_scheduler.worker_plugins)


def _file_sha256(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def install_bundle(kind: str, sha: str, files: dict, data: bytes | None, sources: dict | None) -> str:
    """Unpack (``data``: a zip) or copy (``sources``: relative path -> path on this machine, for a
    local cluster) into a temporary folder, check every file, write the manifest, rename the folder
    into place. A second worker doing the same at the same time loses the rename and keeps the
    winner's copy; a failure leaves nothing under the bundle's name."""
    dest = bundle_dir(kind, sha)
    if has_bundle(kind, sha):
        return dest
    os.makedirs(os.path.dirname(dest), exist_ok=True)
    tmp = tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=os.path.dirname(dest))
    try:
        if data is not None:
            import io

            with zipfile.ZipFile(io.BytesIO(data)) as zf:
                for name in files:
                    target = os.path.join(tmp, *name.split("/"))
                    os.makedirs(os.path.dirname(target), exist_ok=True)
                    with zf.open(name) as src, open(target, "wb") as out:
                        shutil.copyfileobj(src, out, 1 << 20)
        elif sources is not None:
            for name in files:
                target = os.path.join(tmp, *name.split("/"))
                os.makedirs(os.path.dirname(target), exist_ok=True)
                shutil.copyfile(sources[name], target)
        else:
            raise RuntimeError(f"RS-SAGE {kind} {sha[:12]} is not on this worker and was not sent to it.")
        for name, digest in files.items():
            got = _file_sha256(os.path.join(tmp, *name.split("/")))
            if got != digest:
                raise RuntimeError(f"RS-SAGE {kind} {sha[:12]}: {name} arrived damaged (sha256 {got[:12]}, "
                                   f"expected {digest[:12]}).")
        if kind == "packs":  # the layout of an installed model pack (core.setup.paths.installed_root)
            with open(os.path.join(tmp, "current.json"), "w") as f:
                json.dump({"folder": "."}, f)
        with open(os.path.join(tmp, MANIFEST), "w") as f:
            json.dump({"sha256": sha, "files": files}, f)
        try:
            os.replace(tmp, dest)
        except OSError:
            if not has_bundle(kind, sha):
                raise
    finally:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp, ignore_errors=True)
    return dest


class BundlePlugin(WorkerPlugin):
    """Puts one bundle on every worker, now and when a worker (re)joins later."""

    idempotent = True  # registered again under the same name (same sha256): nothing is re-sent

    def __init__(self, kind: str, sha: str, files: dict, data: bytes | None = None, sources: dict | None = None):
        self.kind, self.sha, self.files, self.data, self.sources = kind, sha, files, data, sources

    def setup(self, worker=None):
        install_bundle(self.kind, self.sha, self.files, self.data, self.sources)
        self.data = None  # the worker keeps its plugins: do not keep 100 MB with it


def run(runtime_sha: str, pack_sha: str, function: str, *args):
    """A Dask task: ``function`` of the shipped runtime's ``scale_out.runner`` module, with the shipped
    model pack as the models home."""
    import importlib

    for kind, sha in (("runtime", runtime_sha), ("packs", pack_sha)):
        if not has_bundle(kind, sha):
            raise RuntimeError(f"RS-SAGE {kind} {sha[:12]} is missing on this worker (cache "
                               f"{cache_root()}); its plugin did not run here.")
    root = bundle_dir("runtime", runtime_sha)
    if root not in sys.path:
        sys.path.insert(0, root)
    os.environ["RS_SAGE_MODELS_HOME"] = bundle_dir("packs", pack_sha)
    module = importlib.import_module(PACKAGE_PREFIX + runtime_sha[:16] + ".scale_out.runner")
    return getattr(module, function)(*args)
