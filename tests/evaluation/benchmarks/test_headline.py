"""Each benchmark's official headline through the whole path: fixture rows -> evaluator -> metrics.json,
summary.json -> report, with hand-scored replies (a scripted backend stands in for the model)."""

import pytest

from capcurriculum.evaluation.benchmarks import get_adapter
from capcurriculum.evaluation.evaluator import evaluate_benchmark, write_results
from capcurriculum.evaluation.report import write_report
from capcurriculum.generation.base import Result
from capcurriculum.io import read_json, read_jsonl

# WeMath fixture: problem -> which parts the reply gets right (sub-problems..., composite).
# Golds: B on 2-step rows, C on 3-step rows; 2-step 6's second sub-problem has no image (skipped).
WEMATH = {
    ("2", "1"): (True, True, True),  # CM strict, CM loose
    ("2", "2"): (False, True, True),  # RM strict, CM loose
    ("2", "3"): (False, False, True),  # RM strict, RM loose
    ("2", "4"): (True, True, False),  # IG
    ("2", "5"): (True, False, False),  # IK
    ("2", "6"): (True, None, True),  # sub 2 skipped = wrong: RM strict, CM loose
    ("3", "1"): (True, True, True, True),  # CM
    ("3", "2"): (True, True, True, True),  # CM
    ("3", "3"): (False, False, False, False),  # IK
}
# N = 9; IG 1, IK 2, RM strict 3 (2-step 2, 3, 6), RM loose 1 (2-step 3).
STRICT = (9 - 0.5 * 1 - 3 - 2) / 9  # 38.9 %
LOOSE = (9 - 0.5 * 1 - 1 - 2) / 9  # 61.1 %
# right rows: 2-step 3+2+1+2+1+2 = 11, 3-step 4+4+0 = 8; 19 of the 30 rows (the skipped one wrong)
WEMATH_ACC = 19 / 30

# POPE fixture (question_id -> reply); rows 9 (gold "maybe") and 10 (gold yes, no image) are skipped.
POPE = {"1": "\\boxed{Yes}", "2": "Yes, there is one.", "3": "No.", "4": "\\boxed{no}", "5": "Answer: yes",
        "6": "I am not sure.", "7": "No", "8": "yes"}
# TP 3 (1, 5, 8), FP 1 (2), FN 2 (3 and the skipped 10): precision 3/4, recall 3/5, F1 2/3.
POPE_F1, POPE_ACC = 2 / 3, 5 / 10  # accuracy: TP + TN (4, 7) of all 10 rows


def wemath_reply(item) -> str:
    steps, part = item.meta["key"].split("_")
    verdicts = WEMATH[(steps[0], item.meta["problem_id"])]
    right = verdicts[-1 if part == "multi" else int(part) - 1]
    letter = item.gold if right else "A"
    return f"<think>reasoning</think> \\boxed{{{letter}}}" if steps == "2steps" else f"Answer: {letter}"


class Scripted:
    """A backend whose replies are written by hand: item -> text."""

    def __init__(self, reply):
        self.reply = reply

    def generate(self, requests, sampling):
        return [Result(id=r.id, texts=[self.reply(r.id)], n_tokens=[7]) for r in requests]


@pytest.fixture
def evaluated(load_rows, tmp_path):
    wemath, pope = get_adapter("wemath"), get_adapter("pope")
    items = {it.id: it for it in wemath.rows_to_items(load_rows("wemath"), source="f").items}
    results = {
        "wemath": evaluate_benchmark(Scripted(lambda i: wemath_reply(items[i])), wemath, load_rows("wemath"),
                                     source="fixture", max_new_tokens=8),
        "pope": evaluate_benchmark(Scripted(POPE.__getitem__), pope, load_rows("pope"), source="fixture",
                                   max_new_tokens=8),
    }
    dirs = {m: tmp_path / m for m in ("base", "staged")}
    for d in dirs.values():
        write_results(d, results, model="scripted", protocol="lenient")
    return dirs


def test_metrics_json_carries_each_headline_and_overall_their_mean(evaluated):
    metrics = read_json(evaluated["staged"] / "metrics.json")
    assert metrics["wemath/score_strict"] == pytest.approx(STRICT)
    assert metrics["wemath/score_loose"] == pytest.approx(LOOSE)
    assert "wemath/accuracy" not in metrics  # per-row accuracy is not WeMath's number
    assert metrics["pope/f1"] == pytest.approx(POPE_F1)
    assert metrics["pope/accuracy"] == pytest.approx(POPE_ACC)
    assert metrics["overall"] == pytest.approx((STRICT + POPE_F1) / 2)
    assert metrics["wemath/skipped"] == 1 and metrics["wemath/n"] == 30  # every row counted
    assert metrics["pope/skipped"] == 2 and metrics["pope/n"] == 10
    assert metrics["protocol"] == "lenient"


def test_summary_keeps_per_row_accuracy_beside_the_headline(evaluated):
    summary = read_json(evaluated["staged"] / "summary.json")
    assert summary["wemath"]["headline"] == {"metric": "score_strict", "value": pytest.approx(STRICT),
                                             "beside": {"score_loose": pytest.approx(LOOSE)}}
    assert summary["wemath"]["accuracy"] == pytest.approx(WEMATH_ACC)
    assert summary["wemath"]["official"]["n_problems"] == 9
    assert summary["pope"]["headline"]["metric"] == "f1"
    records = read_jsonl(evaluated["staged"] / "wemath.jsonl")
    skipped = [r for r in records if r.get("skipped")]
    assert [(r["id"], r["correct"], r["response"]) for r in skipped] == [("6:2steps_2", False, None)]


def test_report_shows_headlines_the_paper_comparison_and_the_skips(evaluated, tmp_path):
    md = write_report(evaluated, tmp_path / "report", profile="paper")["md"].read_text()
    overall = 100 * (STRICT + POPE_F1) / 2
    row = (f"| staged | F1 {100 * POPE_F1:.1f} · acc {100 * POPE_ACC:.1f} "  # benchmarks in summary.json's order
           f"| strict {100 * STRICT:.1f} · loose {100 * LOOSE:.1f} | {overall:.1f} |")
    assert row in md
    assert "| base (paper) | – | 50.86 (vs strict) | – |" in md
    assert "set beside Score (Strict)" in md  # the report says which WeMath score the paper's is compared with
    assert "WeMath: N = 9 composite problems" in md
    assert "## Skipped rows (counted in every denominator, scored wrong)" in md
    assert "- WeMath row 6:2steps_2: field 'image_path': missing image" in md
    assert "- POPE row 10: field 'image': missing image" in md
    assert "Protocol (evaluation.protocol): base lenient; staged lenient. lenient: the project's rules" in md
