"""How well the question parser covers real question wording: the RSVQA-LR test questions
(10,004, no images; ``../shared/data/vqa/rsvqa_lr_test_text``).

Each question is parsed; it counts as covered when it is mapped to the type RSVQA gives it, or
refused with a message (e.g. "a square building", "left of the road": things the model cannot
judge). ``python -m rs_sage_dev.question_coverage`` writes ``docs/question_coverage.json``.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path

from core.setup.paths import data_root

SOURCE = Path("vqa") / "rsvqa_lr_test_text" / "RSVQA_LR_test_qa_with_model_answers.jsonl"
OUT = Path(__file__).resolve().parent.parent / "docs" / "question_coverage.json"
# RSVQA type -> ours
EXPECTED = {"presence": "presence", "count": "count", "rural_urban": "rural_urban", "comp": "comparison",
            "comparison": "comparison"}


def question_text(raw: str) -> str:
    """The question as a user would type it: without the benchmark's image tag and instruction."""
    q = raw.replace("\\n", "\n").split("\n")[-1]
    q = re.sub(r"\[[^\]]*\]|<image>", "", q)
    q = re.sub(r"\s*Answer the question using a single word\.?\s*$", "", q)
    return " ".join(q.split())


def outcome(question: str) -> str:
    from core.errors import RsSageError
    from core.questions.question_parse import UnsupportedQuestionError, parse_question

    try:
        return parse_question(question).type
    except UnsupportedQuestionError:
        return "refused"
    except RsSageError:
        return "rejected"


def coverage(rows: list[dict]) -> dict:
    by_type: dict[str, Counter] = {}
    examples: dict[str, list[str]] = {}
    for r in rows:
        q = question_text(r["question"])
        got = outcome(q)
        want = EXPECTED.get(r["vqa_type"], r["vqa_type"])
        verdict = "right type" if got == want else ("refused" if got == "refused" else f"wrong: {got}")
        by_type.setdefault(r["vqa_type"], Counter())[verdict] += 1
        if verdict.startswith("wrong") and len(examples.setdefault(r["vqa_type"], [])) < 5:
            examples[r["vqa_type"]].append(q)
    total = Counter()
    for c in by_type.values():
        total.update(c)
    n = sum(total.values())
    return {
        "questions": n, "source": str(SOURCE),
        "right_type": round(total["right type"] / n, 4), "refused": round(total["refused"] / n, 4),
        "covered": round((total["right type"] + total["refused"]) / n, 4),
        "by_rsvqa_type": {k: dict(v) for k, v in sorted(by_type.items())},
        "wrong_examples": examples,
        "command": "python -m rs_sage_dev.question_coverage",
    }


def main() -> dict:
    rows = [json.loads(line) for line in open(data_root() / SOURCE, encoding="utf-8")]
    res = coverage(rows)
    OUT.write_text(json.dumps(res, indent=2) + "\n")
    return res


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
