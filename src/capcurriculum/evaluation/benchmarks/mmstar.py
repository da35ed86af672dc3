"""MMStar (Lin-Chen/MMStar, config and split val).

Options are written inside the question ("Options: A: ..., B: ..."); the gold is a letter A-D.
Scored as VLMEvalKit's multiple choice (`vlmeval/dataset/image_mcq.py`, can_infer) with the
category and l2_category sub-scores its report prints (lmms-eval `tasks/mmstar/utils.py` groups the
same six categories).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import LETTERS, parse_options

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
    name="mmstar", title="MMStar", hub_id="Lin-Chen/MMStar", split="val", config="val",
    id_column="index", image_column="image", question_column="question", answer_column="answer",
    columns=("index", "question", "image", "answer", "category", "l2_category"),
    size=1500, headline="accuracy", scoring_source="VLMEvalKit vlmeval/dataset/image_mcq.py (can_infer)")


class MMStar(Adapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        gold = str(require(row, "answer")).strip()
        image = require_image(row, "image")
        # The letters are what matters; option texts help only the text-match fallback.
        choices = parse_options(question) or {c: "" for c in LETTERS[:4]}
        if gold not in choices:
            raise RowError("answer", f"gold {gold!r} is not an option letter")
        meta = {"category": row.get("category"), "l2_category": row.get("l2_category")}
        return BenchItem(self.spec.title, rid, question, image, gold, "choice", choices, meta)

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        return extracted is not None and extracted == item.gold

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"by_category": accuracy_by(records, lambda r: record_meta(r, "category")),
                "by_l2_category": accuracy_by(records, lambda r: record_meta(r, "l2_category"))}
