"""Small English text tools for captions and questions: tokens, lemmas, noun phrases, numbers.

Captions in RS sets are short and formulaic ("many planes are parked near a terminal"), so a
determiner-anchored noun-phrase rule with a lemma table does the job without a tagger model.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z]+(?:-[a-z]+)?")

IRREGULAR_PLURALS = {
    "leaves": "leaf", "people": "person", "men": "man", "children": "child", "feet": "foot",
    "geese": "goose", "mice": "mouse", "women": "woman", "knives": "knife", "shelves": "shelf",
    "wolves": "wolf", "halves": "half", "lives": "life", "wives": "wife", "calves": "calf",
}
# Words ending in -s that are singular, and nouns that keep their -es/-ss/-us/-is form.
SINGULAR_S = {
    "grass", "glass", "gas", "bus", "campus", "cactus", "class", "compass", "mass", "moss",
    "terminus", "oasis", "basis", "canvas", "chaos", "lotus", "status", "access", "process",
    "overpass", "pass", "bypass", "tennis", "sports", "is", "was", "has", "as", "its", "this",
    "news", "series", "species", "ferris", "lens", "plus", "thus", "less", "across", "wilderness",
}
DETERMINERS = {
    "a", "an", "the", "some", "many", "several", "few", "lots", "lot", "plenty", "numerous",
    "dozens", "hundreds", "thousands", "this", "these", "those", "that", "its", "their", "each",
    "every", "another", "other", "no", "all", "both", "various", "pieces", "piece", "rows", "row",
    "group", "groups", "line", "lines", "number", "pair", "couple", "amount", "kinds", "kind",
}
NUMBER_WORDS = {
    "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13, "fourteen": 14,
    "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "hundred": 100,
}
STOP = {
    "of", "in", "on", "at", "by", "with", "near", "next", "to", "and", "or", "but", "is", "are",
    "was", "were", "be", "been", "being", "there", "here", "it", "which", "while", "where",
    "from", "into", "through", "over", "under", "between", "beside", "besides", "around", "along",
    "across", "among", "behind", "above", "below", "inside", "outside", "alongside", "nearby",
    "very", "so", "too", "also", "not", "can", "could", "has", "have", "had", "we", "you", "they",
    "he", "she", "i", "as", "for", "up", "down", "out", "off", "like", "than", "then", "just",
    "only", "almost", "quite", "well", "s", "t", "e", "u", "y", "x", "l", "c", "v", "b", "r",
    "what", "who", "whose", "when", "how", "why", "side", "sides", "part", "parts", "middle",
    "front", "top", "bottom", "corner", "edge", "end", "place", "places", "way", "thing", "things",
    "kind", "kinds", "type", "types", "shape", "size", "sizes", "color", "colors", "colour",
    "colours", "image", "picture", "scene", "view", "photo", "area", "areas", "region", "zone",
    "space", "spaces", "surface", "direction", "directions", "position", "positions", "pattern",
    "patterns", "number", "amount", "series", "variety", "lot", "lots", "piece", "pieces", "row",
    "rows", "line", "lines", "group", "groups", "half", "rest", "set", "bit", "total",
}
ADJECTIVES = {
    "big", "large", "small", "little", "long", "short", "tall", "high", "low", "huge", "tiny",
    "wide", "broad", "narrow", "vast", "old", "new", "modern", "beautiful", "different", "other",
    "same", "similar", "various", "green", "white", "red", "blue", "yellow", "grey", "gray",
    "dark", "light", "black", "brown", "orange", "khaki", "pink", "purple", "cyan", "golden",
    "silver", "bright", "pale", "deep", "dense", "sparse", "straight", "curved", "round",
    "circular", "rectangular", "square", "oval", "irregular", "regular", "empty", "full",
    "busy", "quiet", "open", "closed", "lush", "bare", "dry", "wet", "clear", "thick", "thin",
    "flat", "steep", "main", "central", "whole", "entire", "crowded", "neat", "tidy", "orderly",
    "colorful", "colourful", "some", "many", "several", "few", "numerous", "certain", "residential",
    "industrial", "commercial", "medium", "rural", "urban", "nice", "good", "great", "magnificent",
    "spectacular", "majestic", "peaceful", "calm", "rough", "smooth", "sandy", "rocky", "grassy",
    "muddy", "verdant", "luxuriant", "withered", "desolate", "barren", "naked", "lonely", "compact", "scattered", "isolated", "parallel", "adjacent", "triangular", "polygonal",
    "semicircular", "elliptical", "cylindrical", "winding", "twisted", "crooked", "emerald",
    "turquoise", "reddish", "yellowish", "silvery", "shining", "sparkling", "tropical", "wild",
    "public", "private", "famous", "unique", "special", "complex", "simple", "dusty", "dirty",
    "clean", "turbid", "shallow", "cement", "concrete", "metal", "wooden", "plastic", "stone",
    "brick", "glass", "steel", "artificial", "natural", "agricultural", "economic", "living",
    "distinctive", "strange", "interesting", "double", "single", "multiple", "major",
    "minor", "left", "right", "northern", "southern", "eastern", "western", "upper", "lower",
    "inner", "outer", "nearby", "surrounding", "adjoining", "neighboring", "planted", "parked",
    "built", "covered", "surrounded", "arranged", "located", "situated", "docked", "moored",
}


VERBS = {
    "form", "surround", "cover", "consist", "look", "stretch", "sit", "connect", "lie", "span",
    "run", "stop", "seem", "contain", "extend", "grow", "beat", "spray", "compose", "include",
    "divide", "flourish", "throw", "traverse", "locate", "make", "stand", "flow", "pass", "cross",
    "separate", "meet", "occupy", "encircle", "belong", "join", "link", "come", "wind", "drive",
    "play", "rest", "take", "float", "melt", "turn", "divid", "constitute", "intersect", "own",
    "park", "stay", "go", "see", "lay", "ran", "grew", "stood", "arround", "them", "other",
    "one", "most", "though", "rather", "without", "against", "away", "aside", "respectively",
    "together", "forward", "opposite", "back", "ease", "smart", "never", "beside", "shaped",
    "shape", "south", "north", "east", "west", "hand", "distribute", "close", "flat", "broken",
    "vacant", "relatively", "trade", "design", "marked", "made", "redor", "coner", "blu",
    "surounded", "bustling", "prosperous", "complicated", "populated", "decorated", "unbroken",
}
NOUN_ING = {"building", "parking", "ceiling", "swimming", "crossing", "housing", "wing", "spring",
            "railing", "landing", "clearing", "painting", "marking", "opening", "setting"}


def is_noun_like(word: str) -> bool:
    """Rejects the verbs, adverbs and participles a determiner-anchored run can swallow."""
    if word in VERBS or lemma(word) in VERBS or word in ADJECTIVES or word in STOP:
        return False
    if word.endswith("ly") or word.endswith("ed"):
        return False
    if word.endswith("ing") and word not in NOUN_ING:
        return False
    return word.isalpha() or "-" in word


def tokens(text: str) -> list[str]:
    return _TOKEN.findall(text.lower())


def lemma(word: str) -> str:
    """Singular form of an English noun (plural rules plus an irregular table)."""
    w = word.lower()
    if w in IRREGULAR_PLURALS:
        return IRREGULAR_PLURALS[w]
    if len(w) <= 3 or w in SINGULAR_S or w.endswith(("ss", "us", "is")):
        return w
    if w.endswith("ies") and len(w) > 4:
        return w[:-3] + "y"
    if w.endswith(("ches", "shes", "xes", "sses", "zes")):
        return w[:-2]
    if w.endswith("oes") and w not in {"shoes"}:
        return w[:-2]
    if w.endswith("s") and not w.endswith("'s"):
        return w[:-1]
    return w


def lemma_phrase(phrase: str) -> str:
    """Lemmatise the head (last word) of a phrase: "storage tanks" -> "storage tank"."""
    words = phrase.lower().split()
    if not words:
        return ""
    return " ".join([*words[:-1], lemma(words[-1])])


def plural(noun: str) -> str:
    """Plural of a noun phrase's head, for question templates."""
    words = noun.split()
    w = words[-1]
    if w in {"grass", "sand", "water", "vegetation", "soil", "snow", "farmland", "cropland",
             "grassland", "wasteland", "bareland", "equipment", "traffic"}:
        p = w
    elif w.endswith("y") and len(w) > 2 and w[-2] not in "aeiou":
        p = w[:-1] + "ies"
    elif w.endswith(("s", "sh", "ch", "x", "z")):
        p = w + "es"
    elif w == "person":
        p = "people"
    elif w == "leaf":
        p = "leaves"
    else:
        p = w + "s"
    return " ".join([*words[:-1], p])


