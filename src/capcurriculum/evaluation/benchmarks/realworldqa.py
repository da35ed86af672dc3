"""RealWorldQA (xai-org/RealworldQA, split test).

The question already carries its options and the instruction ("Please answer directly with only
the letter of the correct option..."). Most golds are option letters; the rest are a short word or
number. Scoring as lmms-eval `tasks/realworldqa/utils.py` and VLMEvalKit's MCQ matching: letter
against letter; otherwise the reply, lower-cased and without a final period, equals the gold (here
through `capcurriculum.answers.is_correct`, which also maps number words to digits). The hub has no
id column: the row index is the id.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from capcurriculum.answers import is_correct, parse_number, parse_options

from .base import Adapter, BenchItem, BenchmarkSpec, RowError, require, require_image

SPEC = BenchmarkSpec(
    name="realworldqa", title="RealWorldQA", hub_id="xai-org/RealworldQA", split="test", config=None,
    id_column=None, image_column="image", question_column="question", answer_column="answer",
    columns=("image", "question", "answer"),
    size=765, headline="accuracy", scoring_source="lmms-eval lmms_eval/tasks/realworldqa/utils.py")


class RealWorldQA(Adapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        gold = str(require(row, "answer")).strip()
        image = require_image(row, "image")
        choices = parse_options(question)
        if len(gold) == 1 and gold.isalpha() and gold.isupper():
            if gold not in choices:
                raise RowError("answer", f"gold letter {gold!r} but the question lists no such option")
            return BenchItem(self.spec.title, rid, question, image, gold, "choice", choices, {})
        atype = "number" if parse_number(gold) is not None else "text"
        return BenchItem(self.spec.title, rid, question, image, gold, atype, {}, {})

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        if item.answer_type == "choice":
            return extracted is not None and extracted == item.gold
        return is_correct(extracted, item.gold, item.answer_type)
