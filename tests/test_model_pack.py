"""The model pack: built, served over real HTTP on 127.0.0.1, downloaded, resumed, verified, installed.

The files in these packs are small stand-ins (the real pack is ~95 MB); every code path is the
one the panel and ``python -m core models install`` take.
"""

from __future__ import annotations

import http.server
import json
import random
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from core.setup.model_pack import (
    PackCancelledError,
    PackError,
    PackInfo,
    build_pack,
    download,
    install_file,
    install_url,
    installed_root,
    pack_url,
    status,
    verify_folder,
)

ROOT = Path(__file__).resolve().parent.parent


def _fake_models(tmp: Path, payload: bytes = random.Random(0).randbytes(300_000)) -> tuple[Path, Path]:
    models, text = tmp / "m", tmp / "t"
    models.mkdir()
    text.mkdir()
    for n in ("encoder.onnx", "experts.onnx"):
        (models / n).write_bytes(payload + n.encode())
    (models / "model.json").write_text('{"version": "9.9.9"}')
    for n in ("minilm.onnx", "text_encoder.json", "tokenizer.json"):
        (text / n).write_bytes(payload[:1000] + n.encode())
    return models, text


@pytest.fixture
def pack(tmp_path):
    models, text = _fake_models(tmp_path)
    info = build_pack(models, text, tmp_path / "dist", "9.9.9")
    return tmp_path / "dist" / info.file, info


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the folder with Range support; ``break_after`` bytes cut a response short once."""
    break_after: int | None = None
    ranges: list = []

    def log_message(self, *a):
        pass

    def do_GET(self):  # noqa: N802
        path = Path(self.directory) / self.path.lstrip("/")
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        rng = self.headers.get("Range")
        type(self).ranges.append(rng)
        if rng:
            start = int(rng.split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        cut = type(self).break_after
        if cut is not None:
            type(self).break_after = None
            self.wfile.write(body[:cut])
            self.wfile.flush()
            self.connection.close()
            return
        self.wfile.write(body)


@pytest.fixture
def server(pack):
    folder = pack[0].parent
    _Handler.break_after, _Handler.ranges = None, []
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                            lambda *a, **k: _Handler(*a, directory=str(folder), **k))
    t = threading.Thread(target=httpd.serve_forever, daemon=True)
    t.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


def test_build_is_deterministic_and_verifiable(tmp_path, pack):
    path, info = pack
    (tmp_path / "again").mkdir()
    again = build_pack(*_fake_models(tmp_path / "again"), tmp_path / "dist2", "9.9.9")
    assert again.sha256 == info.sha256  # same files, same bytes: the plugin can pin the sha256
    root = install_file(path, info, tmp_path / "home")
    manifest = verify_folder(root)
    assert set(manifest["files"]) == {"models/encoder.onnx", "models/experts.onnx", "models/model.json",
                                      "text_encoder/minilm.onnx", "text_encoder/text_encoder.json",
                                      "text_encoder/tokenizer.json"}
    assert installed_root(tmp_path / "home") == root
    assert status(tmp_path / "home", info)["ok"]


def test_good_download_installs(tmp_path, pack, server):
    _, info = pack
    seen = []
    root = install_url(server, info, tmp_path / "home", progress=lambda d, t: seen.append((d, t)))
    assert (root / "models" / "encoder.onnx").is_file()
    assert seen[-1][0] == seen[-1][1] == info.size
    assert not list((tmp_path / "home" / "downloads").glob("*.part"))


def test_interrupted_download_resumes_with_range(tmp_path, pack, server):
    _, info = pack
    _Handler.break_after = 100_000
    with pytest.raises(PackError, match="broke off"):
        install_url(server, info, tmp_path / "home")
    assert installed_root(tmp_path / "home") is None  # nothing half-installed
    part = tmp_path / "home" / "downloads" / (info.file + ".part")
    assert part.stat().st_size == 100_000
    root = install_url(server, info, tmp_path / "home")
    assert _Handler.ranges[-1] == "bytes=100000-"
    verify_folder(root)


def test_wrong_checksum_is_refused_and_nothing_changes(tmp_path, pack, server):
    path, info = pack
    install_file(path, info, tmp_path / "home")  # an older good install stays in use
    before = (tmp_path / "home" / "current.json").read_text()
    bad = PackInfo(info.version, info.file, "0" * 64, info.size)
    with pytest.raises(PackError, match="sha256"):
        install_url(server, bad, tmp_path / "home")
    assert (tmp_path / "home" / "current.json").read_text() == before
    assert not list((tmp_path / "home" / "downloads").glob("*.part"))


def test_404_is_one_clear_error(tmp_path, pack, server):
    _, info = pack
    missing = PackInfo(info.version, "nope.zip", info.sha256, info.size)
    with pytest.raises(PackError, match="HTTP 404"):
        install_url(server, missing, tmp_path / "home")


def test_cancel_keeps_the_partial_for_resume(tmp_path, pack, server):
    _, info = pack
    calls = []
    with pytest.raises(PackCancelledError):
        download(pack_url(info, server), tmp_path / "dl" / info.file, info.sha256,
                 progress=lambda d, t: calls.append(d), cancelled=lambda: len(calls) >= 2)
    assert (tmp_path / "dl" / (info.file + ".part")).is_file()
    assert not (tmp_path / "dl" / info.file).exists()


def test_damaged_or_foreign_files_are_refused(tmp_path, pack):
    path, info = pack
    broken = tmp_path / "broken.zip"
    broken.write_bytes(path.read_bytes()[:5000])
    with pytest.raises(PackError):
        install_file(broken, None, tmp_path / "home")
    root = install_file(path, info, tmp_path / "home")
    (root / "models" / "experts.onnx").write_bytes(b"tampered")
    with pytest.raises(PackError, match="manifest"):
        verify_folder(root)


def test_url_override_by_environment(monkeypatch, pack):
    _, info = pack
    monkeypatch.setenv("RS_SAGE_MODELS_URL", "https://mirror.example.org/packs/")
    assert pack_url(info) == f"https://mirror.example.org/packs/{info.file}"
    assert pack_url(info, "http://x/{version}/{file}") == f"http://x/9.9.9/{info.file}"


def test_cli_models_install_and_verify(tmp_path, pack):
    path, _ = pack
    env = {"RS_SAGE_MODELS_HOME": str(tmp_path / "home"), "PATH": "/usr/bin:/bin"}
    run = subprocess.run([sys.executable, "-m", "core", "models", "install", str(path), "--any-version"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    run = subprocess.run([sys.executable, "-m", "core", "models", "verify", "--any-version"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert json.loads(run.stdout)["installed"] == "9.9.9"
    (Path(json.loads(run.stdout)["folder"]) / "models" / "encoder.onnx").write_bytes(b"bad")
    run = subprocess.run([sys.executable, "-m", "core", "models", "verify", "--any-version"],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "Traceback" not in run.stderr and "manifest" in run.stderr