def noun_phrases(text: str) -> list[str]:
    """Lemmatised noun phrases (head noun, plus a two-word compound when there is one).

    A phrase starts after a determiner, quantifier or number and skips adjectives; it ends at the
    first stop word. "many planes are parked near a long terminal" -> planes, terminal.
    """
    toks = tokens(text)
    out: list[str] = []
    i = 0
    while i < len(toks):
        t = toks[i]
        if t in DETERMINERS or t in NUMBER_WORDS or t.isdigit():
            j = i + 1
            while j < len(toks) and (toks[j] in ADJECTIVES or toks[j] in DETERMINERS or toks[j] in ("of",)):
                j += 1
            run: list[str] = []
            while j < len(toks) and len(run) < 3 and (
                (toks[j] in ("lot", "lots") and run and run[-1] == "parking")
                or (toks[j] not in STOP and toks[j] not in ADJECTIVES
                    and toks[j] not in DETERMINERS and toks[j] not in NUMBER_WORDS)
            ):
                run.append(toks[j])
                j += 1
            # A plural noun ends the phrase: what follows it is a verb ("trees form ...").
            for k, w in enumerate(run):
                if not is_noun_like(w):
                    run = run[:k]
                    break
                if lemma(w) != w and k < len(run) - 1:
                    run = run[: k + 1]
                    break
            if run:
                head = lemma(run[-1])
                if len(head) > 2:
                    out.append(head)
                    if len(run) >= 2 and len(run[-2]) > 2:
                        out.append(f"{run[-2]} {head}")
            i = max(j, i + 1)
        else:
            i += 1
    return out


def counted_objects(text: str) -> list[tuple[str, int]]:
    """(lemmatised noun, count) for explicit numbers in a caption: "two planes" -> ("plane", 2)."""
    toks = tokens(text)
    out = []
    for i, t in enumerate(toks[:-1]):
        n = NUMBER_WORDS.get(t)
        if n is None:
            continue
        j = i + 1
        while j < len(toks) and toks[j] in ADJECTIVES:
            j += 1
        if j < len(toks) and toks[j] not in STOP and toks[j] not in DETERMINERS:
            nxt = toks[j + 1] if j + 1 < len(toks) else ""
            if nxt and nxt not in STOP and nxt not in ADJECTIVES and nxt not in DETERMINERS:
                out.append((f"{toks[j]} {lemma(nxt)}", n))
                out.append((lemma(nxt), n))
            else:
                out.append((lemma(toks[j]), n))
    return out
