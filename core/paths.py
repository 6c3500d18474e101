"""Where things live: shipped resources, the shared data set, the user's own knowledge base."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESOURCES = PROJECT_ROOT / "resources"
KB_DIR = RESOURCES / "knowledge"
MODEL_DIR = RESOURCES / "models"
TEXT_ENCODER_DIR = RESOURCES / "text_encoder"
SAMPLE_DIR = RESOURCES / "sample"


def data_root() -> Path:
    """The read-only data set (AID, captions, VQA text, GeoTIFFs); ``RS_SAGE_DATA`` overrides."""
    return Path(os.environ.get("RS_SAGE_DATA", PROJECT_ROOT.parent / "shared" / "data"))


def user_kb_dir() -> Path:
    """User knowledge entries live outside the plugin folder so upgrades never erase them.

    ``RS_SAGE_USER_KB`` overrides; the default is an ``rs_sage`` folder in the default QGIS
    profile, which is where a user of the plugin expects their settings to be.
    """
    env = os.environ.get("RS_SAGE_USER_KB")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "QGIS" / "QGIS3" / "profiles" / "default" / "rs_sage" / "knowledge"


def deps_base() -> Path:
    """Where *Install dependencies* puts Python packages (``RS_SAGE_DEPS`` overrides): in the
    QGIS profile, beside the user knowledge base, never in QGIS's own site-packages."""
    env = os.environ.get("RS_SAGE_DEPS")
    if env:
        return Path(env)
    base = Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local" / "share"))
    return base / "QGIS" / "QGIS3" / "profiles" / "default" / "rs_sage" / "python"
