"""The adapter interface every benchmark implements, and the records it passes around.

An adapter turns a benchmark's raw hub rows into prompt items, reads an answer out of a model's
response by rule, scores it, and aggregates the per-item records into the benchmark's official
numbers. Rows it cannot use are returned as `Skipped` with the field and reason, never dropped:
as the reference (VLMEvalKit) counts every row of a benchmark, a skipped row is aggregated as a wrong
answer (`Adapter.skipped_record`), in every figure's denominator.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

from capcurriculum.answers import (
    LETTERS,
    answer_line,
    boxed_answers,
    boxed_or_answer_line,
    extract_boxed,
    gold_is_gradeable,
    infer_choice,
    short_reply,
)

# A judge decides, from the item and the raw response, whether the response is right; None when it
# cannot tell (then the rule-based verdict stands). The paper's judge was Claude-Haiku-4.5.
Judge = Callable[["BenchItem", str], "bool | None"]


@dataclass(frozen=True)
class BenchmarkSpec:
    """Where a benchmark lives on the hub and which of its columns the adapter reads."""

    name: str  # registry key
    title: str  # the name papers print (VLMEvalKit's dataset name)
    hub_id: str
    split: str
    config: str | None
    id_column: str | None  # None: the hub has no id column and the row's index is its id
    image_column: str
    question_column: str
    answer_column: str
    columns: tuple[str, ...]  # every column the adapter reads
    size: int | None  # rows in the split, to notice a partial download
    headline: str  # the aggregate() key reported as "the" number (metrics.json, the report, Overall)
    scoring_source: str  # the file the scoring rule follows
    beside: tuple[str, ...] = ()  # aggregate() keys shown next to the headline (WeMath's loose score)

    def load_kwargs(self) -> dict[str, Any]:
        """Arguments for `datasets.load_dataset`."""
        return {"path": self.hub_id, "name": self.config, "split": self.split}


@dataclass
class BenchItem:
    """One benchmark question, ready to prompt."""

    benchmark: str
    id: str
    question: str  # the full prompt text, options included
    image: Any  # PIL image, bytes, a path, or datasets' {"bytes", "path"}; None only for text-only rows
    gold: str  # an option letter for answer_type "choice"
    answer_type: str  # choice / number / text, as the project's example schema
    choices: dict[str, str] = field(default_factory=dict)  # letter -> option text
    meta: dict[str, Any] = field(default_factory=dict)  # what sub-scores and scoring need


@dataclass(frozen=True)
class Skipped:
    benchmark: str
    row_id: str
    field: str
    reason: str
    gold: str | None = None  # the row's answer as far as it can be read
    meta: Mapping[str, Any] = field(default_factory=dict)  # what aggregate() needs to place the row

    def __str__(self) -> str:
        return f"{self.benchmark} row {self.row_id}: field {self.field!r}: {self.reason}"


@dataclass
class Converted:
    """What `rows_to_items` made of a benchmark's rows."""

    items: list[BenchItem]
    skipped: list[Skipped]
    excluded: int = 0  # rows outside the selected subset (e.g. another MathVerse version): not errors

    @property
    def counts(self) -> dict[str, int]:
        return {"items": len(self.items), "skipped": len(self.skipped), "excluded": self.excluded}


class RowError(Exception):
    """A row the adapter cannot use; becomes a `Skipped` entry."""

    def __init__(self, field_name: str, reason: str):
        super().__init__(f"{field_name}: {reason}")
        self.field = field_name
        self.reason = reason


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, str) and not value.strip())


def require(row: Mapping[str, Any], column: str) -> Any:
    """The row's value for `column`; a missing or empty value is a RowError naming the column."""
    if column not in row:
        raise RowError(column, "column missing")
    if _blank(row[column]):
        raise RowError(column, "empty value")
    return row[column]


