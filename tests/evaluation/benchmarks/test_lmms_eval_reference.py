"""The conformance responses through lmms-eval's own scoring (issue 36, Build item 4): a second reference.

lmms-eval 0.7.3 (PyPI, the test-only extra `ref`, which `make test` installs) has six of the eight
benchmarks with scoring modules that import offline: POPE, MMStar, RealWorldQA, MathVision, WeMath and
HallusionBench. Each response of test_conformance.py's tables (and of test_headline.py's and
test_hallusionbench.py's hand-scored tables) goes, unchanged, through

- the project's adapter (`grade_all`, rule only, split_think on, no judge), and
- lmms-eval's `process_results` for the same task, given the fixture row itself as `doc` (the fixtures are
  in the hub datasets' column layout, which lmms-eval's tasks read), after lmms-eval's default removal of
  reasoning blocks (evaluator.py 298-310 with __main__.py 319-323's default --reasoning_tags: <think> and
  <analysis> blocks are cut out, api/reasoning.py 4-35),

and the per-row correctness is compared. Then each headline's aggregation is fed the project's own per-row
verdicts, so that the two aggregations are compared on the same input.

The project follows VLMEvalKit, the paper's scorer; lmms-eval's rules differ from VLMEvalKit's on purpose in
places (whole-reply match for POPE, a different letter extractor, MathVision's original rule-based scorer,
WeMath through its reasoning variant's math-verify rule, a GPT-4 judge for HallusionBench). Each row where the
two disagree is listed in KNOWN with the reason, citing lmms-eval's file and lines (paths under
lmms_eval/tasks/ unless named otherwise); a listed row that comes to agree fails as well. docs/evaluation.md
("## lmms-eval") has the table.
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

pytest.importorskip("lmms_eval", reason="lmms-eval 0.7.3 is the reference here: the extra 'ref', installed by "
                    "`make test` (uv pip install -e '.[cpu,dev,ref]')")

from lmms_eval.api.reasoning import strip_reasoning_tags  # noqa: E402
from lmms_eval.tasks.hallusion_bench import evaluate_hb as lm_hb  # noqa: E402
from lmms_eval.tasks.hallusion_bench import utils as lm_hb_utils  # noqa: E402
from lmms_eval.tasks.mathvision import utils as lm_mathvision  # noqa: E402
from lmms_eval.tasks.mmstar import utils as lm_mmstar  # noqa: E402
from lmms_eval.tasks.pope import utils as lm_pope  # noqa: E402
from lmms_eval.tasks.realworldqa import utils as lm_realworldqa  # noqa: E402
from lmms_eval.tasks.wemath import wemath_utils as lm_wemath_agg  # noqa: E402
from lmms_eval.tasks.wemath.reasoning import utils as lm_wemath  # noqa: E402

import capcurriculum.evaluation.benchmarks as _benchmarks  # noqa: E402
from capcurriculum.evaluation.benchmarks import get_adapter  # noqa: E402
from capcurriculum.evaluation.vlmevalkit import can_infer, grade_all  # noqa: E402

FIXTURES = Path(_benchmarks.__file__).parent / "rows"  # as conftest.py


def _sibling(name: str):
    """A test module of this folder, loaded for its tables (no test of it is collected from here)."""
    spec = importlib.util.spec_from_file_location(f"_lmms_ref_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


conformance, headline, hallusion = _sibling("test_conformance"), _sibling("test_headline"), _sibling("test_hallusionbench")
bench_items = conformance.bench_items  # the fixture: {benchmark: {id: item}}, with MathVision's extra golds

# __main__.py 319-323: the default --reasoning_tags; evaluator.py 303-310 strips them before process_results.
REASONING_TAGS = [["<think>", "</think>"], ["<analysis>", "</analysis>"]]


def lmms_text(response: str) -> str:
    return strip_reasoning_tags(response, REASONING_TAGS)


# --- lmms-eval's per-row verdict, one function per task ------------------------------------------------------

def lmms_mmstar(doc, response) -> bool:  # mmstar/utils.py 74-80, 109-123 -> _task_utils/mcq_extract.py 65-157
    return lm_mmstar.mmstar_process_results(doc, [lmms_text(response)])["average"]["score"] == 1.0


def lmms_realworldqa(doc, response) -> bool:  # realworldqa/utils.py 34-51
    return lm_realworldqa.realworldqa_process_results(doc, [lmms_text(response)])["exact_match"] == 1.0


def lmms_pope(doc, response) -> bool:  # pope/utils.py 17-28
    return lm_pope.pope_process_results(doc, [lmms_text(response)])["pope_accuracy"]["score"] == 1.0


def lmms_mathvision(doc, response) -> bool:  # mathvision/utils.py 87-144 (the standard, rule-based metric)
    return bool(lm_mathvision.mathvision_process_results(doc, [lmms_text(response)])
                ["mathvision_standard_eval"]["scores"][0])


def lmms_wemath(doc, response) -> bool:  # wemath/reasoning/utils.py 37-61 -> _task_utils/reasoning_utils.py 412-443
    return lm_wemath.wemath_reasoning_process_results(doc, [lmms_text(response)])["acc_score"] == 1


def lmms_hallusion(doc, response) -> bool:
    # The task's metrics (hallusion_bench_image.yaml) ask a GPT-4 judge per row (evaluate_hb.py 48-67,
    # hallusion_bench/utils.py 29-88): no rule to run offline. evaluate_hb.py 93-126 keeps lmms-eval's rule-based
    # alternative (the InternVL scoring, commented out in the yaml): "yes" anywhere in the lower-cased reply.
    row = {k: v for k, v in doc.items() if k != "image"}
    return lm_hb.hb_aggregation_result_intern([{**row, "model_prediction": lmms_text(response)}], "aAcc") == 1.0


LMMS = {"mmstar": lmms_mmstar, "realworldqa": lmms_realworldqa, "pope": lmms_pope, "mathvision": lmms_mathvision,
        "wemath": lmms_wemath, "hallusionbench": lmms_hallusion}


@pytest.fixture
def docs(load_rows):
    """{benchmark: {id: fixture row}}: the raw rows, lmms-eval's `doc`, under the adapter's row ids."""
    out = {}
    for name in LMMS:
        rows = load_rows(name)
        if name == "mathvision":  # the golds conformance's bench_items adds
            rows += [{**rows[1], "id": "sqrt", "answer": "\\sqrt{2}"}, {**rows[1], "id": "one", "answer": "1"}]
        adapter = get_adapter(name)
        out[name] = {adapter.row_id(row, i): row for i, row in enumerate(rows)}
    return out


# --- the rows: every response of the conformance tables that has an lmms-eval task ---------------------------

def _wemath_table_rows():
    """test_conformance.WEMATH_TABLE as (row id, response) over the fixture's rows (None: the skipped row)."""
    out = []
    for line in (FIXTURES / "wemath.jsonl").read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        steps, part = row["key"].split("steps_")
        subs, composite = conformance.WEMATH_TABLE[(int(steps), row["ID"])]
        out.append((f"{row['ID']}:{row['key']}", composite if part == "multi" else subs[int(part) - 1]))
    return out


