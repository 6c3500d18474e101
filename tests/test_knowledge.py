"""Knowledge base: shipped content, exact retrieval quality, integrity checks, user entries."""

import json
import shutil

import numpy as np
import pytest

from core.errors import KnowledgeBaseError
from core.model.knowledge import KnowledgeBase, UserKnowledge, read_import_file
from core.model.text_encoder import shared_encoder
from core.setup.paths import KB_DIR

# query -> names any of which must rank first at the given level
RETRIEVAL_CASES = [
    ("airplanes on an apron", "scene", {"airport", "airplane"}),
    ("airplanes parked on an apron", "object", {"plane", "apron"}),
    ("rows of greenhouses", "scene", {"greenhouse"}),
    ("a tennis court", "scene", {"tennis court"}),
    ("a tennis court", "object", {"tennis court"}),
    ("bare sand dunes", "scene", {"desert"}),
    ("ships moored at a harbour pier", "scene", {"port"}),
    ("many storage tanks", "object", {"storage tank", "tank"}),
    ("a baseball diamond", "scene", {"baseball field"}),
    ("a river winding through fields", "scene", {"river"}),
    ("cars parked in rows", "scene", {"parking lot"}),
    ("dense forest canopy", "scene", {"forest"}),
    ("densely packed", "attribute", {"densely packed", "dense", "compact"}),
    ("bare soil", "attribute", {"bare soil", "bare"}),
]


@pytest.fixture(scope="module")
def kb():
    return KnowledgeBase.load(user_dir=False)


def test_shipped_base_meets_size_targets(kb):
    counts = {lv: len(kb.level_rows[lv]) for lv in ("scene", "object", "attribute")}
    assert counts["scene"] >= 60 and counts["object"] >= 300 and counts["attribute"] >= 100, counts
    assert all(e.text.strip() and e.name.strip() for e in kb.entries)
    assert np.allclose(np.linalg.norm(kb.embeddings, axis=1), 1, atol=1e-4)


@pytest.mark.parametrize("query,level,expected", RETRIEVAL_CASES)
def test_plain_queries_put_the_right_concept_first(kb, query, level, expected):
    rows, scores = kb.search(shared_encoder().encode([query]), level, 5)
    top = kb.entries[rows[0, 0]].name
    assert top in expected, f"{query!r} -> {[kb.entries[r].name for r in rows[0]]}"
    assert scores[0, 0] >= scores[0, -1]


def test_search_matches_brute_force(kb):
    q = shared_encoder().encode(["a bridge over a river", "a parking lot"])
    rows, scores = kb.search(q, "object", 8)
    obj = kb.level_rows["object"]
    sims = q @ kb.embeddings[obj].T
    ref = obj[np.argsort(-sims, axis=1)[:, :8]]
    assert (rows == ref).all()
    lrows, lscores = kb.search_levels(np.stack([q, q, q], 1), 8)
    assert lrows.shape == (2, 3, 8) and (lrows[:, 1] == rows).all()


def test_tampered_base_is_refused(tmp_path):
    bad = tmp_path / "kb"
    shutil.copytree(KB_DIR, bad)
    lines = (bad / "entries.jsonl").read_text().splitlines()
    first = json.loads(lines[0])
    first["name"] = "tampered"
    lines[0] = json.dumps(first)
    (bad / "entries.jsonl").write_text("\n".join(lines) + "\n")
    with pytest.raises(KnowledgeBaseError, match="checksum"):
        KnowledgeBase.load(bad, user_dir=False)


