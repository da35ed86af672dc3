"""HallusionBench (lmms-lab/HallusionBench, split image: the 951 questions with a figure).

Gold `gt_answer` is "1" (yes) or "0" (no). Metrics as VLMEvalKit `vlmeval/dataset/utils/yorn.py`
Hallusion_rating: aAcc = per-question accuracy; fAcc = share of figures (set_id, figure_id) whose
every question is right; qAcc = share of questions (set_id, question_id) right on every figure
variant; each overall, per category (VD / VS) and per subcategory. VLMEvalKit groups by
subcategory + ids; the category is added to the group key here so that a VD and a VS set with the
same subcategory and ids cannot merge. aAcc is VLMEvalKit's headline number.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from .base import BenchItem, BenchmarkSpec, RowError, mean, record_meta, require, require_image
from .yesno import YesNoAdapter

SPEC = BenchmarkSpec(
    name="hallusionbench", title="HallusionBench", hub_id="lmms-lab/HallusionBench", split="image",
    config=None, id_column=None, image_column="image", question_column="question", answer_column="gt_answer",
    columns=("category", "subcategory", "set_id", "figure_id", "question_id", "question", "gt_answer", "image"),
    size=951, headline="aAcc", scoring_source="VLMEvalKit vlmeval/dataset/utils/yorn.py (Hallusion_rating)",
    beside=("qAcc", "fAcc"))

_GOLD = {"1": "yes", "0": "no"}


def _all_right_share(records: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], tuple]) -> float | None:
    groups: dict[tuple, list[bool]] = defaultdict(list)
    for r in records:
        groups[key(r)].append(bool(r["correct"]))
    return mean(all(v) for v in groups.values())


def hallusion_metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    def ids(*names: str) -> Callable[[Mapping[str, Any]], tuple]:
        return lambda r: tuple(str(record_meta(r, n)) for n in ("category", "subcategory", "set_id", *names))

    return {"n": len(records), "aAcc": mean(bool(r["correct"]) for r in records),
            "fAcc": _all_right_share(records, ids("figure_id")),
            "qAcc": _all_right_share(records, ids("question_id"))}


class HallusionBench(YesNoAdapter):
    spec = SPEC

    def row_id(self, row: Mapping[str, Any], index: int) -> str:
        parts = [row.get(k) for k in ("category", "subcategory", "set_id", "figure_id", "question_id")]
        return "_".join(map(str, parts)) if all(p not in (None, "") for p in parts) else f"#{index}"

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question = require(row, "question")
        gold = _GOLD.get(str(require(row, "gt_answer")).strip())
        if gold is None:
            raise RowError("gt_answer", f"gold {row['gt_answer']!r} is not 1/0")
        meta = {k: str(require(row, k)) for k in ("category", "subcategory", "set_id", "figure_id", "question_id")}
        image = require_image(row, "image")
        return BenchItem(self.spec.title, rid, question, image, gold, "text", {}, meta)

    def skipped_meta(self, row: Mapping[str, Any]) -> dict[str, Any]:
        return {k: str(row.get(k)) for k in ("category", "subcategory", "set_id", "figure_id", "question_id")}

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        overall = hallusion_metrics(records)
        out: dict[str, Any] = {k: overall[k] for k in ("aAcc", "fAcc", "qAcc")}
        for field in ("category", "subcategory"):
            groups: dict[str, list[Mapping[str, Any]]] = defaultdict(list)
            for r in records:
                groups[str(record_meta(r, field))].append(r)
            out[f"by_{field}"] = {g: hallusion_metrics(rs) for g, rs in sorted(groups.items())}
        return out