POPE_YES, POPE_NO = "1", "2"  # POPE fixture question_ids with golds yes and no
HB_YES, HB_NO = "VD_chart_0_0_0", "VD_chart_0_0_1"  # HallusionBench fixture rows with golds 1 (yes) and 0 (no)
ROWS = list(dict.fromkeys(
    [(bench, rid, response) for bench, rid, response, _, _ in conformance.MCQ if bench in LMMS]
    + [("mmstar", rid, r) for bench, table, _ in conformance.HEADLINES if bench == "mmstar" for rid, r in table.items()]
    + [("pope", rid, response) for response, _ in conformance.YES_NO for rid in (POPE_YES, POPE_NO)]
    + [("pope", rid, response) for rid, response in headline.POPE.items()]
    + [("hallusionbench", rid, response) for response, _ in conformance.YES_NO for rid in (HB_YES, HB_NO)]
    + [("hallusionbench", rid, response) for rid, response in hallusion.RESPONSES.items()]
    + [("mathvision", rid, response) for rid, response, _ in conformance.MATHVISION]
    + [("mathvision", rid, r) for bench, table, _ in conformance.HEADLINES if bench == "mathvision"
       for rid, r in table.items()]
    + [("mathvision", "one", "2^3")]  # conformance's xfail row: VLMEvalKit's eval() reads ^ as XOR
    + [("wemath", "1:2steps_1", response) for response, _ in conformance.WEMATH]
    + [("wemath", rid, response) for rid, response in _wemath_table_rows() if response is not None]
))
# test_conformance.CHOICE: the four ANIMALS options, here with gold B, through MMStar's scoring (letters A-D).
CHOICE_GOLD = "B"
CHOICE_DOC = {"index": "choice", "answer": CHOICE_GOLD, "category": "c", "l2_category": "c"}

