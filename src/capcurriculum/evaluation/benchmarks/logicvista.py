"""LogicVista (lscpku/LogicVista, split test).

The question carries its options; the gold is one letter ("C") or several ("A, C"). VLMEvalKit
`vlmeval/dataset/utils/logicvista.py` has a judge read the chosen letters and counts a hit when the
sorted letter set equals the gold's; it requires the judge, so every item is `needs_judge` and the
rule here reads letters from the box or the "Answer:" line. Sub-scores: the five reasoning skills
(a row may list several) and broad_capability.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import boxed_or_answer_line, final_part, infer_choice, parse_options

from .base import (
    Adapter,
    BenchItem,
    BenchmarkSpec,
    RowError,
    accuracy_by,
    record_meta,
    require,
    require_image,
)

SPEC = BenchmarkSpec(
    name="logicvista", title="LogicVista", hub_id="lscpku/LogicVista", split="test", config=None,
    id_column="id", image_column="image", question_column="question", answer_column="answer",
    columns=("id", "question", "answer", "image", "skill", "broad_capability"),
    size=448, headline="accuracy", scoring_source="VLMEvalKit vlmeval/dataset/utils/logicvista.py")

SKILLS = ("inductive", "deductive", "numerical", "spatial", "mechanical")


def letter_set(text: str) -> str | None:
    """"A, C" / "AC" / "(A) and (C)" -> "AC"; None when it is not just option letters."""
    cleaned = re.sub(r"\b(?:and|or|options?)\b|[\s,;&().*]+", "", text, flags=re.IGNORECASE)
    if cleaned and cleaned.isalpha() and cleaned.isupper() and len(set(cleaned)) == len(cleaned):
        return "".join(sorted(cleaned))
    return None


class LogicVista(Adapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        gold = letter_set(str(require(row, "answer")))
        if gold is None:
            raise RowError("answer", f"gold {row['answer']!r} is not a set of option letters")
        image = require_image(row, "image")
        skill = row.get("skill") or []
        skills = [s for s in SKILLS if s in (skill if isinstance(skill, str) else " ".join(skill)).lower()]
        meta = {"skills": skills, "broad_capability": row.get("broad_capability")}
        return BenchItem(self.spec.title, rid, question, image, gold, "choice", parse_options(question), meta)

    def needs_judge(self, item: BenchItem) -> bool:
        return True

    def extract(self, response: str, item: BenchItem) -> str | None:
        if response is None:
            return None
        cand = boxed_or_answer_line(response)
        if cand is not None:
            return letter_set(cand) or infer_choice(cand, item.choices)
        return infer_choice(final_part(response), item.choices) if item.choices else None

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        return extracted is not None and extracted == item.gold

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"by_skill": accuracy_by(records, lambda r: list(record_meta(r, "skills") or [])),
                "by_broad_capability": accuracy_by(records, lambda r: record_meta(r, "broad_capability"))}
