"""VQA items generated from AID labels and RSICD captions.

Types: scene, presence, count, rural_urban. Presence positives come from caption mentions;
negatives are objects absent from all five captions *and* mentioned for under 2 % of the
training images of that class, so "no" is trustworthy rather than "the annotator did not say".
Counts come from explicit number words and are binned as RSVQA does.
"""

from __future__ import annotations

import hashlib
import random
import re
from collections import Counter, defaultdict
from dataclasses import dataclass

from core.model.vocab import ANSWERS, COUNT_BINS, QUESTION_TYPES, TYPE_ANSWERS, count_bin  # noqa: F401 (re-exported)

from .dataset import AID_LABEL_TEXT, Sample
from .kb_build import NOT_OBJECTS, canonical_object
from .textproc import counted_objects, noun_phrases, plural

RURAL_URBAN = {
    # Built-up, dense human use -> urban; open land, water and scattered houses -> rural.
    "urban": ["Airport", "BaseballField", "Bridge", "Center", "Church", "Commercial",
              "DenseResidential", "Industrial", "MediumResidential", "Park", "Parking",
              "Playground", "Port", "RailwayStation", "Resort", "School", "Square", "Stadium",
              "StorageTanks", "Viaduct"],
    "rural": ["BareLand", "Beach", "Desert", "Farmland", "Forest", "Meadow", "Mountain", "Pond",
              "River", "SparseResidential"],
}
CLASS_AREA = {c: k for k, cs in RURAL_URBAN.items() for c in cs}
NEGATIVE_MAX_CLASS_RATE = 0.02
MIN_OBJECT_IMAGES = 25

TEMPLATES = {
    "scene": [
        "What type of scene is this?", "What kind of area is shown in the image?",
        "Which land use does this image show?", "What is this place?",
        "What category does this scene belong to?", "What does this aerial image show?",
        "Classify this scene.", "What kind of place is this?",
    ],
    "presence": [
        "Is there a {o} in the image?", "Are there any {op}?", "Can you see a {o}?",
        "Does this area contain {op}?", "Is a {o} present?", "Are {op} visible here?",
        "Is there any {o} in this scene?",
    ],
    "count": [
        "How many {op} are there?", "What is the number of {op}?", "How many {op} can you see?",
        "Count the {op} in the image.", "How many {op} are in this area?",
    ],
    "rural_urban": [
        "Is this a rural or an urban area?", "Is it a rural or urban scene?",
        "Is this area urban or rural?", "Would you call this place rural or urban?",
        "Is the area shown rural or urban?",
    ],
}


@dataclass(frozen=True)
class QAItem:
    image: str
    split: str
    type: str
    question: str
    answer: str
    object: str = ""


def mentions(sample: Sample) -> set[str]:
    out = set()
    for cap in sample.captions:
        for p in noun_phrases(cap):
            name = canonical_object(p)
            if name not in NOT_OBJECTS:
                out.add(name)
    return out


def _counts(sample: Sample) -> dict[str, int]:
    seen: dict[str, list[int]] = defaultdict(list)
    for cap in sample.captions:
        for obj, n in counted_objects(cap):
            seen[canonical_object(obj)].append(n)
    # Annotators disagree now and then; the most common number wins.
    return {o: Counter(ns).most_common(1)[0][0] for o, ns in seen.items()}


def _rng(image: str, salt: str) -> random.Random:
    return random.Random(int.from_bytes(hashlib.sha1(f"{image}|{salt}".encode()).digest()[:8], "big"))


def _item(s: Sample, rng: random.Random, qtype: str, answer: str, obj: str) -> QAItem:
    tpl = rng.choice(TEMPLATES[qtype])
    q = tpl.format(o=obj, op=plural(obj)) if obj else tpl
    q = re.sub(r"\ba ([aeiou])", r"an \1", q)
    return QAItem(s.image, s.split, qtype, q, answer, obj)


def generate(samples: list[Sample]) -> list[QAItem]:
    train = [s for s in samples if s.split == "train"]
    per_image = {s.image: mentions(s) for s in samples}
    images_with: Counter = Counter()
    class_rate: dict[str, Counter] = defaultdict(Counter)
    class_n: Counter = Counter()
    for s in train:
        class_n[s.label] += 1
        for o in per_image[s.image]:
            images_with[o] += 1
            class_rate[s.label][o] += 1
    vocab = sorted(o for o, n in images_with.items() if n >= MIN_OBJECT_IMAGES)

    items: list[QAItem] = []
    for s in samples:
        rng = _rng(s.image, "qa")
        present = sorted(per_image[s.image] & set(vocab))
        absent = [o for o in vocab if o not in per_image[s.image]
                  and class_rate[s.label][o] / max(class_n[s.label], 1) < NEGATIVE_MAX_CLASS_RATE]

        def add(qtype: str, answer: str, obj: str = "", s=s, rng=rng) -> None:
            items.append(_item(s, rng, qtype, answer, obj))

        add("scene", AID_LABEL_TEXT[s.label])
        add("rural_urban", CLASS_AREA[s.label])
        if present:
            add("presence", "yes", rng.choice(present))
        if absent and (present or rng.random() < 0.5):
            add("presence", "no", rng.choice(absent))
        counts = {o: n for o, n in _counts(s).items() if o in vocab}
        if counts:
            obj = rng.choice(sorted(counts))
            add("count", count_bin(counts[obj]), obj)
            if absent:
                add("count", COUNT_BINS[0], rng.choice(absent))
    return items


def balance_report(items: list[QAItem]) -> dict:
    report: dict = {}
    for split in ("train", "val", "test"):
        for qtype in QUESTION_TYPES:
            answers = Counter(i.answer for i in items if i.split == split and i.type == qtype)
            report.setdefault(split, {})[qtype] = {"n": sum(answers.values()),
                                                   "answers": dict(answers.most_common())}
    return report
