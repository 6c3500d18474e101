"""What kind of question the user asked, whether it is a question at all, and whether RS-SAGE
can answer it.

The answer head has a closed vocabulary per type (yes/no, count bins, rural/urban, scene
names); knowing the type restricts the answer to ones that make sense for the question. A
question of another kind (colour, distance, size, time, cause ...) is refused with a message
that says what can be asked: answering it with the nearest scene name would be a confident
wrong answer.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import RsSageError

MAX_QUESTION_CHARS = 300
ENGLISH_HINTS = {
    "is", "are", "there", "what", "which", "how", "many", "much", "does", "do", "can", "any",
    "a", "an", "the", "this", "it", "area", "scene", "image", "place", "here", "of", "in",
    "rural", "urban", "count", "number", "type", "kind", "show", "shown", "see", "visible",
    "present", "contain", "classify", "where", "who", "why", "land", "use", "category",
}


SUPPORTED = ("Is there a harbour here?", "How many storage tanks are there?",
             "What type of scene is this?", "Is this a rural or an urban area?",
             "How much of this area is forest?", "Is there more water than farmland?",
             "Where are the storage tanks?", "What is in this region?")
# What a question asks about, when it is something the model has no answer for.
UNSUPPORTED: list[tuple[str, str]] = [
    (r"\b(colou?rs?|colou?red)\b", "colours"),
    (r"\bhow (far|close|near)\b|\bdistance\b|\b(far|close|near|next to|adjacent|beside|nearest)\b",
     "distances or positions"),
    (r"\bwhere\b|\b(north|south|east|west|left|right|top|bottom|corner|centre of|center of)\b",
     "where things are"),
    (r"\bhow (big|large|small|wide|long|tall|high|deep|old)\b|\b(size|width|length|height|depth|"
     r"square (metres|meters|km|kilometres|kilometers)|hectares?|acres?|km2|area of)\b", "sizes"),
    (r"\bhow much\b|\bpercent(age)?\b|\bproportion\b|\bshare of\b|\bfraction\b|\bcovered (by|with)\b"
     r"|\bcoverage\b", "amounts or area shares"),
    (r"\b(more|fewer|less|larger|smaller|bigger|greater|higher|lower)\b.*\bthan\b|\bcompared?\b|"
     r"\bequal (number|amount)\b|\bas many\b", "comparisons"),
    (r"\b(when|year|date|season|month|time|day|night|built in|constructed|age)\b", "dates and times"),
    (r"\bwhy\b|\bhow (did|does|do|was|were|is|are|can)\b|\bpurpose\b|\bcause\b", "causes or purposes"),
    (r"\bwho\b|\bwhose\b|\bowner\b|\bowns\b", "people or owners"),
    (r"\b(weather|temperature|rain|raining|sunny|cloudy|wind|snowing)\b", "the weather"),
    (r"\b(shape|shaped|material|made of|texture|condition|damaged|height of)\b", "shapes and materials"),
    (r"\b(name of|called|named|address|which city|which country|what city|what country)\b", "names of places"),
    (r"\b(speed|moving|driving|flying|direction|heading)\b", "motion"),
    (r"\b(countr(y|ies)|continent|province|hemisphere|latitude|longitude|coordinates|on earth|which city|"
     r"what city|which town|what town|capital)\b|\b(located|situated|taken) in\b", "where on Earth the image lies"),
    (r"\b(population|people live|inhabitants|price|cost|value|worth)\b", "statistics"),
]
OPEN_PATTERNS = (
    r"^what(\s+is|'s|\s+are)\s+(in|on|here|there|shown|visible|this|that|these|"
    r"the (image|region|area|scene|tile|picture))\b",
    r"^what (can|do) (you|i|we) see\b", r"^describe\b", r"^what does (this|the)\b.*\b(show|contain|look like)\b",
    r"^what (objects?|things?|features?) (are|is)\b",
)


# Attributes of single objects the model was never trained to judge (in any wording).
COLOURS = (r"\b(red|blue|yellow|white|black|grey|gray|brown|orange|purple|pink|golden|silver|"
           r"(?<!what )green(?!\s+(area|areas|space|spaces|land|vegetation|field|fields|cover)\b))\b")
CONDITION = (r"\b(damaged|destroyed|broken|burnt|burned|abandoned|ruined|collapsed|flooded|new|old|"
             r"renovated|under construction|dirty|clean|empty|full|occupied|busy|crowded|open|closed)\b")
MATERIAL = (r"\b(concrete|asphalt|wooden|wood|metal|metallic|brick|glass|steel|stone|paved|unpaved|"
            r"tiled|thatched|plastic)\b")
NEGATION = r"\b(not|no|never|none|without|isn't|aren't|doesn't|don't|nor)\b|n't\b"


class UnsupportedQuestionError(RsSageError):
    """A well-formed question of a kind the model cannot answer."""


def unsupported_message(q: str, topic: str) -> str:
    return (f"RS-SAGE cannot answer questions about {topic} ('{q}'). It answers: whether something is "
            f"present ('{SUPPORTED[0]}'), how many ('{SUPPORTED[1]}'), the scene type ('{SUPPORTED[2]}'), "
            f"rural or urban ('{SUPPORTED[3]}'), area shares ('{SUPPORTED[4]}'), comparisons "
            f"('{SUPPORTED[5]}'), where something is ('{SUPPORTED[6]}') and descriptions ('{SUPPORTED[7]}').")


# Things the model cannot judge even when the rest of the question is fine: positions relative to
# other objects, and shape or size qualifiers ("a square commercial building", "large water areas").
RELATIONS = (r"\b(on the (left|right) of|to the (left|right) of|left of|right of|next to|adjacent to|beside|"
             r"near|close to|far from|north of|south of|east of|west of|above|below|between|surrounded by)\b")
SHAPE_QUALIFIER = (r"\b(square|rectangular|circular|round|triangular|oval)\s+(?!(in|on|here|there|present|"
                   r"visible|area|areas|is|are)\b)[a-z]+")
SIZE_QUALIFIER = r"\b(small|medium|large|big|tiny|huge)\s+(?!residential\s+areas?\b)(?!(in|on|here|is|are)\b)[a-z]+"
SCOPE = r"(\s+(in|on|of|within|inside)\s+(this|the|that)\s+(image|region|area|scene|tile|picture|place))?"


@dataclass
class ParsedQuestion:
    text: str
    type: str  # presence, count, scene, rural_urban, open, share, comparison, where
    subject: str = ""
    other: str = ""  # comparison: the second thing
    relation: str = ""  # comparison: more, less or equal


NOT_A_THING = {"", "the", "a", "an", "any", "some", "me", "it", "this", "that", "these", "those", "there",
               "here", "them", "what", "which"}


def _clean(thing: str, q: str = "") -> str:
    """The thing a region question names, without articles or 'in this image'; refused when
    nothing is left ('Where is the?', 'Show me'): answering about nothing would be made up."""
    thing = re.sub(r"^(the|a|an|any|some)\s+", "", thing.strip(" ?.!"))
    thing = re.sub(SCOPE + r"\s*$", "", thing).strip(" ?.!")
    if thing in NOT_A_THING:
        raise RsSageError(f"'{q}' does not say what to look for. Name it, e.g. 'Where are the storage tanks?' "
                          "or 'How much of this area is forest?'")
    return thing


def _region_question(q: str, low: str) -> ParsedQuestion | None:
    """The question types answered over a region's tiles: comparison, share, where."""
    m = (re.match(r"^(?:are|is) there (more|less|fewer) (.+?) than (.+?)" + SCOPE + r"\s*[?.]?$", low)
         or re.match(r"^(?:does|do) (?:this|the) (?:image|region|area|scene) (?:contain|have) (more|less|fewer) "
                     r"(.+?) than (.+?)" + SCOPE + r"\s*[?.]?$", low))
    if m:
        rel = "more" if m.group(1) == "more" else "less"
        return ParsedQuestion(q, "comparison", _clean(m.group(2), q), _clean(m.group(3), q), rel)
    m = re.match(r"^is the (?:number|amount|area|share) of (.+?) (equal to|the same as|greater than|larger than|"
                 r"higher than|more than|smaller than|lower than|less than|fewer than) the (?:number|amount|area|"
                 r"share) of (.+?)" + SCOPE + r"\s*[?.]?$", low)
    if m:
        word = m.group(2)
        rel = "equal" if word in ("equal to", "the same as") else (
            "more" if word.split()[0] in ("greater", "larger", "higher", "more") else "less")
        return ParsedQuestion(q, "comparison", _clean(m.group(1), q), _clean(m.group(3), q), rel)
    m = (re.match(r"^(?:how much|what (?:share|percentage|percent|fraction|proportion|part)) of (?:this|the) "
                  r"(?:area|region|image|scene|tile|place) (?:is|are) (?:covered (?:by|with) )?(.+?)\s*[?.]?$", low)
         or re.match(r"^how much (.+?) (?:is|are) (?:there|here|in (?:this|the) .+)\s*[?.]?$", low)
         or re.match(r"^what (?:share|percentage|percent|fraction|proportion) (?:is|are) (.+?)" + SCOPE
                     + r"\s*[?.]?$", low)
         or re.match(r"^what (?:share|percentage|percent|fraction|proportion) of (?:this|the) "
                     r"(?:area|region|image|scene) (?:is|are) (.+?)\s*[?.]?$", low))
    if m:
        return ParsedQuestion(q, "share", _clean(m.group(1), q))
    m = (re.match(r"^where (?:is|are) (.+?)(?: located| found| visible)?" + SCOPE + r"\s*[?.]?$", low)
         or re.match(r"^(?:show|highlight|find|locate) (?:me )?(?:where )?(.+?)" + SCOPE + r"\s*[?.]?$", low))
    if m:
        return ParsedQuestion(q, "where", _clean(m.group(1), q))
    return None


