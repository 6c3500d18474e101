"""RS-SAGE core: model, knowledge base, retrieval, raster tiling, engine and CLI.

Pure Python with no QGIS import, so it runs in a script, a worker or a test without QGIS.
Importing this package is cheap: torch, transformers and onnxruntime load on first use.
"""

__version__ = "0.1.0"
