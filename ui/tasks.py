"""Background work as QgsTasks: the task computes, the GUI thread receives a plain result.

Nothing here touches a QGIS layer or widget from the worker thread; ``on_done`` runs in the
GUI thread (QgsTask.finished) and is where layers are written.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable

from qgis.core import QgsMessageLog, QgsTask


class CoreTask(QgsTask):
    """Runs ``work(progress, cancelled)`` in a worker thread; hands its result to ``on_done``."""

    def __init__(self, description: str, work: Callable, on_done: Callable[[object, str | None, bool], None]):
        super().__init__(description, QgsTask.Flag.CanCancel)
        self.work = work
        self.on_done = on_done
        self.result = None
        self.error: str | None = None

    def run(self) -> bool:
        from ..core.errors import RsSageError
        from ..core.imagery.labeller import Cancelled

        try:
            self.result = self.work(self.setProgress, self.isCanceled)
            return not self.isCanceled()
        except Cancelled:
            return False
        except RsSageError as exc:
            self.error = str(exc)
        except Exception as exc:  # never a traceback in the user's face; the log keeps it
            QgsMessageLog.logMessage(traceback.format_exc(), "RS-SAGE")
            self.error = f"Unexpected error ({type(exc).__name__}: {exc}); details in the RS-SAGE log."
        return False

    def finished(self, ok: bool) -> None:
        self.on_done(self.result if ok else None, self.error, self.isCanceled())


def classify_work(source, extent, labels, gsd, tile, stride, max_tiles):
    """Worker for Classify extent: the streaming labeller, tiles kept in memory (no file)."""

    def work(progress, cancelled):
        from ..core.imagery.labeller import LabelParams, label_raster
        from ..core.model.engine import shared_engine

        params = LabelParams(out_gpkg=None, labels=labels, gsd=gsd, tile=tile, stride=stride, extent=extent,
                             max_tiles=max_tiles, **source.label_params())
        return label_raster(params, shared_engine(), progress=progress, cancelled=cancelled)

    return work


def ask_work(source, geometry_wkt, question, gsd, tile, labels, max_tiles):
    def work(progress, cancelled):
        from shapely import wkt

        from ..core.imagery.tile_cache import shared_tile_cache
        from ..core.model.engine import shared_engine
        from ..core.questions.regions import ask_region

        return ask_region(shared_engine(), source.path, wkt.loads(geometry_wkt), question, gsd, tile,
                          bands=source.bands, stretch=source.stretch(), labels=labels, max_tiles=max_tiles,
                          nodata=source.nodata, cancelled=cancelled, progress=progress, cache=shared_tile_cache())

    return work
