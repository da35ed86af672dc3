"""MATH-Vision testmini (MathLLMs/MathVision).

Scoring as VLMEvalKit `vlmeval/dataset/utils/mathv.py` (post_check / is_equal) and lmms-eval
`tasks/mathvision/utils.py`: with options, the answer is right when it names the gold letter or
equals the gold option's text; without options, when it equals the gold after lower-casing or by
numeric value (1e-6). VLMEvalKit also tries latex2sympy and, failing a rule match, an LLM
extraction — so free-form items are marked `needs_judge`. Sub-scores: subject and level.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import boxed_or_answer_line, normalize, numbers_equal, parse_number, single_number

from .base import (
    Adapter,
    BenchItem,
    BenchmarkSpec,
    RowError,
    accuracy_by,
    letters_for,
    options_block,
    record_meta,
    require,
    require_image,
)

SPEC = BenchmarkSpec(
    name="mathvision", title="MathVision_MINI", hub_id="MathLLMs/MathVision", split="testmini", config=None,
    id_column="id", image_column="decoded_image", question_column="question", answer_column="answer",
    columns=("id", "question", "options", "decoded_image", "image", "answer", "level", "subject"),
    size=304, headline="accuracy", scoring_source="VLMEvalKit vlmeval/dataset/utils/mathv.py")


def values_equal(pred: str, gold: str) -> bool:
    """MATH-V's is_equal without latex2sympy: same string (case-insensitive) or same number."""
    p, g = pred.strip().lower(), gold.strip().lower()
    if p == g or normalize(p) == normalize(g):
        return True
    return numbers_equal(parse_number(p), parse_number(g))


class MathVision(Adapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        gold = str(require(row, "answer")).strip()
        image = require_image(row, "decoded_image", "image")
        choices = letters_for(row.get("options") or [])
        meta = {"subject": row.get("subject"), "level": row.get("level")}
        if choices:
            if gold not in choices:
                raise RowError("answer", f"gold {gold!r} is not an option letter ({', '.join(choices)})")
            return BenchItem(self.spec.title, rid, f"{question}\n{options_block(choices)}", image, gold,
                             "choice", choices, meta)
        atype = "number" if parse_number(gold) is not None else "text"
        return BenchItem(self.spec.title, rid, question, image, gold, atype, {}, meta)

    def needs_judge(self, item: BenchItem) -> bool:
        return item.answer_type != "choice"

    def extract(self, response: str, item: BenchItem) -> str | None:
        if item.answer_type == "choice":
            letter = super().extract(response, item)
            # A boxed option value that is not worded like its option ("0.5" for "1/2") is kept
            # raw, so score() can still compare it with the gold option's value.
            return letter if letter is not None else boxed_or_answer_line(response)
        return super().extract(response, item)

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        if extracted is None:
            return False
        if item.answer_type == "choice":
            return extracted == item.gold or values_equal(extracted, item.choices[item.gold])
        if item.answer_type == "number":
            return values_equal(extracted, item.gold) or numbers_equal(single_number(extracted),
                                                                      parse_number(item.gold))
        return values_equal(extracted, item.gold)

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"by_subject": accuracy_by(records, lambda r: record_meta(r, "subject")),
                "by_level": accuracy_by(records, lambda r: record_meta(r, "level"))}
