"""The client's half of self-contained Dask workers: what it ships, and how a task is sent.

Workers need only a Python with the runtime dependencies and dask (``docs/scale-out.md``). Before
a run the client makes sure every worker has

- the runtime: this package's modules and the knowledge base (and the user's knowledge entries,
  when the engine uses them), zipped in memory, about 1 MB, sent with every new registration;
- the model pack: the engine's model folder and text encoder, sent only when the scheduler does
  not hold it already and some worker lacks it; workers keep it under its sha256.

A task is ``worker_boot.run`` pickled by value with plain arguments (dicts, lists, numbers), so
the scheduler unpickles the graph without any RS-SAGE module, and the work runs under one package
name (``rs_sage_worker_<sha>``) whatever the client imported this package as (``core`` from the
CLI, ``rs_sage.core`` in QGIS).
"""

from __future__ import annotations

import hashlib
import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

_ZIP_TIME = (2020, 1, 1, 0, 0, 0)  # fixed, so the same files make the same bytes


@dataclass(frozen=True)
class Bundle:
    """Files to ship: ``files`` relative path -> sha256, ``paths`` relative path -> local file."""

    kind: str  # "runtime" or "packs" (the worker cache's folder names)
    sha: str
    files: dict = field(hash=False)
    paths: dict = field(hash=False)

    @property
    def plugin_name(self) -> str:
        return f"rs_sage-{self.kind}-{self.sha[:16]}"

    def zipped(self) -> bytes:
        buf = io.BytesIO()
        method = zipfile.ZIP_DEFLATED if self.kind == "runtime" else zipfile.ZIP_STORED  # ONNX barely shrinks
        with zipfile.ZipFile(buf, "w", method) as zf:
            for name in sorted(self.files):
                info = zipfile.ZipInfo(name, _ZIP_TIME)
                info.compress_type = method
                zf.writestr(info, Path(self.paths[name]).read_bytes())
        return buf.getvalue()


_digests: dict[tuple, str] = {}


def _digest(path: Path) -> str:
    """``model_files.file_digest``, once per file version in this process (every run ships)."""
    from ..model.model_files import file_digest

    st = path.stat()
    key = (str(path), st.st_size, st.st_mtime_ns)
    if key not in _digests:
        _digests[key] = file_digest(path)
    return _digests[key]


def _bundle(kind: str, entries: list[tuple[str, Path]]) -> Bundle:
    files = {name: _digest(p) for name, p in entries}
    sha = hashlib.sha256("".join(f"{n}\0{d}\n" for n, d in sorted(files.items())).encode()).hexdigest()
    return Bundle(kind, sha, files, {name: str(p) for name, p in entries})


def _tree(root: Path, prefix: str, suffixes: tuple[str, ...] | None = None) -> list[tuple[str, Path]]:
    out = []
    for p in sorted(root.rglob("*")):
        if p.is_file() and "__pycache__" not in p.parts and (suffixes is None or p.suffix in suffixes):
            out.append((f"{prefix}/{p.relative_to(root).as_posix()}", p))
    return out


def runtime_bundle(user_kb: Path | None = None) -> Bundle:
    """This package's modules under the worker package name, and the knowledge base beside them
    where ``core.setup.paths`` looks for it. The package name comes from the sha of the sources, so two
    versions of RS-SAGE on one cluster never mix."""
    from ..setup.paths import KB_DIR

    code = Path(__file__).resolve().parents[1]  # the whole runtime package, not only this folder
    sources = _tree(code, "pkg", (".py",))
    data = _tree(KB_DIR, "resources/knowledge")
    if user_kb is not None and Path(user_kb).is_dir():
        data += _tree(Path(user_kb), "resources/user_kb")
    content = _bundle("runtime", sources + data)
    from .worker_boot import PACKAGE_PREFIX

    package = PACKAGE_PREFIX + content.sha[:16]

    def rename(name: str) -> str:
        return package + name[len("pkg"):] if name.startswith("pkg/") else name

    return Bundle("runtime", content.sha, {rename(n): d for n, d in content.files.items()},
                  {rename(n): p for n, p in content.paths.items()})


def model_bundle(model_dir: Path, text_dir: Path) -> Bundle:
    """The engine's model folder and the text encoder, in an installed model pack's layout."""
    return _bundle("packs", _tree(Path(model_dir), "models") + _tree(Path(text_dir), "text_encoder"))


class _ByValue:
    """Pickles a function of ``worker_boot`` by value, whatever pickler the graph goes through."""

    def __init__(self, fn):
        self.fn = fn

    def __call__(self, *args, **kwargs):
        return self.fn(*args, **kwargs)

    def __reduce__(self):
        import cloudpickle

        return cloudpickle.loads, (cloudpickle.dumps(self.fn),)


def _register_by_value():
    import cloudpickle

    from . import worker_boot

    if worker_boot.__name__ not in cloudpickle.list_registry_pickle_by_value():
        cloudpickle.register_pickle_by_value(worker_boot)
    return worker_boot


@dataclass(frozen=True)
class Shipment:
    """What a run's tasks name: the runtime and model pack every worker now has."""

    runtime: Bundle
    pack: Bundle
    sent_pack: bool  # False: the scheduler or every worker had it already

    def task(self):
        """The callable to submit; its arguments: ``function name, *args`` of the worker's
        ``distributed`` module, after the two sha256s (see ``submit``)."""
        return _ByValue(_register_by_value().run)


def ship(client, model_dir: Path, text_dir: Path, user_kb: Path | None = None, local: bool = False) -> Shipment:
    """Register the runtime and (when needed) the model pack with the cluster.

    ``local``: the workers share this machine's disk, so they copy the files from here instead of
    receiving their bytes."""
    boot = _register_by_value()
    runtime = runtime_bundle(user_kb)
    pack = model_bundle(model_dir, text_dir)

    def plugin(b: Bundle):
        if local:
            return boot.BundlePlugin(b.kind, b.sha, b.files, sources=b.paths)
        return boot.BundlePlugin(b.kind, b.sha, b.files, data=b.zipped())

    held = set(client.run_on_scheduler(boot.plugin_names))
    if runtime.plugin_name not in held:
        client.register_plugin(plugin(runtime), name=runtime.plugin_name)
    sent = False
    if pack.plugin_name not in held:
        have = client.run(boot.has_bundle, pack.kind, pack.sha)
        if not have or not all(have.values()):
            client.register_plugin(plugin(pack), name=pack.plugin_name)
            sent = True
    return Shipment(runtime, pack, sent)
