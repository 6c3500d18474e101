"""The model at run time: the ONNX engine, the text encoder, the knowledge base and its search,
the vocabulary, and the checks on model files and on what a tile shows (no raster I/O here)."""
