"""The raster pipeline: windows read through GDAL, tile grids, the valid-pixel rule, contrast,
the streaming labeller and what it writes (tile schema, colours, area units)."""
