"""What kind of question the user asked, and whether it is a question at all.

The answer head has a closed vocabulary per type (yes/no, count bins, rural/urban, scene
names); knowing the type restricts the answer to ones that make sense for the question.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .errors import RsSageError

MAX_QUESTION_CHARS = 300
ENGLISH_HINTS = {
    "is", "are", "there", "what", "which", "how", "many", "much", "does", "do", "can", "any",
    "a", "an", "the", "this", "it", "area", "scene", "image", "place", "here", "of", "in",
    "rural", "urban", "count", "number", "type", "kind", "show", "shown", "see", "visible",
    "present", "contain", "classify", "where", "who", "why", "land", "use", "category",
}


@dataclass
class ParsedQuestion:
    text: str
    type: str  # presence, count, scene, rural_urban, open
    subject: str = ""


def parse_question(question: str) -> ParsedQuestion:
    if not isinstance(question, str):
        raise RsSageError("The question must be text.")
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
    if "rural" in words or "urban" in words:
        return ParsedQuestion(q, "rural_urban")
    m = re.search(r"\b(how many|number of|count the|count)\s+(.+?)(\s+(are|can|in|is|do|does)\b.*)?[?.]?$", low)
    if m:
        return ParsedQuestion(q, "count", m.group(2).strip(" ?."))
    m = re.match(r"^(is|are|does|do|can|could|was|were)\b(.*)$", low)
    if m:
        subject = re.sub(r"^(is|are|does|do|can|could|was|were)\s+(there|you see|this area contain|"
                         r"this image contain|it contain|this scene contain)?\s*(any|a|an|some)?\s*",
                         "", low).strip(" ?.")
        subject = re.sub(r"\s+(in|on|here|visible|present|in this.*|in the.*)$", "", subject)
        return ParsedQuestion(q, "presence", subject)
    if re.search(r"\b(what|which)\b.*\b(type|kind|category|class|land use|place|scene|area)\b", low) \
            or low.startswith(("classify", "what is this", "what does this")):
        return ParsedQuestion(q, "scene")
    return ParsedQuestion(q, "open")