def require_image(row: Mapping[str, Any], *columns: str) -> Any:
    """The first usable image among `columns` (decoded image first, then a path or bytes)."""
    for col in columns:
        value = row.get(col)
        if isinstance(value, Mapping):  # datasets' Image(decode=False): {"bytes": ..., "path": ...}
            if value.get("bytes") or value.get("path"):
                return value
            continue
        if isinstance(value, bytes | bytearray):
            if value:
                return value
            continue
        if not _blank(value):
            return value
    raise RowError(columns[0], "missing image")


def options_block(choices: Mapping[str, str]) -> str:
    return "Options:\n" + "\n".join(f"{k}. {v}" for k, v in choices.items())


def letters_for(options: Sequence[Any]) -> dict[str, str]:
    return {LETTERS[i]: str(v) for i, v in enumerate(options)}


def mean(values: Iterable[bool | float]) -> float | None:
    vals = [float(v) for v in values]
    return sum(vals) / len(vals) if vals else None


def accuracy_by(records: Sequence[Mapping[str, Any]], key: Callable[[Mapping[str, Any]], Any]
                ) -> dict[str, dict[str, float]]:
    """{group: {"n", "accuracy"}}; `key` may return one group, a list of groups, or None."""
    groups: dict[str, list[bool]] = defaultdict(list)
    for r in records:
        k = key(r)
        for g in (k if isinstance(k, list | tuple) else [k]):
            if g is not None and g != "":
                groups[str(g)].append(bool(r["correct"]))
    return {g: {"n": len(v), "accuracy": sum(v) / len(v)} for g, v in sorted(groups.items())}


