"""No network at run time: the runtime commands make no DNS look-up and open no internet socket.

Watched with strace (system calls, so look-ups done inside onnxruntime's C++ telemetry client are
seen too; an LD_PRELOAD shim on getaddrinfo does not see them). The child gets the user's
environment without any of our offline switches, so the test fails if ``core`` stops setting them.
"""

import os
import re
import shutil
import subprocess
import sys

import pytest
from conftest import ROOT
from helpers import FIXTURES

INTERNET = re.compile(r"(connect|sendto|sendmsg)\(\d+, \{sa_family=AF_INET6?\b")
RUNS = {
    "classify": ["classify", str(FIXTURES / "rgbn_clip.tif"), "--labels", "water", "forest"],
    "ask": ["ask", str(FIXTURES / "rgbn_clip.tif"), "-q", "How many buildings are there?"],
    "kb search": ["kb", "search", "harbour with ships"],
}


def _strace_works() -> bool:
    if not shutil.which("strace"):
        return False
    return subprocess.run(["strace", "-f", "-o", os.devnull, "true"], capture_output=True).returncode == 0


@pytest.mark.skipif(not _strace_works(), reason="strace is missing or ptrace is not allowed here")
@pytest.mark.parametrize("name", [*RUNS, "label"])
def test_runtime_commands_touch_no_network(name, tmp_path):
    args = RUNS.get(name) or ["label", str(FIXTURES / "rgbn_clip.tif"), "--out", str(tmp_path / "t.gpkg"),
                              "--gsd", "5", "--tile", "64"]
    env = {k: v for k, v in os.environ.items()
           if not k.startswith(("ORT_", "HF_", "TRANSFORMERS_")) and k != "DO_NOT_TRACK"}
    trace = tmp_path / "trace.txt"
    run = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                          sys.executable, "-m", "core", *args],
                         cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-2000:]
    calls = [line for line in trace.read_text().splitlines() if INTERNET.search(line)]
    assert not calls, "network calls:\n" + "\n".join(calls[:10])
