"""The shipped ONNX sentence encoder against the transformers reference, and its integrity check."""

import shutil

import numpy as np
import pytest

from core.errors import ModelError
from core.model.text_encoder import MODEL_FILE, TextEncoder
from core.model.vocab import DEFAULT_LABELS
from core.setup.paths import TEXT_ENCODER_DIR
from core.setup.presets import EXAMPLE_QUESTIONS, LAND_COVER

EDGE_CASES = ["", " ", "x" * 3000, "Ünïcödé Straße, 東京 and Zürich", "parkinglot", "solar farm?!",
              "How many storage tanks are there?", "Is this a rural or an urban area?", "\t\nwater\n"]


def _texts() -> list[str]:
    from core.model.knowledge import KnowledgeBase

    kb = KnowledgeBase.load(user_dir=False)
    return [e.embedding_text() for e in kb.entries] + DEFAULT_LABELS + LAND_COVER + EXAMPLE_QUESTIONS + EDGE_CASES


def test_onnx_embeddings_match_transformers():
    pytest.importorskip("transformers")
    from rs_sage_dev.text_export import TorchTextEncoder

    texts = _texts()
    assert len(texts) >= 300
    ours = TextEncoder(cache_size=0).encode(texts)
    ref = TorchTextEncoder().encode(texts)
    cos = (ours * ref).sum(1)
    assert ours.shape == ref.shape == (len(texts), 384)
    assert cos.min() >= 0.9999, texts[int(cos.argmin())]
    assert np.allclose(np.linalg.norm(ours, axis=1), 1, atol=1e-5)


def test_batching_and_cache_do_not_change_embeddings():
    texts = DEFAULT_LABELS + EDGE_CASES
    one_by_one = np.stack([TextEncoder(cache_size=0, batch_size=1, disk_cache=False).encode(t)[0] for t in texts])
    batched = TextEncoder(batch_size=7, disk_cache=False).encode(texts)
    assert np.abs(one_by_one - batched).max() < 1e-5


@pytest.mark.parametrize("damage", ["flip", "missing"])
def test_damaged_text_encoder_is_refused(tmp_path, damage):
    folder = tmp_path / "te"
    shutil.copytree(TEXT_ENCODER_DIR, folder)
    if damage == "flip":
        data = bytearray((folder / MODEL_FILE).read_bytes())
        data[len(data) // 2] ^= 0x01
        (folder / MODEL_FILE).write_bytes(bytes(data))
    else:
        (folder / MODEL_FILE).unlink()
    with pytest.raises(ModelError, match="checksum|missing"):
        TextEncoder(folder=folder, disk_cache=False).encode("water")


def test_run_together_words_are_split_only_where_the_vocabulary_says_so():
    """'sandbeach' is embedded as 'sand beach' (WordPiece would cut it into 'sand ##be ##ach');
    known words, plurals of known words, short parts and multi-word labels stay as written."""
    enc = TextEncoder()
    assert enc.split_joined("sandbeach") == "sand beach"
    assert enc.split_joined("Parkinglot") == "Parking lot"
    assert enc.split_joined("storagetanks") == "storage tanks"
    assert enc.split_joined("green  sandbeach") == "green sand beach"
    for unchanged in ("farmland", "residents", "greenhouses", "churches", "builtup", "lakes and rivers",
                      "built-up area", "solar-farm", "b2b", ""):
        assert enc.split_joined(unchanged) == " ".join(unchanged.split()), unchanged


def test_engine_embeds_a_run_together_label_as_its_split_words():
    from core.model.engine import Engine

    engine = Engine.load(user_kb=False)
    joined, split = engine.label_embeddings(["sandbeach", "marina"]), engine.label_embeddings(["sand beach", "marina"])
    np.testing.assert_allclose(joined, split, atol=1e-6)  # in the model's label templates alike
    raw = engine.text.encode(["sandbeach", "sand beach"])
    assert float(raw[0] @ raw[1]) < 0.99  # the split changes the vector


def test_disk_cache_answers_a_fresh_encoder_without_loading_the_model(tmp_path, monkeypatch):
    """A second process (here: a second encoder) gets the same vectors from disk and never loads
    the ONNX session; a damaged entry is ignored, recomputed and rewritten."""
    monkeypatch.setenv("RS_SAGE_CACHE", str(tmp_path))
    texts = ["water", "sand beach", "Is there a harbour?"]
    reference = TextEncoder(disk_cache=False).encode(texts)
    first = TextEncoder()
    np.testing.assert_allclose(first.encode(texts), reference, atol=1e-6)
    files = sorted(tmp_path.glob("text-*/*.npy"))
    assert len(files) == 3
    second = TextEncoder()
    np.testing.assert_array_equal(second.encode(texts), first.encode(texts))
    assert second._session is None  # answered from disk
    assert second.split_joined("sandbeach") == "sand beach" and second._session is None  # tokenizer only
    files[0].write_bytes(b"not an array")
    third = TextEncoder()
    np.testing.assert_allclose(third.encode(texts), reference, atol=1e-6)
    assert third._session is not None  # one entry had to be computed again
    assert np.load(files[0]).shape == (384,)


def test_disk_cache_stays_bounded(tmp_path, monkeypatch):
    """Past DISK_CACHE_MAX entries the oldest are dropped; what was just written stays."""
    import os
    import time

    import core.model.text_encoder as te

    monkeypatch.setenv("RS_SAGE_CACHE", str(tmp_path))
    monkeypatch.setattr(te, "DISK_CACHE_MAX", 20)
    enc = TextEncoder()
    enc.encode([f"label {i}" for i in range(18)])
    folder = next(tmp_path.glob("text-*"))
    old = time.time() - 3600
    for f in folder.glob("*.npy"):
        os.utime(f, (old, old))
    enc.encode([f"new label {i}" for i in range(5)])
    files = list(folder.glob("*.npy"))
    # 18 + 5 would pass 20: the 5 oldest go (at least a tenth), the 5 new ones are written
    assert len(files) == 18
    assert sum(f.stat().st_mtime < old + 1 for f in files) == 13
    fresh = TextEncoder()
    fresh.encode([f"new label {i}" for i in range(5)])
    assert fresh._session is None  # the newest entries survived the trim
