"""bench/world_v2_gates.py: issue 37's gates computed from fixed inputs, and found in a DAG workspace's outputs."""

import importlib.util
from pathlib import Path

import pytest

from capcurriculum.io import write_json, write_jsonl

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("world_v2_gates", ROOT / "bench" / "world_v2_gates.py")
bench = importlib.util.module_from_spec(spec)
spec.loader.exec_module(bench)

INPUTS = {
    "filter_caption": {"filter_small": {"identify": {"acc": 0.95, "n": 220}, "group_count": {"acc": 0.89, "n": 180}},
                       "filter_large": {"identify": {"acc": 0.99, "n": 220}, "group_count": {"acc": 0.97, "n": 180}}},
    "identify": {"greedy": 0.31, "n": 5247, "pass_at_8": 0.62, "slice_greedy": 0.40, "slice": "first 400"},
    "attributes": {"color": {"acc": 0.25, "n": 400, "chance": 1 / 6},     # +3.8 se
                   "shape": {"acc": 0.27, "n": 400, "chance": 1 / 4}},   # +0.9 se
    "dperc_blind": {"share": 0.30, "n": 150},
}


def _holds(rows):
    return {r["gate"]: r["holds"] for r in rows}


def test_gates_on_a_fixed_input():
    rows = bench.gates(INPUTS)
    assert _holds(rows) == {
        "1. filter_small caption accuracy, group_count": False,   # 0.89 < 0.90
        "1. filter_small caption accuracy, identify": True,
        "1. filter_large caption accuracy, group_count": True,
        "1. filter_large caption accuracy, identify": True,
        "2. base identify greedy": True,                          # in [0.20, 0.40]
        "2. base pass@8 - greedy (first 400)": True,              # 0.62 - 0.40 = +0.22
        "3. base color above chance": True,
        "3. base shape above chance": False,                      # within 2 se of 1/4
        "4. D_perc answerable blind": True,                       # <= 0.30, the bound included
    }
    assert "+3.8 se" in next(r["measured"] for r in rows if r["gate"] == "3. base color above chance")
    assert bench.verdict(rows) == "fail"


@pytest.mark.parametrize("change, verdict", [
    ({}, "all gates hold"),
    ({"identify": {"greedy": 0.41, "n": 100, "pass_at_8": 0.9, "slice_greedy": 0.5}}, "fail"),
    ({"identify": {"greedy": 0.3, "n": 100, "pass_at_8": 0.69, "slice_greedy": 0.5}}, "fail"),   # +0.19
    ({"dperc_blind": None}, "incomplete"),
    ({"filter_caption": {"filter_small": INPUTS["filter_caption"]["filter_large"]}}, "incomplete"),
])
def test_verdict_is_incomplete_when_an_input_is_missing_and_fails_on_any_failed_gate(change, verdict):
    good = {**INPUTS, "filter_caption": {m: INPUTS["filter_caption"]["filter_large"] for m in bench.FILTERS},
            "attributes": {a: {"acc": 0.5, "n": 400, "chance": 0.25} for a in ("color", "shape")}}
    assert bench.verdict(bench.gates({**good, **change})) == verdict


def test_attribute_accuracy_reads_identify_answers_or_the_first_worlds_questions():
    def row(qtype, gold, pred, correct=False, mode="perc_image"):
        return {"qtype": qtype, "gold": gold, "pred": pred, "correct": correct, "mode": mode}

    colors, shapes = ["red", "blue", "green"], ["circle", "cross"]
    v2 = [row("identify", "small red circle", "large red cross"), row("identify", "large blue cross", "blue crosses"),
          row("identify", "small green circle", None), row("identify", "nothing", "small red circle"),
          row("identify", "small red circle", "small red circle", mode="perc_caption"),
          row("group_count", "2", "2", True)]
    assert bench.attribute_accuracy(v2, colors, shapes) == {
        "color": {"acc": 2 / 3, "n": 3, "chance": 1 / 3}, "shape": {"acc": 1 / 3, "n": 3, "chance": 1 / 2}}
    v1 = [row("color", "red", "red", True), row("color", "blue", "red"), row("shape", "cross", "cross", True)]
    assert bench.attribute_accuracy(v1, colors, shapes) == {
        "color": {"acc": 0.5, "n": 2, "chance": 1 / 3}, "shape": {"acc": 1.0, "n": 1, "chance": 1 / 2}}


