"""Where things live: shipped resources, the shared data set, the user's own knowledge base."""

from __future__ import annotations

import os
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[2]  # core/setup/paths.py -> the plugin folder
RESOURCES = PROJECT_ROOT / "resources"
KB_DIR = RESOURCES / "knowledge"
MODEL_DIR = RESOURCES / "models"
TEXT_ENCODER_DIR = RESOURCES / "text_encoder"
SAMPLE_DIR = RESOURCES / "sample"


def model_dir() -> Path:
    """The model files the runtime loads: the bundled ones in a source checkout, else the
    installed model pack (the plugin ZIP carries none; see ``model_pack``)."""
    return _pick("models", MODEL_DIR, "model.json")


def text_encoder_dir() -> Path:
    """The text encoder and tokenizer, found the same way as ``model_dir``."""
    return _pick("text_encoder", TEXT_ENCODER_DIR, "text_encoder.json")


def _pick(part: str, bundled: Path, probe: str) -> Path:
    if (bundled / probe).is_file():
        return bundled
    root = installed_root()
    return root / part if root is not None else bundled


MANIFEST = "manifest.json"  # of a model pack (core.setup.model_pack)
HOME_ENV = "RS_SAGE_MODELS_HOME"


def models_home() -> Path:
    """Installed model packs: RS_SAGE_MODELS_HOME, else ``rs_sage/models`` beside the user
    knowledge base (in the QGIS profile; the plugin points these variables at the profile it
    runs in)."""
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env)
    return user_kb_dir().parent / "models"


def installed_root(home: Path | None = None) -> Path | None:
    """The folder of the installed pack ``current.json`` points at, or None."""
    import json

    home = Path(home or models_home())
    try:
        cur = json.loads((home / "current.json").read_text())
        root = home / str(cur["folder"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return root if (root / MANIFEST).is_file() else None


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
