"""Find similar: embeddings written by the labeller, searched by example tiles, images or words,
with the same ranking from the CLI and the Python API (issue 27)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from helpers import FIXTURES, fixture_tiles

from core.cli import main
from core.imagery.labeller import LabelParams, label_raster
from core.questions.similar import ROCCHIO_NEGATIVE, index_path, load_store, make_index, query_vector, search

RASTER = str(FIXTURES / "rgbn_clip.tif")


@pytest.fixture(scope="module")
def engine():
    from core.model.engine import Engine

    return Engine.load(user_kb=False)


@pytest.fixture(scope="module")
def store_path(tmp_path_factory, engine):
    out = tmp_path_factory.mktemp("emb") / "emb.gpkg"
    res = label_raster(LabelParams(RASTER, None, gsd=5, tile=64, labels=["water", "forest", "houses"],
                                   embeddings=str(out)), engine)
    assert res.outputs["embeddings"] == str(out) and res.outputs["index"] == str(index_path(out))
    return out


def test_embeddings_file_holds_unit_vectors_and_a_matching_index(store_path, engine):
    import faiss

    store = load_store(store_path)
    assert len(store.ids) == 16 and store.vectors.shape == (16, 384)
    assert np.allclose(np.linalg.norm(store.vectors, axis=1), 1, atol=1e-4)
    index = faiss.read_index(str(index_path(store_path)))
    assert index.ntotal == 16
    for fid, v in zip(store.ids, store.vectors, strict=True):
        assert np.allclose(index.reconstruct(int(fid)), v)
    # the vectors are Engine.embed's for the same pixels
    direct = engine.embed(fixture_tiles("rgbn_clip.tif", 64)[:1])
    assert direct.shape == (1, 384) and direct.dtype == np.float32
    assert np.allclose(np.linalg.norm(direct, axis=1), 1, atol=1e-4)


def test_cli_and_python_api_give_the_same_ranking(store_path, tmp_path, capsys):
    store = load_store(store_path)
    fid = int(store.ids[5])
    expected = search(store, query_vector([store.vector_of(fid)]), 5, exclude={fid})
    out = tmp_path / "m.gpkg"
    assert main(["similar", str(store_path), "--example", str(fid), "-k", "5", "--json", "--out", str(out)]) == 0
    got = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [g["fid"] for g in got] == [m.fid for m in expected] and fid not in [g["fid"] for g in got]
    assert all(a["similarity"] >= b["similarity"] for a, b in zip(got, got[1:], strict=False))
    from osgeo import ogr

    ds = ogr.Open(str(out))  # kept: the layer dies with its data source
    lyr = ds.GetLayerByName("similar")
    assert [f.GetField("tile_id") for f in lyr] == [m.fid for m in expected]
    # the index gives the same ranking as the brute-force scan
    import faiss

    via_index = search(store, query_vector([store.vector_of(fid)]), 5, exclude={fid},
                       index=faiss.read_index(str(index_path(store_path))))
    assert [m.fid for m in via_index] == [m.fid for m in expected]


def test_not_this_reranks_and_threshold_filters(store_path):
    store = load_store(store_path)
    pos = store.vector_of(int(store.ids[0]))
    before = search(store, query_vector([pos]), 5)
    neg_fid = before[1].fid
    neg = store.vector_of(neg_fid)
    # Rocchio moves the query away from the rejected tile: against every other tile, the rejected
    # one loses ground (similarities rescaled by the query's norm, |pos - ROCCHIO_NEGATIVE neg|, to compare)
    full_before = {m.fid: m.similarity for m in search(store, query_vector([pos]), None, threshold=-1.0)}
    full_after = {m.fid: m.similarity for m in search(store, query_vector([pos], [neg]), None, threshold=-1.0)}
    norm = float(np.linalg.norm(pos - ROCCHIO_NEGATIVE * neg))
    for fid in full_before:
        if fid != neg_fid:
            gap_before = full_before[neg_fid] - full_before[fid]
            gap_after = norm * (full_after[neg_fid] - full_after[fid])
            assert gap_after < gap_before - 1e-4, fid
    rank = [m.fid for m in search(store, query_vector([pos], [neg]), 5)]
    assert neg_fid not in rank or rank.index(neg_fid) >= 1
    some = search(store, query_vector([pos]), None, threshold=before[2].similarity)
    assert len(some) == 3 and all(m.similarity >= before[2].similarity for m in some)


def test_words_and_images_as_queries(store_path, tmp_path, capsys):
    from PIL import Image

    img = tmp_path / "ex.png"
    Image.fromarray(fixture_tiles("rgbn_clip.tif", 64)[3]).save(img)
    assert main(["similar", str(store_path), "--image", str(img), "-k", "3", "--json"]) == 0
    first = json.loads(capsys.readouterr().out.splitlines()[0])
    assert first["similarity"] > 0.95  # the same pixels are in the file
    assert main(["similar", str(store_path), "--text", "river", "-k", "3"]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 3


@pytest.mark.parametrize("argv, message", [
    (["--example", "99999"], "No tile with id"),
    (["--text", "  "], "empty"),
    ([], "at least one example"),
    (["--example", "1", "-k", "0"], "at least 1"),
])
def test_bad_queries_are_clear_errors(store_path, argv, message, capsys):
    assert main(["similar", str(store_path), *argv]) == 2
    assert message in capsys.readouterr().err


def test_ivf_index_above_the_exact_limit_keeps_recall():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(50, 32))
    x = (centres[rng.integers(0, 50, 5000)] + 0.3 * rng.normal(size=(5000, 32))).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    exact = make_index(x, np.arange(5000), exact_max=10_000)
    ivf = make_index(x, np.arange(5000), exact_max=1000)
    q = x[:50]
    _, e = exact.search(q, 10)
    _, a = ivf.search(q, 10)
    recall = np.mean([len(set(e[i]) & set(a[i])) / 10 for i in range(50)])
    assert recall >= 0.95