# Why lmms-eval's verdict differs from VLMEvalKit's (the project's) on a row: lmms-eval's file and lines.
REASONS = {
    "option_text": "lmms-eval reads letters only (_task_utils/mcq_extract.py 65-157, called by mmstar/utils.py "
                   "74-80 and realworldqa/utils.py 41-43); VLMEvalKit's can_infer_text also reads a short reply "
                   "naming one option's text",
    "ranked_letter": "lmms-eval ranks the letters it finds and keeps the best (mcq_extract.py 51-62, 131-157: a "
                     "letter opening or closing the reply outranks 'the answer is X'); VLMEvalKit's can_infer_option "
                     "refuses a reply with several letters and takes 'answer is X' first",
    "any_letter": "with no other candidate lmms-eval takes any capital A-D in the reply (mcq_extract.py 142-146); "
                  "'$' is no punctuation to VLMEvalKit, so '$B$' holds no letter there",
    "pope_whole_reply": "lmms-eval's POPE compares the whole lower-cased, stripped reply with yes/no "
                        "(pope/utils.py 18-21): a period, a sentence, \\boxed{} or 'Answer:' make it wrong; "
                        "VLMEvalKit's YOrN_Extraction reads the words",
    "hb_yes_anywhere": "lmms-eval's rule-based HallusionBench scoring (evaluate_hb.py 93-101, the yaml's metrics "
                       "use a GPT-4 judge instead) reads yes wherever 'yes' occurs in the reply, and no otherwise; "
                       "VLMEvalKit's YOrN_Extraction needs the word yes without no",
    "hb_no_otherwise": "lmms-eval's rule-based HallusionBench scoring (evaluate_hb.py 93-101) reads every reply "
                       "without 'yes' as no (a refusal, a hedge, an empty reply); VLMEvalKit's reads Unknown there",
    "mathvision_answer_is": "lmms-eval's MathVision (the original MathVision scorer) reads the number after 'is ' "
                            "(mathvision/utils.py 101-102); VLMEvalKit's rule compares the whole prediction and "
                            "leaves the rest to the judge",
    "mathvision_units": "lmms-eval's find_math_answer drops the spaces (mathvision/eval_utils.py 412) and is_equal "
                        "compares latex2sympy's value of '7cm', which is 7 (eval_utils.py 117-121); VLMEvalKit's "
                        "rule compares the whole prediction and leaves '7 cm' to the judge",
    "wemath_answer_tag": "lmms-eval's WeMath (its reasoning variant, the only one with per-row scoring) reads "
                         "<answer>...</answer>, else \\boxed{}, else a number ending a line "
                         "(_task_utils/reasoning_utils.py 119-152, 412-443); a bare letter or 'Answer: B' is no "
                         "answer there. VLMEvalKit's WeMath reads the letter after the last 'Answer'",
}

