"""We-Math testmini (We-Math/We-Math) and its four-dimensional score.

Rows share an `ID` per multi-step problem; `key` says which part a row is: "2steps_1", "2steps_2",
"2steps_multi", "3steps_1".."3steps_3", "3steps_multi" (the sub-problems and the composite one).
Following VLMEvalKit `vlmeval/dataset/utils/wemath.py` (evaluate_calculate_metrics,
evaluate_compute_final_scores, evaluate_update_main_results_df), each multi-step problem is:

- IK insufficient knowledge: some sub-problem wrong and the composite wrong;
- IG inadequate generalization: every sub-problem right, the composite wrong;
- CM complete mastery: composite right and every sub-problem right (strict) / any right (loose);
- RM rote memorization: composite right and some sub-problem wrong (strict) / all wrong (loose).

Score = (N - 0.5*IG - RM - IK) / N, strict and loose; rates IK/N, IG/N, CM/N and RM/(CM+RM).
VLMEvalKit hard-codes N = 525, the testmini's composite (multi-step) problems, and every row there has a
prediction (a failed one is wrong). Here N is the number of composite problems among the rows, every
row counted: a skipped row is a wrong part (`skipped_meta` places it), so the full testmini gives
N = 525, and a part absent from the rows altogether (a partial rows file) is also scored wrong and
the problem counted in `incomplete_problems`. Step accuracies S1 (sub-problems), S2, S3 (composites)
as its wemath_accuracy.

The headline is Score (Strict), with Score (Loose) beside it; the paper's table prints one WeMath
number without saying which (the report says where it is set).
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import extract_boxed, infer_choice, parse_options

from .base import (
    Adapter,
    BenchItem,
    BenchmarkSpec,
    RowError,
    accuracy_by,
    mean,
    record_meta,
    require,
    require_image,
)

SPEC = BenchmarkSpec(
    name="wemath", title="WeMath", hub_id="We-Math/We-Math", split="testmini", config=None,
    id_column="ID", image_column="image_path", question_column="question", answer_column="answer",
    columns=("ID", "split", "knowledge concept", "question", "option", "answer", "key", "question number",
             "image_path"),
    size=1740, headline="score_strict", scoring_source="VLMEvalKit vlmeval/dataset/utils/wemath.py",
    beside=("score_loose",))

_KEY = re.compile(r"([23])steps_(\d|multi)")
OFFICIAL_TESTMINI_PROBLEMS = 525


_WEMATH_MARKS = re.compile(r"[><:.]")


def wemath_letter(tail: str) -> str | None:
    """WeMath's reading of what follows "Answer" (wemath.py load_and_process_data): without > < : . and
    outer spaces, its first character if one of A-H."""
    tail = _WEMATH_MARKS.sub("", tail).strip()
    return tail[0] if tail and tail[0] in "ABCDEFGH" else None


def official_answer(response: str) -> str | None:
    """VLMEvalKit's no-judge rule: the first character after the last "Answer", if a letter A-H."""
    return wemath_letter(response.split("Answer")[-1]) if "Answer" in response else None


class WeMath(Adapter):
    spec = SPEC

    def row_id(self, row: Mapping[str, Any], index: int) -> str:
        # ID names the problem, not the row: its parts are told apart by `key`.
        pid, key = row.get("ID"), row.get("key")
        return f"{pid}:{key}" if pid not in (None, "") and key else f"#{index}"

    def skipped_meta(self, row: Mapping[str, Any]) -> dict[str, Any]:
        pid, key = row.get("ID"), row.get("key")
        return {"problem_id": str(pid), "key": str(key)} if pid not in (None, "") and key else {}

    def row_to_item(self, row: Mapping[str, Any], rid: str) -> BenchItem:
        question, option = require(row, "question"), require(row, "option")
        gold = str(require(row, "answer")).strip()
        key = require(row, "key")
        problem = require(row, "ID")
        image = require_image(row, "image_path")
        choices = parse_options(option)
        if not choices:
            raise RowError("option", f"no options could be read from {option!r}")
        if gold not in choices:
            raise RowError("answer", f"gold {gold!r} is not an option letter ({', '.join(choices)})")
        meta = {"problem_id": str(problem), "key": key, "knowledge_concept": row.get("knowledge concept")}
        return BenchItem(self.spec.title, rid, f"{question}\n{option}", image, gold, "choice", choices, meta)

    def extract(self, response: str, item: BenchItem) -> str | None:
        if response is None:
            return None
        boxed = extract_boxed(response)
        if boxed is not None:
            return infer_choice(boxed, item.choices)
        return official_answer(response) or infer_choice(response.rsplit("</think>", 1)[-1], item.choices)

    def score(self, item: BenchItem, extracted: str | None) -> bool:
        return extracted is not None and extracted == item.gold

    def sub_scores(self, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        return {**four_dimensional(records),
                "by_knowledge_concept": accuracy_by(records, lambda r: record_meta(r, "knowledge_concept"))}


def four_dimensional(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """CM / IK / IG / RM counts, rates, strict and loose scores, and step accuracies."""
    parts: dict[tuple[int, str], dict[str, bool]] = defaultdict(dict)
    unplaced = 0  # rows with no readable problem ID or part (a skipped row without them)
    for r in records:
        m = _KEY.fullmatch(str(record_meta(r, "key") or ""))
        if m:
            parts[(int(m.group(1)), str(record_meta(r, "problem_id")))][m.group(2)] = bool(r["correct"])
        else:
            unplaced += 1
    names = {k: [*(str(i) for i in range(1, k[0] + 1)), "multi"] for k in parts}
    incomplete = sum(any(p not in parts[k] for p in names[k]) for k in parts)
    # a part absent from the rows is scored wrong, as a skipped row is
    full = {k: {p: parts[k].get(p, False) for p in names[k]} for k in parts}
    counts = dict.fromkeys(("IK", "IG", "CM_strict", "CM_loose", "RM_strict", "RM_loose"), 0)
    for (steps, _), v in full.items():
        subs = [v[str(i)] for i in range(1, steps + 1)]
        if not v["multi"]:
            counts["IG" if all(subs) else "IK"] += 1
            continue
        counts["CM_strict" if all(subs) else "RM_strict"] += 1
        counts["CM_loose" if any(subs) else "RM_loose"] += 1
    n = len(full)

    def rate(x: int, d: int) -> float | None:
        return x / d if d else None

    def score(rm: int) -> float | None:
        return rate(n - 0.5 * counts["IG"] - rm - counts["IK"], n)

    return {
        "n_problems": n,
        "incomplete_problems": incomplete,
        "unplaced_rows": unplaced,
        "four_dim_counts": counts,
        "score_strict": score(counts["RM_strict"]),
        "score_loose": score(counts["RM_loose"]),
        "rates": {"IK": rate(counts["IK"], n), "IG": rate(counts["IG"], n),
                  "CM_strict": rate(counts["CM_strict"], n), "CM_loose": rate(counts["CM_loose"], n),
                  "RM_strict": rate(counts["RM_strict"], counts["CM_strict"] + counts["RM_strict"]),
                  "RM_loose": rate(counts["RM_loose"], counts["CM_loose"] + counts["RM_loose"])},
        "step_accuracy": {
            "S1": mean(v[str(i)] for (s, _), v in full.items() for i in range(1, s + 1)),
            "S2": mean(v["multi"] for (s, _), v in full.items() if s == 2),
            "S3": mean(v["multi"] for (s, _), v in full.items() if s == 3)},
    }

