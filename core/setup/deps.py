"""Installing the runtime's Python packages from inside QGIS, online or from a folder of wheels.

QGIS's own interpreter runs pip into a folder the plugin owns, keyed by Python version and
platform (``<base>/python3.11-linux_x86_64``), never into QGIS's site-packages. pip works in a
``.partial`` sibling that replaces the folder only on success, so a failed or cancelled install
leaves the previous state. numpy (and GDAL) are QGIS's own: pip is constrained to the numpy QGIS
already has, and the copy pip puts in the folder is removed so QGIS's stays the one imported.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .status import RUNTIME_PACKAGES

# What pip is asked for: ranges, so pip can pick wheels that fit the numpy QGIS ships
# (Debian 12's QGIS has numpy 1.24: shapely 2.2 and faiss-cpu 1.15 would not import there).
# Lower bounds only: the exact versions tested with the venv (requirements-runtime.txt) need
# numpy >= 1.25, and QGIS's own numpy (1.24.2 on Debian 12) must stay the one imported, so exact
# pins cannot resolve there; a constraints file per supported Python and numpy, with hashes, is
# still to do (issue 25).
RUNTIME_REQUIREMENTS = ["onnxruntime>=1.17", "tokenizers>=0.15", "faiss-cpu>=1.7.4", "shapely>=2.0"]
GPU_ONNXRUNTIME = "onnxruntime-gpu>=1.17"

QGIS_OWNED = ("numpy",)  # imported from QGIS's Python, never from our folder
MARKER = "rs_sage_deps.json"


@dataclass
class InstallResult:
    """Typed outcome, so the panel can say exactly what happened."""

    status: str  # "installed", "failed" or "cancelled"
    message: str
    target: Path
    log: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "installed"


def platform_key() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}-{sysconfig.get_platform().replace('-', '_')}"


def deps_dir(base: str | Path) -> Path:
    """The folder for this interpreter and platform (a profile shared by two QGIS versions keeps both)."""
    return Path(base) / platform_key()


def activate(base: str | Path) -> bool:
    """Put an installed folder on ``sys.path`` (after QGIS's own paths, so numpy stays QGIS's)."""
    folder = deps_dir(base)
    if not (folder / MARKER).is_file():
        return False
    if str(folder) not in sys.path:
        sys.path.append(str(folder))
        importlib.invalidate_caches()
    return True


def missing_packages() -> list[str]:
    """pip names of the runtime packages this interpreter cannot import."""
    importlib.invalidate_caches()
    return [pkg for mod, pkg in RUNTIME_PACKAGES.items() if importlib.util.find_spec(mod) is None]


def nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded (then the GPU build of onnxruntime is worth offering)."""
    if Path("/proc/driver/nvidia/version").is_file():
        return True
    smi = shutil.which("nvidia-smi")
    if not smi:
        return False
    try:
        return subprocess.run([smi, "-L"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def python_candidates(executable: str | None = None, exec_prefix: str | None = None,
                      base_prefix: str | None = None, version: str | None = None) -> list[Path]:
    """Where QGIS's own interpreter lives, found from QGIS itself (never from PATH): beside
    ``sys.executable`` when that is a Python; in the prefix QGIS's Python runs from (Linux
    ``bin/python3.X``; Windows OSGeo4W/standalone ``apps/Python3X/python.exe`` and
    ``bin/python3.exe``; macOS app bundle ``Contents/MacOS/bin/python3`` and the bundled framework)."""
    exe = Path(executable or sys.executable)
    version = version or f"{sys.version_info.major}.{sys.version_info.minor}"
    nodot = version.replace(".", "")
    out = []
    prefixes = list(dict.fromkeys(Path(p) for p in (exec_prefix or sys.exec_prefix,
                                                    base_prefix or sys.base_exec_prefix)))
    # Inside desktop QGIS ``sys.executable`` is not QGIS's: the embedded Python finds it by searching
    # PATH for "python3" (measured: another interpreter first on PATH became sys.executable). Only
    # an interpreter inside this Python's own prefix is taken from there.
    if exe.name.lower().startswith("python") and any(_inside(exe, p) for p in prefixes):
        out.append(exe)
    for prefix in prefixes:
        out += [prefix / "bin" / f"python{version}", prefix / "bin" / "python3", prefix / "python.exe",
                prefix / "python3.exe"]
    root = exe.parent.parent  # <QGIS>/bin/qgis-bin.exe -> <QGIS>; <App>.app/Contents/MacOS/QGIS -> Contents
    out += [root / "apps" / f"Python{nodot}" / "python.exe", root / "bin" / "python3.exe",
            root / "bin" / "python.exe", exe.parent / "bin" / "python3", exe.parent / "bin" / f"python{version}",
            root / "Frameworks" / "Python.framework" / "Versions" / version / "bin" / f"python{version}",
            root / "Frameworks" / "Python.framework" / "Versions" / "Current" / "bin" / "python3"]
    return list(dict.fromkeys(out))


def _inside(path: Path, prefix: Path) -> bool:
    try:
        return path.parent in (prefix, prefix / "bin", prefix / "Scripts")
    except (OSError, ValueError):
        return False


def python_executable() -> str:
    """QGIS's Python interpreter (inside QGIS ``sys.executable`` is often the QGIS binary), the
    first candidate that exists and runs this Python's major.minor version. PATH is never used:
    the first ``python3`` there may be another interpreter (a pyenv one with numpy 2)."""
    want = f"{sys.version_info.major}.{sys.version_info.minor}"
    for cand in python_candidates():
        if cand.is_file() and _version_of(cand) == want:
            return str(cand)
    raise FileNotFoundError(f"QGIS's Python {want} interpreter was not found beside QGIS ({sys.executable}, "
                            f"{sys.exec_prefix}); install the packages with its own pip (see README, 'Install').")


def _version_of(python: Path) -> str | None:
    if Path(python).resolve() == Path(sys.executable).resolve():
        return f"{sys.version_info.major}.{sys.version_info.minor}"
    try:
        run = subprocess.run([str(python), "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             capture_output=True, text=True, timeout=30, env={"PATH": os.defpath})
    except (OSError, subprocess.SubprocessError):
        return None
    return run.stdout.strip() if run.returncode == 0 else None


def constraints(python: str | None = None) -> list[str]:
    """Pins that keep pip compatible with what QGIS already has (asked of the interpreter pip runs in)."""
    lines = ["numpy<2"]
    try:
        run = subprocess.run([python or sys.executable, "-c", "import numpy; print(numpy.__version__)"],
                             capture_output=True, text=True, timeout=120)
        if run.returncode == 0 and run.stdout.strip():
            lines.append(f"numpy=={run.stdout.strip()}")
    except (OSError, subprocess.SubprocessError):
        pass
    return lines


def requirements(gpu: bool = False) -> list[str]:
    reqs = list(RUNTIME_REQUIREMENTS)
    if gpu:
        reqs[0] = GPU_ONNXRUNTIME
    return reqs


def pip_entry(python: str, wheel_dir: str | Path | None = None) -> list[str]:
    """How to start pip with that interpreter: its own pip, else pip run from a pip wheel (the
    wheel folder's, or Debian's python3-pip-whl), as many QGIS builds ship no pip module."""
    try:
        has_pip = subprocess.run([python, "-c", "import pip"], capture_output=True, timeout=60).returncode == 0
    except (OSError, subprocess.SubprocessError):
        has_pip = False
    if has_pip:
        return ["-m", "pip"]
    for folder in ([Path(wheel_dir)] if wheel_dir else []) + [Path("/usr/share/python-wheels")]:
        wheels = sorted(folder.glob("pip-*.whl"))
        if wheels:
            return [str(wheels[-1] / "pip")]
    raise FileNotFoundError(f"{python} has no pip; put a pip wheel in the wheel folder, or install pip for "
                            "QGIS's Python (python3-pip on Debian/Ubuntu).")


def lock_name(numpy: str, key: str | None = None) -> str:
    return f"{key or platform_key()}-numpy{numpy}.txt"


def lock_file(numpy: str | None, gpu: bool = False) -> Path | None:
    """The tested versions, with sha256 hashes, for this Python, platform and QGIS's numpy
    (``resources/locks``; written by ``python -m core deps lock``); None where there is none (or for
    the GPU build): then pip chooses within the lower bounds of ``requirements``."""
    from .paths import RESOURCES

    if gpu or not numpy:
        return None
    path = RESOURCES / "locks" / lock_name(numpy)
    return path if path.is_file() else None


def write_lock(wheel_dir: str | Path, numpy: str, out_dir: str | Path) -> Path:
    """A lock file from a folder of wheels that were installed and tested (``deps wheelhouse``):
    ``name==version --hash=sha256:...`` per wheel, numpy (QGIS's own) and pip left out."""
    from ..model.model_files import file_digest

    lines = []
    for w in sorted(Path(wheel_dir).glob("*.whl")):
        name, version = w.name.split("-")[:2]
        name = name.replace("_", "-").lower()
        if name in QGIS_OWNED or name == "pip":
            continue
        lines.append(f"{name}=={version} --hash=sha256:{file_digest(w)}")
    out = Path(out_dir) / lock_name(numpy)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(f"# RS-SAGE runtime for {platform_key()} with numpy {numpy}: exact versions, sha256 hashes\n"
                   + "\n".join(lines) + "\n")
    return out


def pip_args(target: Path, constraints_file: Path, wheel_dir: str | Path | None = None,
             gpu: bool = False, lock: Path | None = None) -> list[str]:
    """With a lock: every package pinned and hash-checked, no resolver (``--no-deps``), so pip
    neither backtracks nor picks newer releases. Without: the lower bounds, numpy held at QGIS's."""
    args = ["install", "--disable-pip-version-check", "--no-input", "--upgrade",
            "--target", str(target), "--only-binary=:all:"]
    if wheel_dir:
        args += ["--no-index", "--find-links", str(wheel_dir)]
    if lock is not None:
        return args + ["--require-hashes", "--no-deps", "-r", str(lock)]
    return args + ["-c", str(constraints_file)] + requirements(gpu)


def install(base: str | Path, wheel_dir: str | Path | None = None, gpu: bool = False,
            log: Callable[[str], None] | None = None, cancelled: Callable[[], bool] | None = None,
            python: str | None = None) -> InstallResult:
    """Run pip into ``deps_dir(base)``; returns what happened, never raises for pip's failures."""
    target = deps_dir(base)
    partial = target.with_name(target.name + ".partial")
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if log:
            log(line)

    if wheel_dir and not Path(wheel_dir).is_dir():
        return InstallResult("failed", f"The wheel folder {wheel_dir} does not exist.", target, lines)
    shutil.rmtree(partial, ignore_errors=True)
    partial.mkdir(parents=True)
    cfile = partial / "constraints.txt"
    try:
        python = python or python_executable()
        pins = constraints(python)
        cfile.write_text("\n".join(pins) + "\n")
        numpy = next((p.split("==", 1)[1] for p in pins if p.startswith("numpy==")), None)
        lock = lock_file(numpy, gpu)
        say(f"versions: {lock.name} (exact, hash-checked)" if lock else
            f"versions: chosen by pip within {', '.join(requirements(gpu))} (no lock file for "
            f"{platform_key()} with numpy {numpy})")
        cmd = [python, *pip_entry(python, wheel_dir), *pip_args(partial, cfile, wheel_dir, gpu, lock)]
    except FileNotFoundError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return InstallResult("failed", str(exc), target, lines)
    say("$ " + " ".join(cmd))
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONNOUSERSITE": "1"}
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    except OSError as exc:
        shutil.rmtree(partial, ignore_errors=True)
        return InstallResult("failed", f"pip could not be started ({exc}).", target, lines)
    assert proc.stdout is not None
    for line in proc.stdout:
        say(line.rstrip())
        if cancelled and cancelled():
            proc.terminate()
            proc.wait(timeout=30)
            shutil.rmtree(partial, ignore_errors=True)
            return InstallResult("cancelled", "Cancelled; nothing was changed.", target, lines)
    rc = proc.wait()
    if rc != 0:
        shutil.rmtree(partial, ignore_errors=True)
        hint = " (offline: use 'Install from a folder of wheels')" if not wheel_dir else ""
        return InstallResult("failed", f"pip failed (exit {rc}){hint}; the last lines of its log say why.",
                             target, lines)
    _drop_qgis_owned(partial)
    (partial / MARKER).write_text(json.dumps({
        "python": sys.version.split()[0], "platform": platform_key(), "requirements": requirements(gpu),
        "constraints": cfile.read_text().split(), "lock": lock.name if lock else None,
        "wheel_dir": str(wheel_dir) if wheel_dir else None,
        "installed": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=2) + "\n")
    cfile.unlink()
    old = target.with_name(target.name + ".old")
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    partial.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return InstallResult("installed", f"Installed into {target}.", target, lines)


def _drop_qgis_owned(folder: Path) -> None:
    """Remove pip's copies of numpy (and numpy.libs, its dist-info, console scripts)."""
    for path in folder.iterdir():
        stem = path.name.split("-")[0].split(".")[0].lower()
        if stem in QGIS_OWNED or path.name == "bin":
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink()


def wheelhouse(out: str | Path, platform: str | None = None, python_version: str | None = None,
               numpy: str | None = None, gpu: bool = False, python: str | None = None) -> list[Path]:
    """Download every wheel an offline machine needs (run on a connected one) into ``out``: the
    locked versions where this machine's Python, platform and that numpy have a lock file."""
    from ..errors import RsSageError

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfile = out / "constraints.txt"
    cfile.write_text("numpy<2\n" + (f"numpy=={numpy}\n" if numpy else ""))
    cmd = [python or sys.executable, "-m", "pip", "download", "--disable-pip-version-check", "--only-binary=:all:",
           "-d", str(out)]
    if platform:
        cmd += ["--platform", platform]
    if python_version:
        cmd += ["--python-version", python_version]
    lock = lock_file(numpy, gpu) if not platform and not python_version else None
    wanted = ["--require-hashes", "--no-deps", "-r", str(lock)] if lock else ["-c", str(cfile), *requirements(gpu)]
    run = subprocess.run(cmd + wanted, capture_output=True, text=True)
    if run.returncode == 0:  # pip too: some QGIS builds have no pip module; the installer runs it from its wheel
        run = subprocess.run(cmd + ["--no-deps", "pip"], capture_output=True, text=True)
    if run.returncode != 0:
        raise RsSageError("pip download failed:\n" + run.stdout[-1500:] + run.stderr[-1500:])
    return sorted(out.glob("*.whl"))
