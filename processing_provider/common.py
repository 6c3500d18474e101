"""Shared plumbing of the RS-SAGE algorithms: dependency check, engine, labels."""

from __future__ import annotations

import importlib.util

from qgis.core import QgsProcessingException

from ..core.setup.status import RUNTIME_PACKAGES


def check_dependencies() -> None:
    missing = [pkg for mod, pkg in RUNTIME_PACKAGES.items() if importlib.util.find_spec(mod) is None]
    if missing:
        raise QgsProcessingException(
            "RS-SAGE needs Python packages that are not installed: " + ", ".join(missing)
            + ". Open the RS-SAGE panel and click 'Install dependencies' (or 'From wheels…' offline), "
            "or run: python -m core deps install (see the plugin README, 'Install')."
        )


def engine():
    """The process-wide engine (shared with the panel)."""
    check_dependencies()
    from ..core.errors import RsSageError
    from ..core.model.engine import shared_engine

    try:
        return shared_engine()
    except RsSageError as exc:
        raise QgsProcessingException(str(exc)) from exc


def parse_labels(text: str) -> list[str] | None:
    """Class names by the panel's rule (commas, semicolons, new lines); empty: the model's list."""
    from ..core.model.label_text import parse_labels as parse

    return parse(text) or None
