"""Labels embedded inside sentence templates (prompt ensembling), a setting of the model chosen on
validation (docs/selection_logs/label_templates_rule.md)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.errors import ModelError
from core.model.engine import Engine, label_templates
from core.setup.paths import MODEL_DIR


@pytest.fixture(scope="module")
def engine():
    return Engine.load(user_kb=False)


def test_the_setting_is_checked():
    assert label_templates(None) == ("{}",)
    assert label_templates(["{}", "an aerial image of {}"]) == ("{}", "an aerial image of {}")
    for bad in ([], "{}", ["an image"], ["{} and {}"], [3]):
        with pytest.raises(ModelError, match="label_templates"):
            label_templates(bad)


def test_the_engine_uses_the_shipped_models_templates(engine):
    meta = json.loads((MODEL_DIR / "model.json").read_text())
    assert engine.label_templates == label_templates(meta.get("label_templates"))


def test_a_label_is_the_unit_mean_of_its_templates(engine, monkeypatch):
    templates = ("{}", "an aerial image of {}", "a satellite image of {}")
    monkeypatch.setattr(engine, "label_templates", templates)
    monkeypatch.setattr(engine, "_label_cache", {})
    got = engine.label_embeddings(["town", "{0} odd {}"])
    for row, label in zip(got, ["town", "{0} odd {}"], strict=True):
        # replace, not format: braces in a label are text
        want = engine.text.encode([t.replace("{}", label) for t in templates]).mean(0)
        assert np.allclose(row, want / np.linalg.norm(want), atol=1e-5)
    bare = engine.text.encode(["town"])[0]
    assert not np.allclose(got[0], bare, atol=1e-3)  # the templates changed it
    assert np.allclose(np.linalg.norm(got, axis=1), 1, atol=1e-5)
    assert np.allclose(engine.phrase_embedding("town"), got[0])


def test_bare_templates_give_the_text_encoders_embedding(engine, monkeypatch):
    monkeypatch.setattr(engine, "label_templates", ("{}",))
    monkeypatch.setattr(engine, "_label_cache", {})
    assert np.allclose(engine.label_embeddings(["town", "woods"]), engine.text.encode(["town", "woods"]))