class Adapter(ABC):
    """Raw rows -> items -> extracted answers -> scores -> the benchmark's official numbers."""

    spec: ClassVar[BenchmarkSpec]

    # --- rows -> items -------------------------------------------------------------------------
    def rows_to_items(self, rows: Iterable[Mapping[str, Any]], *, source: str) -> Converted:
        """Convert every row; unusable rows go to `skipped` with their id, field and reason.

        `source` says where the rows came from (a hub id@revision or a file); it is kept in each
        item's meta as "rows_from" so a result can be traced to its data.
        """
        out = Converted([], [])
        for index, row in enumerate(rows):
            rid = self.row_id(row, index)
            try:
                item = self.row_to_item(row, rid)
            except RowError as e:
                out.skipped.append(self._skip(row, rid, e.field, e.reason))
                continue
            except (TypeError, ValueError) as e:  # a value of the wrong kind, e.g. a non-numeric index
                out.skipped.append(self._skip(row, rid, "<row>", f"malformed: {e}"))
                continue
            if item is None:
                out.excluded += 1
                continue
            item.meta["rows_from"] = source
            out.items.append(item)
        return out

    def row_id(self, row: Mapping[str, Any], index: int) -> str:
        col = self.spec.id_column
        if col is None or _blank(row.get(col)):
            return f"#{index}"  # the hub has no id (RealWorldQA) or this row lacks it
        return str(row[col])

    @abstractmethod
    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem | None:
        """One row as an item; None when the row is outside the selected subset."""

    def _skip(self, row: Mapping[str, Any], rid: str, field_name: str, reason: str) -> Skipped:
        gold = row.get(self.spec.answer_column)
        return Skipped(self.spec.title, rid, field_name, reason,
                       None if _blank(gold) else str(gold).strip(), self.skipped_meta(row))

    def skipped_meta(self, row: Mapping[str, Any]) -> dict[str, Any]:
        """The meta of a skipped row that aggregate() groups by (WeMath: its problem and part)."""
        return {}

    def skipped_record(self, s: Skipped) -> dict[str, Any]:
        """A skipped row as a record: no response, scored wrong, counted in every denominator."""
        return {"benchmark": s.benchmark, "id": s.row_id, "gold": s.gold, "extracted": None, "correct": False,
                "no_answer": False, "judge": "not_needed", "response": None, "n_tokens": -1,
                "skipped": f"{s.field}: {s.reason}", "meta": dict(s.meta)}

    # --- response -> answer -> verdict ---------------------------------------------------------
    def needs_judge(self, item: BenchItem) -> bool:
        """Whether the official scoring of this item uses an LLM judge."""
        return False

    def extract(self, response: str, item: BenchItem) -> str | None:
        """The answer `response` commits to, or None. Default: a choice letter, else box/answer line, else a bare short reply."""
        if response is None:
            return None
        if item.answer_type == "choice":
            for cand in (extract_boxed(response), answer_line(response)):
                if cand is not None:
                    letter = infer_choice(cand, item.choices) if item.choices else None
                    if letter:
                        return letter
            return infer_choice(response.rsplit("</think>", 1)[-1], item.choices)
        return boxed_or_answer_line(response) or short_reply(response)

    @abstractmethod
    def score(self, item: BenchItem, extracted: str | None) -> bool:
        """Whether the extracted answer is right (None is always wrong)."""

    def grade(self, item: BenchItem, response: str, judge: Judge | None = None) -> dict[str, Any]:
        """A JSON-ready record of one response: extracted answer, verdict, and how it was reached.

        A response whose last box is no answer (nested boxes, an over-long box: `answers.boxed_answers`)
        has no answer: the rule fallbacks below the box would read a number out of the nest."""
        boxes = boxed_answers(response) if response is not None else []
        extracted = None if boxes and boxes[-1] is None else self.extract(response, item)
        gradeable = gold_is_gradeable(item.gold, item.answer_type)  # else never right, never judged; counted
        correct = gradeable and self.score(item, extracted)
        judged = "not_needed"
        if gradeable and self.needs_judge(item):
            if judge is None:
                judged = "unavailable"  # official scoring asks a judge; the rule verdict stands
            else:
                verdict = judge(item, response)
                judged = "failed" if verdict is None else "used"
                correct = correct if verdict is None else bool(verdict)
        return {"benchmark": self.spec.title, "id": item.id, "gold": item.gold, "extracted": extracted,
                "correct": bool(correct), "no_answer": extracted is None, "judge": judged,
                "ungradeable_gold": not gradeable,
                "response": response, "meta": {k: v for k, v in item.meta.items() if k != "rows_from"}}

    # --- records -> numbers --------------------------------------------------------------------
    def aggregate(self, records: Sequence[Mapping[str, Any]], *, skipped: Sequence[Skipped] = ()
                  ) -> dict[str, Any]:
        """Accuracy, counts, and the benchmark's official sub-scores (fractions in 0..1) over every row:
        `records` and `skipped` (rows the adapter could not use, scored wrong), or records that already
        hold skipped rows as `skipped_record`s."""
        records = [*records, *map(self.skipped_record, skipped)]
        n = len(records)
        correct = sum(bool(r["correct"]) for r in records)
        out: dict[str, Any] = {
            "benchmark": self.spec.title, "n": n, "correct": correct,
            "accuracy": correct / n if n else None,
            "no_answer": sum(bool(r["no_answer"]) for r in records),
            "judge_unavailable": sum(r.get("judge") == "unavailable" for r in records),
            "ungradeable_gold": sum(bool(r.get("ungradeable_gold")) for r in records),
            "skipped": sum(bool(r.get("skipped")) for r in records),
        }
        out.update(self.sub_scores(records))
        out["headline"] = self.spec.headline
        return out

    def headline(self, official: Mapping[str, Any]) -> dict[str, Any]:
        """The benchmark's headline figure out of `aggregate()`'s numbers, with what is shown beside it."""
        return {"metric": self.spec.headline, "value": official.get(self.spec.headline),
                "beside": {k: official.get(k) for k in self.spec.beside}}

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {}


def record_meta(record: Mapping[str, Any], key: str) -> Any:
    return (record.get("meta") or {}).get(key)
