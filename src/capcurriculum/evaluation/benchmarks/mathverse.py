"""MathVerse testmini (AI4Math/MathVerse), one or more problem versions (default Vision Intensive).

VLMEvalKit `vlmeval/dataset/utils/mathverse.py` scores every item with an LLM judge (extract, then
judge equivalence) after a prefetch that accepts an extracted answer string-equal to the gold; the
rule here is that prefetch plus option-letter and numeric equality, and every item is marked
`needs_judge`. Sub-scores (MathVerse_acc): problem_version, subject, subfield.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from capcurriculum.answers import LETTERS, parse_number, parse_options, single_number

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
from .mathvision import values_equal

SPEC = BenchmarkSpec(
    name="mathverse", title="MathVerse_MINI_Vision_Intensive", hub_id="AI4Math/MathVerse", split="testmini",
    config="testmini", id_column="sample_index", image_column="image", question_column="query_wo",
    answer_column="answer",
    columns=("sample_index", "problem_index", "problem_version", "question", "query_wo", "query_cot", "image",
             "answer", "question_type", "metadata"),
    size=3940, headline="accuracy", scoring_source="VLMEvalKit vlmeval/dataset/utils/mathverse.py")

VERSIONS = ("Text Dominant", "Text Lite", "Vision Intensive", "Vision Dominant", "Vision Only", "Text Only")


class MathVerse(Adapter):
    spec = SPEC

    def __init__(self, versions: Iterable[str] | str = ("Vision Intensive",), prompt_column: str = "query_wo"):
        chosen = VERSIONS if versions == "all" else tuple([versions] if isinstance(versions, str) else versions)
        unknown = [v for v in chosen if v not in VERSIONS]
        if unknown:
            raise ValueError(f"MathVerse: unknown problem_version(s) {unknown}; known: {', '.join(VERSIONS)}")
        self.versions = chosen
        # query_wo = "answer directly" instruction + question (lmms-eval's default); query_cot asks
        # for reasoning first; question is the bare stem.
        self.prompt_column = prompt_column

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem | None:
        version = require(row, "problem_version")
        if version not in self.versions:
            return None
        prompt = require(row, self.prompt_column)
        gold = str(require(row, "answer")).strip()
        # Text Only rows have no image by design; every other version must have one.
        image = (row.get("image") or None) if version == "Text Only" else require_image(row, "image")
        qtype = require(row, "question_type")
        meta = {**dict(row.get("metadata") or {}), "problem_version": version, "question_type": qtype,
                "problem_index": row.get("problem_index")}
        if qtype == "multi-choice":
            # Vision-only rows draw the options in the image: the letters are all that is known.
            choices = parse_options(str(row.get("question") or prompt)) or {c: "" for c in LETTERS[:5]}
            if gold not in choices:
                raise RowError("answer", f"gold {gold!r} is not an option letter")
            return BenchItem(self.spec.title, rid, prompt, image, gold, "choice", choices, meta)
        if qtype != "free-form":
            raise RowError("question_type", f"unknown question_type {qtype!r}")
        atype = "number" if parse_number(gold) is not None else "text"
        return BenchItem(self.spec.title, rid, prompt, image, gold, atype, {}, meta)

    def needs_judge(self, item: BenchItem) -> bool:
        return True

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        if extracted is None:
            return False
        if item.answer_type == "choice":
            return extracted == item.gold
        if item.answer_type == "number" and single_number(extracted) is not None:
            return values_equal(str(single_number(extracted)), item.gold)
        return values_equal(extracted, item.gold)

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {"by_version": accuracy_by(records, lambda r: record_meta(r, "problem_version")),
                "by_subject": accuracy_by(records, lambda r: record_meta(r, "subject")),
                "by_subfield": accuracy_by(records, lambda r: record_meta(r, "subfield"))}
