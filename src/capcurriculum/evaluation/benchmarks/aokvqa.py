"""A-OKVQA multiple choice, validation split (HuggingFaceM4/A-OKVQA).

VLMEvalKit scores A-OKVQA as a generic multiple-choice set (`vlmeval/dataset/image_mcq.py`,
`vlmeval/utils/matching_util.py` can_infer): the option letter the reply commits to against the
gold letter. The test split hides `correct_choice_idx`, so its rows are skipped with that reason.
Sub-score: the dataset's `difficult_direct_answer` flag.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import LETTERS

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
    name="aokvqa", title="A-OKVQA", hub_id="HuggingFaceM4/A-OKVQA", split="validation", config=None,
    id_column="question_id", image_column="image", question_column="question", answer_column="correct_choice_idx",
    columns=("question_id", "question", "choices", "correct_choice_idx", "image", "difficult_direct_answer"),
    size=1145, headline="accuracy", scoring_source="VLMEvalKit vlmeval/dataset/image_mcq.py (can_infer)")


class AOKVQA(Adapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        choices = letters_for(require(row, "choices"))
        if row.get("correct_choice_idx") is None:
            raise RowError("correct_choice_idx", "gold hidden (the test split has no answers)")
        idx = int(row["correct_choice_idx"])
        if not 0 <= idx < len(choices):
            raise RowError("correct_choice_idx", f"index {idx} outside {len(choices)} choices")
        image = require_image(row, "image")
        meta = {"difficult_direct_answer": row.get("difficult_direct_answer")}
        return BenchItem(self.spec.title, rid, f"{question}\n{options_block(choices)}", image, LETTERS[idx],
                         "choice", choices, meta)

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        return extracted is not None and extracted == item.gold

    def skipped_meta(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"difficult_direct_answer": row.get("difficult_direct_answer")}

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"by_difficult_direct_answer":
                accuracy_by(records, lambda r: str(record_meta(r, "difficult_direct_answer")).lower())}