# (benchmark, row id, response) -> the reason of each row where the two verdicts differ.
KNOWN: dict[tuple[str, str, str], str] = {
    ("realworldqa", "#0", "No."): "option_text",
    ("realworldqa", "#3", "The truck is in the left lane."): "option_text",
    ("mmstar", "0", "The style is watercolor"): "option_text",
    ("mmstar", "0", "Watercolor"): "option_text",
    ("mmstar", "1", "2 dogs"): "option_text",
    ("mmstar", "1", "12"): "option_text",
    ("mmstar", "3", "45°"): "option_text",
    ("mmstar", "0", "Not A, not B: it is C."): "ranked_letter",  # the closing C
    **{("pope", rid, r): "pope_whole_reply" for rid, r in [
        (POPE_NO, "No."), (POPE_YES, "Yes, there is."), (POPE_NO, "There is no cat."), (POPE_YES, "YES!"),
        (POPE_YES, "Answer: Yes"), (POPE_NO, "\\boxed{No}"), (POPE_YES, "$\\boxed{\\text{Yes}}$"),
        (POPE_YES, "Yes - a dog sits on the bench."), (POPE_YES, "Probably yes."),
        (POPE_YES, "Yes, about 1,000 people."), ("1", "\\boxed{Yes}"), ("4", "\\boxed{no}"), ("5", "Answer: yes")]},
    **{("hallusionbench", HB_YES, r): "hb_yes_anywhere" for r in [
        "Yes and no.", "Yes, although there is no clear view.", "**Yes**", "'Yes'", "Yes: the dog is on the left.",
        "Answer:Yes", "No doubt, yes.", "Yes/No"]},
    **{("hallusionbench", HB_NO, r): "hb_no_otherwise" for r in [
        "I cannot tell", "Nope", "*No*", "I don't think so.", ""]},
    ("mathvision", "2", "The answer is 12"): "mathvision_answer_is",
    ("mathvision", "4", "7 cm"): "mathvision_units",
    **{("wemath", rid, r): "wemath_answer_tag" for rid, r in [
        ("1:2steps_1", "<Thought process>: The base is 6 cm and the height 1 cm. <Answer>: <B>"),
        ("1:2steps_1", "Answer: B"), ("1:2steps_1", "B"), ("1:2steps_1", "B. 3cm"),
        ("1:2steps_1", "<think>Answer A looks wrong; B fits.</think>\nAnswer: B"),
        # WEMATH_TABLE: every row the project scores right
        ("1:2steps_2", "<Answer>: <B>"), ("1:2steps_multi", "Answer: B"), ("2:2steps_1", "B"), ("2:2steps_multi", "B"),
        ("3:2steps_multi", "B"), ("4:2steps_1", "B"), ("4:2steps_2", "B"), ("5:2steps_2", "B"),
        ("6:2steps_1", "B. 3cm"), ("6:2steps_multi", "B"), ("1:3steps_1", "C"), ("1:3steps_2", "C"),
        ("1:3steps_3", "C"), ("1:3steps_multi", "C"), ("2:3steps_1", "C"), ("2:3steps_3", "C"),
        ("2:3steps_multi", "C")]},
}
# test_conformance.CHOICE responses (gold B) where the two differ.
KNOWN_CHOICE: dict[str, str] = {
    "$B$": "any_letter",
    "dog": "option_text",
    "It is a dog.": "option_text",
    "B or C": "ranked_letter",  # the opening B
    "I think the answer is C, not B.": "ranked_letter",  # the closing B outranks 'answer is C'
}


@pytest.fixture
def items(bench_items, load_rows):
    """conformance's bench_items and HallusionBench's fixture items."""
    conv = get_adapter("hallusionbench").rows_to_items(load_rows("hallusionbench"), source="f")
    return {**bench_items, "hallusionbench": {it.id: it for it in conv.items}}


def project_correct(items, bench, rid, response) -> bool:
    return bool(conformance.run(items, bench, rid, response)["correct"])


def test_every_known_difference_is_a_compared_row_with_a_reason():
    assert set(KNOWN) <= set(ROWS)
    assert set(KNOWN_CHOICE) <= {r for r, _ in conformance.CHOICE}
    assert {*KNOWN.values(), *KNOWN_CHOICE.values()} <= set(REASONS)


