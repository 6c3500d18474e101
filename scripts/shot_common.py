"""Shared by the screenshot scripts that desktop QGIS runs with --code (scripts/shot_*.py)."""

from qgis.PyQt.QtCore import QTimer


def when_idle(dock, fn, delay=1500):
    """Call ``fn`` ``delay`` ms after the panel's task has finished (the map needs time to draw)."""
    def poll():
        if dock.task is not None:
            QTimer.singleShot(300, poll)
        else:
            QTimer.singleShot(delay, fn)
    QTimer.singleShot(300, poll)