def parse_question(question: str) -> ParsedQuestion:
    if not isinstance(question, str):
        raise RsSageError("The question must be text.")
    if any(0xD800 <= ord(c) <= 0xDFFF for c in question) or "\0" in question:
        raise RsSageError("The question holds bytes that are not text (not UTF-8, or a NUL); type it again.")
    q = " ".join(question.split())
    if not q:
        raise RsSageError("The question is empty. Try: 'Is there a harbour here?'")
    if len(q) > MAX_QUESTION_CHARS:
        raise RsSageError(f"The question is {len(q)} characters long; keep it under {MAX_QUESTION_CHARS}.")
    words = re.findall(r"[a-zA-Z]+", q.lower())
    letters = sum(c.isascii() and c.isalpha() for c in q)
    if not words or letters / len(q) < 0.5 or not (set(words) & ENGLISH_HINTS):
        raise RsSageError(
            f"'{q}' does not look like an English question. "
            "Ask e.g. 'How many storage tanks are there?' or 'Is this rural or urban?'"
        )
    low = q.lower()
    if re.search(r"\brural\b.*\burban\b|\burban\b.*\brural\b|^(is|are) (this|it|the \w+) "
                 r"(an? )?(rural|urban)\b|^(rural|urban)\??$|^(is|are)\b.*\b(rural|urban)\s*[?.]?$", low):
        return ParsedQuestion(q, "rural_urban")
    if re.search(RELATIONS, low):
        raise UnsupportedQuestionError(unsupported_message(q, "positions relative to other things"))
    if re.search(SHAPE_QUALIFIER, low):
        raise UnsupportedQuestionError(unsupported_message(q, "shapes"))
    if re.search(SIZE_QUALIFIER, low):
        raise UnsupportedQuestionError(unsupported_message(q, "sizes of single objects"))
    if re.search(NEGATION, low) and not re.search(r"\bor not\b", low):
        raise UnsupportedQuestionError(unsupported_message(q, "negated things (ask what is there instead)"))
    for pattern, topic in ((COLOURS, "the colours of things"), (CONDITION, "the condition of things"),
                           (MATERIAL, "materials")):
        if re.search(pattern, low):
            raise UnsupportedQuestionError(unsupported_message(q, topic))
    place = r"\b(in|from|of)\s+(?!RS\b)[A-Z][a-z]{2,}\b"  # "in France", "of Paris": a place name
    if re.search(place, q) or re.match(r"^(?i:is|was) (?i:this|it) [A-Z][a-z]+", q):
        raise UnsupportedQuestionError(unsupported_message(q, "where on Earth the image lies"))
    region = _region_question(q, low)
    if region is not None:
        if region.type == "comparison" and region.subject == region.other:
            raise RsSageError(f"'{q}' compares {region.subject} with itself; name two different things.")
        _check_words(q, region.subject, region.other)
        return region
    for pattern, topic in UNSUPPORTED:
        if re.search(pattern, low):
            raise UnsupportedQuestionError(unsupported_message(q, topic))
    m = re.search(r"\b(how many|number of|amount of|count the|count)\s+(.+?)(\s+(are|can|in|is|do|does)\b.*)?[?.]?$",
                  low)
    if m:
        parsed = ParsedQuestion(q, "count", m.group(2).strip(" ?."))
        _check_words(q, parsed.subject)
        return parsed
    m = re.match(r"^(is|are|does|do|can|could|was|were)\b(.*)$", low)
    if m:
        subject = re.sub(r"^(is|are|does|do|can|could|was|were)\s+(there|you see|this area contain|"
                         r"this image contain|it contain|this scene contain)?\s*(any|an|a|some)?\b\s*",
                         "", low).strip(" ?.")
        subject = re.sub(r"\s+(present|visible)\b.*$", "", subject)
        subject = re.sub(r"\s+or not$", "", subject)
        subject = re.sub(r"\s+(in|on|here|in this.*|in the.*)$", "", subject)
        _check_words(q, subject)
        return ParsedQuestion(q, "presence", subject)
    if re.search(r"\b(what|which)\b.*\b(type|kind|category|class|land use|land cover|place|scene|area)\b", low) \
            or low.startswith(("classify", "what is this", "what's this", "what does this", "label this", "identify")):
        return ParsedQuestion(q, "scene")
    if any(re.search(p, low) for p in OPEN_PATTERNS):
        return ParsedQuestion(q, "open")
    raise UnsupportedQuestionError(unsupported_message(q, "this"))