@pytest.mark.parametrize(("bench", "rid", "response"), ROWS)
def test_per_row_verdict_against_lmms_eval(items, docs, bench, rid, response):
    ours, theirs = project_correct(items, bench, rid, response), LMMS[bench](docs[bench][rid], response)
    if (bench, rid, response) in KNOWN:
        assert ours != theirs, f"listed as a known difference ({KNOWN[bench, rid, response]}), but both say {ours}"
    else:
        assert ours == theirs, f"project {ours}, lmms-eval {theirs} (lmms-eval read {lmms_text(response)!r})"


@pytest.mark.parametrize(("response", "letter"), conformance.CHOICE)
def test_multiple_choice_rule_against_lmms_eval_extractor(response, letter):
    assert can_infer(response, conformance.ANIMALS) == letter  # the project's reading, as conformance has it
    ours, theirs = letter == CHOICE_GOLD, lmms_mmstar(CHOICE_DOC, response)
    if response in KNOWN_CHOICE:
        assert ours != theirs, f"listed as a known difference ({KNOWN_CHOICE[response]}), but both say {ours}"
    else:
        assert ours == theirs, f"project {ours}, lmms-eval {theirs}"


# --- headlines: lmms-eval's aggregation fed the project's per-row verdicts -----------------------------------

def graded(load_rows, bench, responses):
    """The project's records and official numbers on a hand-scored table (skipped rows: wrong, in every count)."""
    adapter = get_adapter(bench)
    conv = adapter.rows_to_items(load_rows(bench), source="f")
    records = grade_all(adapter, conv.items, [responses[it.id] for it in conv.items], judge=None, split=True)
    records += [adapter.skipped_record(s) for s in conv.skipped]
    return records, adapter.aggregate(records)


def test_pope_aggregation(load_rows):
    records, official = graded(load_rows, "pope", headline.POPE)
    records = [r for r in records if not r.get("skipped")]  # gold "maybe" and a missing image: no lmms-eval row
    official = get_adapter("pope").aggregate(records)
    results = [{"question_id": r["id"], "score": float(r["correct"]), "prediction": r["extracted"] or "unknown",
                "ground_truth": r["gold"]} for r in records]  # pope/utils.py 22-28's per-row record
    assert lm_pope.pope_aggregate_accuracy(results) == pytest.approx(official["accuracy"])
    assert lm_pope.pope_aggregate_precision(results) == pytest.approx(official["precision"])
    assert lm_pope.pope_aggregate_recall(results) == pytest.approx(official["recall"])
    assert lm_pope.pope_aggregate_f1_score(results) == pytest.approx(official["f1"])  # the headline
    # lmms-eval's yes ratio is the share of gold yes (pope/utils.py 74-84), VLMEvalKit's the share of replies read
    # as yes (listed in docs/evaluation.md); on this table both are 4 of 8.
    golds = sum(r["gold"] == "yes" for r in records) / len(records)
    assert lm_pope.pope_aggregate_yes_ratio(results) == pytest.approx(golds) == official["yes_ratio"]


def test_mmstar_aggregation(load_rows):
    table = next(t for b, t, _ in conformance.HEADLINES if b == "mmstar")
    records, official = graded(load_rows, "mmstar", table)
    docs = {str(row["index"]): row for row in load_rows("mmstar")}
    results = [{"question_id": r["id"], "l2_category": docs[r["id"]]["l2_category"], "score": float(r["correct"])}
               for r in records]
    # mmstar/utils.py 126-146 averages the l2 categories' means (VLMEvalKit: the mean over rows). On this table
    # (l2 means 1, 1/2, 0) the two agree; the difference is listed in docs/evaluation.md.
    assert lm_mmstar.mmstar_aggregate_results(results) == pytest.approx(official["accuracy"])
    assert get_adapter("mmstar").headline(official)["value"] == pytest.approx(official["accuracy"])


