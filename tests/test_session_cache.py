"""The optimised-graph cache: the second load uses it, answers do not change, damage is survived."""

import numpy as np
from helpers import fixture_tiles

from core.model.engine import Engine


def _scores(engine, tiles):
    return np.array([[s for _, s in r.top] for r in engine.classify(tiles, ["water", "forest", "houses"], top_k=3)])


def test_cached_graphs_give_the_same_answers_and_survive_damage(tmp_path, monkeypatch):
    monkeypatch.setenv("RS_SAGE_CACHE", str(tmp_path))
    tiles = fixture_tiles()[:4]
    first = Engine.load(user_kb=False)
    built = sorted(tmp_path.glob("*.onnx"))
    assert len(built) == 2  # the image encoder and the experts
    again = Engine.load(user_kb=False)  # now from the cache
    assert np.allclose(_scores(first, tiles), _scores(again, tiles), atol=1e-5)
    built[0].write_bytes(b"not a model")
    damaged = Engine.load(user_kb=False)  # falls back to the model file and rebuilds the entry
    assert np.allclose(_scores(first, tiles), _scores(damaged, tiles), atol=1e-5)
    assert built[0].stat().st_size > 1000
