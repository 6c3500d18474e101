"""QGIS-side adapters shared by the panel (``ui``) and the Processing algorithms: what the model
should see of a raster layer, and the tile schema as QGIS fields and features. Neither ``ui``
nor ``processing_provider`` imports the other; both import this."""