def test_mathvision_aggregation(load_rows):
    table = next(t for b, t, _ in conformance.HEADLINES if b == "mathvision")
    records, official = graded(load_rows, "mathvision", table)
    results = [{"scores": [bool(r["correct"])]} for r in records]  # mathvision/utils.py 135-144's record
    # mathvision/utils.py 147-151: a percentage rounded to two places.
    assert lm_mathvision.mathvision_aggregate_results_eval(results) == round(100 * official["accuracy"], 2)


def test_wemath_aggregation(load_rows):
    records, official = graded(load_rows, "wemath", dict(_wemath_table_rows()))
    frame = pd.DataFrame([{"ID": r["meta"]["problem_id"], "key": r["meta"]["key"], "joker": bool(r["correct"])}
                          for r in records])
    # wemath/reasoning/utils.py 66-72: the 2-step and 3-step parts apart, then wemath_utils.py's functions.
    merged = [lm_wemath_agg.process_steps_data(frame[frame["key"].str.contains(f"{k}steps")], k) for k in (2, 3)]
    counts, rates = lm_wemath_agg.compute_final_scores(lm_wemath_agg.calculate_metrics(*merged),
                                                       total_count=official["n_problems"])
    names = {"IK": "InsufficientKnowledge", "IG": "InadequateGeneralization", "CM_strict": "CompleteMastery_strict",
             "CM_loose": "CompleteMastery_loose", "RM_strict": "RoteMemorization_strict",
             "RM_loose": "RoteMemorization_loose"}
    assert {k: counts[v] for k, v in names.items()} == official["four_dim_counts"]
    for ours, theirs in [("RM_strict", "RoteMemorization_strict_rate"), ("RM_loose", "RoteMemorization_loose_rate"),
                         ("IK", "InsufficientKnowledge_rate"), ("IG", "InadequateGeneralization_rate")]:
        assert rates[theirs] == f"{official['rates'][ours]:.2%}"
    # Known difference: wemath_utils.py 60-61 divides by 525 (the testmini's problems) whatever was scored, as
    # VLMEvalKit does; the project divides by the problems of the run (the same on the full testmini).
    row = lm_wemath_agg.update_main_results_df(counts, rates)
    c = official["four_dim_counts"]
    for name, rm in [("Score (Strict)", c["RM_strict"]), ("Score (Loose)", c["RM_loose"])]:
        assert row[name] == f"{(525 - 0.5 * c['IG'] - rm - c['IK']) / 525:.2%}"
    assert official["score_strict"] == pytest.approx((9 - 0.5 * c["IG"] - c["RM_strict"] - c["IK"]) / 9)


def test_hallusionbench_aggregation(load_rows):
    records, official = graded(load_rows, "hallusionbench", hallusion.RESPONSES)
    docs = {get_adapter("hallusionbench").row_id(row, i): row for i, row in enumerate(load_rows("hallusionbench"))}
    # The judge's verdict as lmms-eval stores it (evaluate_hb.py 15, utils.py 161-168): "1" right, "0" wrong.
    data = [{**{k: v for k, v in docs[r["id"]].items() if k != "image"},
             lm_hb.correctness_entry: "1" if r["correct"] else "0"} for r in records]
    data = lm_hb_utils.assign_correctness(data, correctness_entry=lm_hb.correctness_entry)
    a_acc = lm_hb_utils.get_eval_all(data, model_correctness_entry=lm_hb.correctness_entry)
    q_acc = lm_hb_utils.get_eval_pair_all(data, model_correctness_entry=lm_hb.correctness_entry)
    f_acc = lm_hb_utils.get_eval_fig(data)
    assert a_acc["correct"] / a_acc["total"] == pytest.approx(official["aAcc"])  # the headline
    assert q_acc["correct"] / q_acc["total"] == pytest.approx(official["qAcc"])
    # Known difference: lmms-eval's fAcc leaves out every VS row with figure_id 0 (utils.py 175-176: "no
    # figure"); VLMEvalKit's groups every row by its figure. Here VS map 1 figure 0 (right) and VS map 2 figure 0
    # (the skipped row): 2 of 3 figures against the project's 3 of 5.
    assert (f_acc["correct"], f_acc["total"]) == (2, 3) and official["fAcc"] == pytest.approx(3 / 5)