def test_wrong_encoder_in_manifest_is_refused(tmp_path):
    bad = tmp_path / "kb"
    shutil.copytree(KB_DIR, bad)
    m = json.loads((bad / "manifest.json").read_text())
    m["encoder"] = "some-other-encoder"
    (bad / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(KnowledgeBaseError, match="embedded with"):
        KnowledgeBase.load(bad, user_dir=False)


def test_user_entries_are_searched_with_the_shipped_base(kb, tmp_path):
    user = UserKnowledge(tmp_path / "user")
    user.add([{"level": "object", "name": "photovoltaic array",
               "text": "rows of dark blue solar panels on a field"}], kb.entries)
    merged = KnowledgeBase.load(user_dir=tmp_path / "user")
    rows, _ = merged.search(shared_encoder().encode(["solar panels in rows"]), "object", 3)
    assert "photovoltaic array" in [merged.entries[r].name for r in rows[0]]
    assert len(merged.entries) == len(kb.entries) + 1


@pytest.mark.parametrize("item,message", [
    ({"level": "galaxy", "name": "x", "text": "y"}, "Unknown level"),
    ({"level": "object", "name": "x", "text": "  "}, "text is empty"),
    ({"level": "object", "name": "", "text": "y"}, "name is empty"),
    ({"level": "scene", "name": "Airport", "text": "y"}, "already exists"),
])
def test_bad_user_entries_give_clear_errors_and_write_nothing(kb, tmp_path, item, message):
    user = UserKnowledge(tmp_path / "user")
    with pytest.raises(KnowledgeBaseError, match=message):
        user.add([item], kb.entries)
    assert not (tmp_path / "user" / "entries.jsonl").exists()


def test_import_formats(tmp_path):
    good = tmp_path / "a.csv"
    good.write_text("level,name,text\nobject,wind turbine,a tall white tower with three blades\n")
    assert read_import_file(good)[0]["name"] == "wind turbine"
    for name, content, message in [
        ("b.csv", "name,text\nx,y\n", "lacks the column"),
        ("c.json", "{not json", "not valid JSON"),
        ("d.json", '{"a": 1}', "expected a JSON list"),
        ("e.txt", "whatever", "unsupported file type"),
    ]:
        p = tmp_path / name
        p.write_text(content)
        with pytest.raises(KnowledgeBaseError, match=message):
            read_import_file(p)
    with pytest.raises(KnowledgeBaseError, match="not found"):
        read_import_file(tmp_path / "missing.json")


@pytest.mark.data
def test_build_reproduces_the_shipped_base(shared_data, tmp_path):
    from rs_sage_dev.kb_build import build

    manifest = build(tmp_path / "kb", shared_data)
    shipped = json.loads((KB_DIR / "manifest.json").read_text())
    assert (tmp_path / "kb" / "entries.jsonl").read_bytes() == (KB_DIR / "entries.jsonl").read_bytes()
    a, b = np.load(tmp_path / "kb" / "embeddings.npy"), np.load(KB_DIR / "embeddings.npy")
    assert np.abs(a - b).max() <= shipped["float_tolerance"]
    assert manifest["counts"] == shipped["counts"]


def test_a_broken_user_line_is_skipped_with_a_warning(kb, tmp_path):
    user = UserKnowledge(tmp_path / "user")
    user.add([{"level": "object", "name": "wind turbine", "text": "tall white towers with three blades"}],
             kb.entries)
    path = tmp_path / "user" / "entries.jsonl"
    path.write_text(path.read_text() + '{"id": "user:object:broken", "level": "object", "na\n{not json}\n')
    warnings = []
    from core.model.knowledge import read_user_entries

    entries = read_user_entries(path, warnings.append)
    assert [e.name for e in entries] == ["wind turbine"]
    assert len(warnings) == 2 and "line 2" in warnings[0] and "line 3" in warnings[1] and str(path) in warnings[0]
    merged = KnowledgeBase.load(user_dir=tmp_path / "user")  # classification still starts
    assert len(merged.entries) == len(kb.entries) + 1


def test_import_reads_excel_csv_and_keeps_missing_text_missing(kb, tmp_path):
    bom = tmp_path / "excel.csv"
    bom.write_bytes("level,name,text,aliases\r\nobject,wind turbine,tall white towers,windmill; wind farm\r\n"
                    .encode("utf-8-sig"))
    rows = read_import_file(bom)
    assert rows[0]["level"] == "object"  # not "\ufefflevel"
    user = UserKnowledge(tmp_path / "user")
    (added,) = user.add(rows, kb.entries)
    assert added.aliases == ["windmill", "wind farm"]  # split, not characters
    short = tmp_path / "short.csv"
    short.write_text("level,name,text\nobject,solar roof\n")
    with pytest.raises(KnowledgeBaseError, match="text is empty"):
        user.add(read_import_file(short), kb.entries)
    with pytest.raises(KnowledgeBaseError, match="characters"):
        user.add([{"level": "object", "name": "x" * 500, "text": "y"}], kb.entries)
