"""POPE (lmms-lab/POPE, split test): yes/no object-hallucination probes in three categories.

Metrics as VLMEvalKit `vlmeval/dataset/utils/yorn.py` POPE_rating, overall and per category
(adversarial / popular / random): accuracy, precision, recall and F1 with "yes" as the positive
class (a reply read as neither yes nor no counts as a "no" prediction there, and as wrong); F1 is
what VLMEvalKit prints as POPE's "Overall". yes_ratio is the share of replies read as "yes", as the
POPE paper defines it (lmms-eval's pope_aggregate_yes_ratio counts gold answers instead).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from .base import BenchItem, BenchmarkSpec, RowError, record_meta, require, require_image
from .yesno import YesNoAdapter

SPEC = BenchmarkSpec(
    name="pope", title="POPE", hub_id="lmms-lab/POPE", split="test", config="default",
    id_column="question_id", image_column="image", question_column="question", answer_column="answer",
    columns=("id", "question_id", "question", "answer", "image_source", "image", "category"),
    size=9000, headline="f1", scoring_source="VLMEvalKit vlmeval/dataset/utils/yorn.py (POPE_rating)",
    beside=("accuracy",))


def binary_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, float | int | None]:
    tp = sum(r["gold"] == "yes" and r["extracted"] == "yes" for r in records)
    fp = sum(r["gold"] == "no" and r["extracted"] == "yes" for r in records)
    fn = sum(r["gold"] == "yes" and r["extracted"] != "yes" for r in records)
    n = len(records)
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    return {
        "n": n,
        "accuracy": sum(bool(r["correct"]) for r in records) / n if n else None,
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "yes_ratio": sum(r["extracted"] == "yes" for r in records) / n if n else None,
    }


class POPE(YesNoAdapter):
    spec = SPEC

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        gold = str(require(row, "answer")).strip().lower()
        if gold not in ("yes", "no"):
            raise RowError("answer", f"gold {gold!r} is not yes/no")
        image = require_image(row, "image")
        meta = {"category": row.get("category"), "image_source": row.get("image_source")}
        return BenchItem(self.spec.title, rid, question, image, gold, "text", {}, meta)

    def skipped_meta(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {"category": row.get("category")}

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        overall = binary_metrics(records)
        by_cat: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
        for r in records:
            by_cat[str(record_meta(r, "category"))].append(r)
        return {"precision": overall["precision"], "recall": overall["recall"], "f1": overall["f1"],
                "yes_ratio": overall["yes_ratio"],
                "by_category": {c: binary_metrics(rs) for c, rs in sorted(by_cat.items())}}
