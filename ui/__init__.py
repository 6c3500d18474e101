"""Qt widgets of the plugin: thin adapters from QGIS to ``core``."""
