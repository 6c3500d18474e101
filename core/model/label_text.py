"""Class names as people type them: one rule for the panel, Processing and the CLI.

``water, cropland, forest, urban area`` on one line is four classes, as are four lines, or
``water; cropland``. Names are trimmed, inner spaces collapsed, empty ones dropped, and a name
repeated (ignoring case) is kept once, in the order first typed.
"""

from __future__ import annotations

import re

SEPARATORS = re.compile(r"[,;\n\r\t]+")


def parse_labels(text: str | list[str] | None) -> list[str]:
    """Class names from free text, or from a list of arguments (each may hold several)."""
    if text is None:
        return []
    parts = SEPARATORS.split("\n".join(text) if isinstance(text, (list, tuple)) else str(text))
    out, seen = [], set()
    for p in parts:
        name = " ".join(p.split())
        if name and name.casefold() not in seen:
            seen.add(name.casefold())
            out.append(name)
    return out


def describe(labels: list[str], limit: int = 8) -> str:
    """'4 classes: water · cropland · forest · urban area' (for the panel, before the run)."""
    if not labels:
        return "No classes yet."
    shown = " · ".join(labels[:limit]) + (f" · … (+{len(labels) - limit})" if len(labels) > limit else "")
    return f"{len(labels)} class{'es' if len(labels) != 1 else ''}: {shown}"