def test_inputs_are_read_from_a_workspaces_outputs(tmp_path):
    data = tmp_path / "data"
    for model, acc in (("filter_small", 0.93), ("filter_large", 0.97)):
        write_json(data / "metrics/base" / f"{model}.json", {
            "perc_caption/acc": acc, "perc_caption/identify/acc": acc, "perc_caption/identify/n": 220,
            "perc_caption/group_count/acc": acc, "perc_caption/group_count/n": 180, "perc_image/identify/acc": 0.1})
    write_json(data / "metrics/base/policy.json", {"perc_image/identify/acc": 0.2, "perc_image/identify/n": 220})
    write_json(data / "metrics/train/train_1.json", {
        "before/perc_image/identify/acc": 0.3, "before/perc_image/identify/n": 5247,
        "before/headroom/perc/pass_at_8": 0.7, "before/headroom/perc/greedy_pass_at_1": 0.35,
        "before/headroom/perc/n": 400})
    write_json(data / "world/manifest.json", {"config": {"colors": ["red", "blue"], "shapes": ["circle", "cross"]}})
    write_jsonl(data / "models/base/policy/eval/heldout.jsonl", [
        {"qtype": "identify", "gold": "small red circle", "pred": "small red cross", "correct": False,
         "mode": "perc_image"}])
    q = lambda text, answer: {"question": text, "answer": answer, "answer_type": "text",  # noqa: E731
                              "meta": {"qtype": "identify"}}
    write_jsonl(data / "sets/perc/perc_train.jsonl", [q("A?", "x"), q("A?", "x"), q("B?", "y")])
    write_jsonl(data / "sets/perc/perc_val.jsonl", [q("A?", "x")])
    write_jsonl(data / "sets/perc/perc_test.jsonl", [q("A?", "z"), q("B?", "y"), q("C?", "w")])
    inputs = bench.read_inputs(tmp_path)
    assert inputs["filter_caption"]["filter_small"] == {"identify": {"acc": 0.93, "n": 220},
                                                        "group_count": {"acc": 0.93, "n": 180}}
    assert inputs["identify"] == {"greedy": 0.3, "n": 5247, "pass_at_8": 0.7, "slice_greedy": 0.35,
                                  "slice": "first 400 perception questions"}
    assert inputs["attributes"] == {"color": {"acc": 1.0, "n": 1, "chance": 0.5},
                                    "shape": {"acc": 0.0, "n": 1, "chance": 0.5}}
    assert inputs["dperc_blind"] == {"share": 0.5, "n": 4}   # A?->x right, A?->z wrong, B?->y right, C? wrong
    assert bench.verdict(bench.gates(inputs)) == "fail"       # identify 0.3 holds; shape at 0.0 does not
    assert bench.read_inputs(tmp_path / "nothing") == {"filter_caption": {}, "identify": {}}


def test_identifys_own_headroom_is_preferred_to_the_mixed_slices(tmp_path):
    """Gate 2's pass@8 is identify's (sampling/headroom.py's per-type figures); the whole slice's only when a run
    predates them."""
    write_json(tmp_path / "data/metrics/train/train_1.json", {
        "before/perc_image/identify/acc": 0.3, "before/perc_image/identify/n": 5247,
        "before/headroom/perc/pass_at_8": 0.7, "before/headroom/perc/greedy_pass_at_1": 0.35,
        "before/headroom/perc/n": 400, "before/headroom/perc/identify/pass_at_8": 0.45,
        "before/headroom/perc/identify/greedy_pass_at_1": 0.28, "before/headroom/perc/identify/n": 213})
    assert bench.read_inputs(tmp_path)["identify"] == {
        "greedy": 0.3, "n": 5247, "pass_at_8": 0.45, "slice_greedy": 0.28,
        "slice": "the 213 identify questions of the headroom slice"}
