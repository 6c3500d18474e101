"""RS-SAGE core: model, knowledge base, retrieval, raster tiling, engine and CLI.

Pure Python with no QGIS import, so it runs in a script, a worker or a test without QGIS.
Importing this package is cheap: torch, transformers and onnxruntime load on first use.
"""

__version__ = "0.3.0"

# Everything runs offline: no hub look-ups, no telemetry, whatever the user's environment says
# (set before any library that reads these is imported).
import os as _os

# ORT_DISABLE_TELEMETRY: onnxruntime >= 1.29 on Linux and macOS resolves and posts to
# mobile.events.data.microsoft.com unless it is set before its environment is created.
for _key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_HUB_DISABLE_TELEMETRY", "HF_DATASETS_OFFLINE",
             "DO_NOT_TRACK", "ORT_DISABLE_TELEMETRY"):
    _os.environ[_key] = "1"
