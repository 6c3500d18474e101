"""No network at run time: the runtime paths, traced at the system-call level, open no
internet socket (no DNS look-up, no connection), in the import order that used to make
onnxruntime + transformers look up a telemetry host."""

import shutil
import subprocess
import sys

import pytest
from conftest import ROOT

SCRIPT = r"""
import os, sys, tempfile
sys.path.insert(0, sys.argv[1])
import onnxruntime
import transformers
from core.engine import Engine
from core.labeller import LabelParams, label_raster
e = Engine.load(user_kb=False, views=1)
label_raster(LabelParams(sys.argv[2], os.path.join(tempfile.mkdtemp(), "t.gpkg"), gsd=5, tile=128), e)
e.ask([__import__("numpy").zeros((64, 64, 3), "uint8") + 90], "Is there a river?")
print("DONE")
"""


@pytest.mark.skipif(shutil.which("strace") is None, reason="strace is not installed (make setup installs it)")
def test_runtime_opens_no_internet_socket(tmp_path):
    trace = tmp_path / "trace.txt"
    env = {"PATH": "/usr/bin:/bin", "QT_QPA_PLATFORM": "offscreen", "HOME": str(tmp_path)}  # no offline flags
    proc = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto", "-o", str(trace), sys.executable,
                           "-c", SCRIPT, str(ROOT), str(ROOT / "tests/fixtures/rgbn_clip.tif")],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0 and "DONE" in proc.stdout, proc.stderr[-2000:]
    net = [line for line in trace.read_text().splitlines() if "AF_INET" in line]
    assert net == [], net[:5]
