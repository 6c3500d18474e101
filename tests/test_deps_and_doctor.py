"""Dependency installer outcomes (without the network) and the diagnostics report."""

import json
import os
import sys

from core.setup import deps
from core.setup.doctor import as_text, report


def _installed_before(base):
    target = deps.deps_dir(base)
    target.mkdir(parents=True)
    (target / deps.MARKER).write_text("{}")
    (target / "old_package.py").write_text("x = 1\n")
    return target


def test_failed_install_keeps_the_previous_folder(tmp_path):
    base = tmp_path / "py"
    target = _installed_before(base)
    empty = tmp_path / "no_wheels"
    empty.mkdir()
    res = deps.install(base, wheel_dir=empty, python=sys.executable)
    assert res.status == "failed" and "pip failed" in res.message
    assert (target / "old_package.py").read_text() == "x = 1\n"
    assert not list(base.glob("*.partial")) and not list(base.glob("*.old"))
    assert any("--no-index" in line for line in res.log)


def test_cancelled_install_changes_nothing(tmp_path):
    base = tmp_path / "py"
    target = _installed_before(base)
    wheels = tmp_path / "w"
    wheels.mkdir()
    res = deps.install(base, wheel_dir=wheels, python=sys.executable, cancelled=lambda: True)
    assert res.status == "cancelled"
    assert sorted(p.name for p in target.iterdir()) == sorted([deps.MARKER, "old_package.py"])
    assert not list(base.glob("*.partial"))


def test_missing_wheel_folder_is_a_message(tmp_path):
    res = deps.install(tmp_path / "py", wheel_dir=tmp_path / "nowhere", python=sys.executable)
    assert res.status == "failed" and "does not exist" in res.message


def test_activate_adds_only_an_installed_folder(tmp_path, monkeypatch):
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert not deps.activate(tmp_path / "none")
    target = _installed_before(tmp_path / "py")
    assert deps.activate(tmp_path / "py")
    assert sys.path[-1] == str(target)


def test_constraints_pin_the_interpreters_numpy():
    import numpy

    assert f"numpy=={numpy.__version__}" in deps.constraints(sys.executable)


def test_doctor_reports_providers_and_verified_checksums():
    rep = report()
    assert rep["checksums"]["model"] == "ok" and rep["checksums"]["text_encoder"] == "ok"
    assert rep["checksums"]["knowledge_base"].startswith("ok ")
    assert rep["onnxruntime_providers"]["used_by_encoder"][-1] == "CPUExecutionProvider"
    assert rep["missing_runtime_packages"] == []
    text = as_text(rep)
    assert "onnxruntime" in text and "text_encoder: ok" in text
    json.dumps(rep)


def test_the_checkout_is_ready_with_its_model_files():
    from core.setup.status import plugin_status

    st = plugin_status()
    assert {"encoder.onnx", "experts.onnx"} <= set(st.models) and not st.models_missing
    assert st.ready, st.as_text()
    assert st.as_text().startswith("RS-SAGE is ready.")


def test_qgis_python_is_found_from_qgis_never_from_path(tmp_path, monkeypatch):
    """Inside QGIS sys.executable is the QGIS binary; a PATH whose first python3 is another
    interpreter (here one that claims numpy 2 and the wrong version) must not be chosen."""
    import sys

    from core.setup import deps

    fake = tmp_path / "pyenv" / "bin"
    fake.mkdir(parents=True)
    (fake / "python3").write_text("#!/bin/sh\necho 3.13\n")
    (fake / "python3").chmod(0o755)
    monkeypatch.setenv("PATH", f"{fake}:{os.environ.get('PATH', '')}")
    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    monkeypatch.setattr(sys, "exec_prefix", "/usr")
    monkeypatch.setattr(sys, "base_exec_prefix", "/usr")
    chosen = deps.python_executable()
    assert not chosen.startswith(str(fake))
    assert chosen.startswith("/usr/bin/python3")
    # Desktop QGIS on Debian: the embedded Python sets sys.executable from PATH's first "python3"
    # (seen in scripts/desktop_install.sh); that one is outside QGIS's prefix and is not taken.
    monkeypatch.setattr(sys, "executable", str(fake / "python3"))
    chosen = deps.python_executable()
    assert not chosen.startswith(str(fake)) and chosen.startswith("/usr/bin/python3")
    # Windows and macOS layouts are candidates too (from the QGIS binary's folder)
    win = deps.python_candidates("C:/OSGeo4W/bin/qgis-bin.exe", "C:/OSGeo4W/apps/Python312", "x", "3.12")
    assert any(str(p).replace("\\\\", "/").endswith("apps/Python312/python.exe") for p in win)
    mac = deps.python_candidates("/Applications/QGIS.app/Contents/MacOS/QGIS", "/x", "/x", "3.12")
    assert any("Contents/MacOS/bin/python3" in str(p) for p in mac)


def test_a_lock_file_pins_every_package_with_hashes_and_no_resolver(tmp_path):
    """With a lock for this Python, platform and numpy, pip installs exactly the listed wheels
    (hash-checked, --no-deps); without one it falls back to the lower bounds with numpy held."""
    from core.setup import deps

    lock = deps.lock_file("1.24.2")
    if deps.platform_key() == "python3.11-linux_x86_64":
        assert lock is not None
    if lock is not None:
        pins = [ln.split()[0] for ln in lock.read_text().splitlines() if ln and not ln.startswith("#")]
        names = {p.split("==")[0] for p in pins}
        assert {"onnxruntime", "tokenizers", "faiss-cpu", "shapely"} <= names
        assert "numpy" not in names and "pip" not in names
        assert all("--hash=sha256:" in ln for ln in lock.read_text().splitlines() if ln and not ln.startswith("#"))
        args = deps.pip_args(tmp_path, tmp_path / "c.txt", None, False, lock)
        assert args[-4:] == ["--require-hashes", "--no-deps", "-r", str(lock)]
        assert not any(r in args for r in deps.requirements())
    assert deps.lock_file("9.9.9") is None and deps.lock_file("1.24.2", gpu=True) is None
    loose = deps.pip_args(tmp_path, tmp_path / "c.txt", None, False, None)
    assert "-c" in loose and loose[-4:] == deps.requirements() and "--require-hashes" not in loose


def test_write_lock_lists_each_wheel_with_its_sha256(tmp_path):
    import hashlib

    from core.setup import deps

    wheels = tmp_path / "w"
    wheels.mkdir()
    for name in ("onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl", "numpy-1.24.2-cp311-x.whl",
                 "pip-26.3-py3-none-any.whl", "faiss_cpu-1.8.0.post1-cp311-x.whl"):
        (wheels / name).write_bytes(name.encode())
    out = deps.write_lock(wheels, "1.24.2", tmp_path / "locks")
    lines = [ln for ln in out.read_text().splitlines() if not ln.startswith("#")]
    h = hashlib.sha256(b"onnxruntime-1.32.0-cp311-cp311-manylinux_2_28_x86_64.whl").hexdigest()
    assert lines == [f"faiss-cpu==1.8.0.post1 --hash=sha256:"
                     f"{hashlib.sha256(b'faiss_cpu-1.8.0.post1-cp311-x.whl').hexdigest()}",
                     f"onnxruntime==1.32.0 --hash=sha256:{h}"]