_VOCAB: set[str] | None = None


def known_words() -> set[str]:
    """Whole words of the text encoder's vocabulary (its tokenizer.json) plus the knowledge
    base's names and aliases: a word outside both ("glimbnax") is one the model cannot have met.
    Empty (no check) when the model pack is not installed."""
    global _VOCAB
    if _VOCAB is None:
        import json

        words: set[str] = set()
        try:
            from ..setup.paths import KB_DIR, text_encoder_dir

            tok = json.loads((text_encoder_dir() / "tokenizer.json").read_text(encoding="utf-8"))
            words |= {w for w in tok["model"]["vocab"] if w.isalpha()}
            with open(KB_DIR / "entries.jsonl", encoding="utf-8") as f:
                for line in f:
                    row = json.loads(line)
                    for text in [row.get("name", "")] + list(row.get("aliases") or []):
                        words |= set(re.findall(r"[a-z]+", text.lower()))
        except (OSError, ValueError, KeyError, TypeError):
            words = set()
        _VOCAB = words
    return _VOCAB


def _known(word: str, vocab: set[str]) -> bool:
    if word in vocab or len(word) <= 2:
        return True
    for suffix in ("s", "es", "ies", "ing", "ed", "ers", "er"):
        if word.endswith(suffix) and len(word) > len(suffix) + 2:
            stem = word[: -len(suffix)]
            if stem in vocab or stem + "e" in vocab or (suffix == "ies" and stem + "y" in vocab):
                return True
    return False


def _check_words(q: str, *things: str) -> None:
    """Refuse a question about a word the model cannot know, instead of answering 'No (0.98)'."""
    vocab = known_words()
    if not vocab:
        return
    unknown = [w for t in things for w in re.findall(r"[a-z]+", t.lower()) if not _known(w, vocab)]
    if unknown:
        raise UnsupportedQuestionError(
            f"RS-SAGE does not know the word{'s' if len(unknown) > 1 else ''} "
            f"{', '.join(repr(w) for w in unknown[:3])} in '{q}'. Check the spelling, or add the concept "
            "to your knowledge base (python -m core kb add).")
