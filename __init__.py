"""RS-SAGE QGIS plugin entry point.

QGIS imports this package as ``rs_sage`` and calls :func:`classFactory`. Nothing heavy is
imported here so that QGIS starts fast: torch and onnxruntime load on first use only.
"""


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    from .plugin import RsSagePlugin

    return RsSagePlugin(iface)
