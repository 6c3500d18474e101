"""Caption parsing, the AID split and the generated VQA set."""

from collections import Counter

import pytest

from core.questions.question_parse import parse_question
from rs_sage_dev.kb_build import canonical_object
from rs_sage_dev.questions import TEMPLATES, count_bin
from rs_sage_dev.textproc import counted_objects, lemma, noun_phrases, plural


@pytest.mark.parametrize("word,expected", [
    ("planes", "plane"), ("churches", "church"), ("factories", "factory"), ("leaves", "leaf"),
    ("grass", "grass"), ("overpass", "overpass"), ("trees", "tree"),
])
def test_lemma(word, expected):
    assert lemma(word) == expected


def test_noun_phrases_and_counts_from_captions():
    cap = "two baseball fields are surrounded by some green trees near the parking lot ."
    phrases = noun_phrases(cap)
    assert {"baseball field", "tree", "parking lot"} <= {canonical_object(p) for p in phrases}
    assert "surround" not in " ".join(phrases)
    assert ("baseball field", 2) in counted_objects(cap)
    assert plural("storage tank") == "storage tanks" and plural("factory") == "factories"


def test_count_bins_follow_rsvqa():
    assert [count_bin(n) for n in (0, 1, 10, 11, 100, 101, 1001)] == [
        "0", "between 1 and 10", "between 1 and 10", "between 11 and 100", "between 11 and 100",
        "between 101 and 1000", "more than 1000"]


@pytest.mark.parametrize("qtype", list(TEMPLATES))
def test_every_template_parses_to_its_type(qtype):
    for tpl in TEMPLATES[qtype]:
        q = tpl.format(o="storage tank", op="storage tanks")
        assert parse_question(q).type == qtype, q


@pytest.mark.parametrize("bad", ["", "   ", "?!?!", "asdkj qwe zzz", "这是什么地方", "x" * 400])
def test_malformed_questions_are_refused(bad):
    with pytest.raises(ValueError):
        parse_question(bad)


@pytest.mark.data
def test_split_is_deterministic_and_test_is_rsicd_test(shared_data):
    from rs_sage_dev.dataset import load_samples

    a, b = load_samples(), load_samples()
    assert [(s.image, s.split) for s in a] == [(s.image, s.split) for s in b]
    counts = Counter(s.split for s in a)
    assert counts["test"] == 1027 and counts["train"] + counts["val"] == 8973
    assert 0.03 < counts["val"] / 8973 < 0.09


@pytest.mark.data
def test_generated_vqa_is_balanced_and_negatives_are_trustworthy(shared_data):
    from rs_sage_dev.dataset import load_samples
    from rs_sage_dev.questions import generate, mentions

    samples = load_samples()
    items = generate(samples)
    by_image = {s.image: s for s in samples}
    presence = [i for i in items if i.type == "presence"]
    share_yes = sum(i.answer == "yes" for i in presence) / len(presence)
    assert 0.4 <= share_yes <= 0.6
    for it in presence[:3000]:
        named = mentions(by_image[it.image])
        assert (it.object in named) == (it.answer == "yes"), it
    types = Counter(i.type for i in items if i.split == "test")
    assert set(types) == {"scene", "presence", "count", "rural_urban"}
    assert len({i.question for i in items if i.type == "presence"}) > 100  # paraphrased
