"""MathVista testmini (AI4Math/MathVista).

Scoring as VLMEvalKit `vlmeval/dataset/utils/mathvista.py` (post_check) with MathVista's own
normalisation where VLMEvalKit is silent (lmms-eval `tasks/mathvista/mathvista_evals.py`
normalize_extracted_answer): multiple choice compares option letters; integer answers compare
int(float(x)); float answers compare after rounding to the row's `precision`; list and text answers
compare as normalised strings. Free-form items are judge-extracted in VLMEvalKit whenever the reply
is not already a bare value, hence `needs_judge`. Sub-scores: task and skills (VLMEvalKit),
question_type and answer_type (lmms-eval).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import normalize, single_number

from .base import (
    Adapter,
    BenchItem,
    BenchmarkSpec,
    RowError,
    accuracy_by,
    letters_for,
    record_meta,
    require,
    require_image,
)

SPEC = BenchmarkSpec(
    name="mathvista", title="MathVista_MINI", hub_id="AI4Math/MathVista", split="testmini", config=None,
    id_column="pid", image_column="decoded_image", question_column="query", answer_column="answer",
    columns=("pid", "query", "question", "decoded_image", "image", "choices", "answer", "question_type",
             "answer_type", "precision", "unit", "metadata"),
    size=1000, headline="accuracy", scoring_source="VLMEvalKit vlmeval/dataset/utils/mathvista.py")

_TYPES = {"integer": "number", "float": "number", "text": "text", "list": "text"}


class MathVista(Adapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        query = require(row, "query")  # hint + question + choices, as the benchmark prompts
        gold = str(require(row, "answer")).strip()
        image = require_image(row, "decoded_image", "image")
        qtype, atype = require(row, "question_type"), require(row, "answer_type")
        if atype not in _TYPES:
            raise RowError("answer_type", f"unknown answer_type {atype!r}")
        meta = dict(row.get("metadata") or {})
        meta.update(question_type=qtype, mv_answer_type=atype, precision=row.get("precision"))
        if qtype == "multi_choice":
            choices = letters_for(require(row, "choices"))
            letter = next((k for k, v in choices.items() if v.strip() == gold), None)
            if letter is None:
                raise RowError("answer", f"gold {gold!r} is not one of the choices")
            meta["gold_text"] = gold
            return BenchItem(self.spec.title, rid, query, image, letter, "choice", choices, meta)
        if qtype != "free_form":
            raise RowError("question_type", f"unknown question_type {qtype!r}")
        return BenchItem(self.spec.title, rid, query, image, gold, _TYPES[atype], {}, meta)

    def needs_judge(self, item: BenchItem) -> bool:
        return item.meta["question_type"] == "free_form"

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        if extracted is None:
            return False
        if item.answer_type == "choice":
            return extracted == item.gold
        atype = item.meta["mv_answer_type"]
        if atype in ("integer", "float"):
            pred, gold = single_number(extracted), single_number(item.gold)
            if pred is None or gold is None:
                return False
            if atype == "integer":
                return int(pred) == int(gold)
            digits = int(item.meta.get("precision") or 0)
            return round(pred, digits) == round(gold, digits)
        if atype == "list":
            return extracted.replace(" ", "") == item.gold.replace(" ", "")
        return normalize(extracted) == normalize(item.gold)

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {
            "by_task": accuracy_by(records, lambda r: record_meta(r, "task")),
            "by_skill": accuracy_by(records, lambda r: list(record_meta(r, "skills") or [])),
            "by_question_type": accuracy_by(records, lambda r: record_meta(r, "question_type")),
            "by_answer_type": accuracy_by(records, lambda r: record_meta(r, "mv_answer_type")),
        }
