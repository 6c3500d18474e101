"""Label presets offered by the panel and the algorithms, and the model's sidecar settings."""

from __future__ import annotations

import json

from ..model.vocab import DEFAULT_LABELS
from .paths import model_dir

LAND_COVER = ["water", "forest", "farmland", "grassland", "bare land", "residential area",
              "industrial area", "road"]
PRESETS: dict[str, list[str]] = {
    "AID scene classes (30)": DEFAULT_LABELS,
    "Simple land cover (8)": LAND_COVER,
}
EXAMPLE_QUESTIONS = [
    "Is there a harbour here?",
    "How many storage tanks are there?",
    "Is this a rural or an urban area?",
    "What type of scene is this?",
    "Are there any planes?",
    "Is there a river?",
]


def model_settings() -> dict:
    """The exported model's settings from ``model.json`` (empty dict when not installed)."""
    path = model_dir() / "model.json"
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
