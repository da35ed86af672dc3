"""evaluation.protocol vlmevalkit: VLMEvalKit's rule, LLM extraction only where the rule fails, each
benchmark's own comparison; against the project's lenient rules on hand-made responses, and against a
chat-completions server on 127.0.0.1 (tests/evaluation/conftest.py ChatServer) counting what it is asked.

Expected values are read from open-compass/VLMEvalKit (snapshot e8e78f0): vlmeval/utils/matching_util.py
(can_infer_option lines 18-61, can_infer_text 107-121), vlmeval/dataset/utils/mathvista.py (post_check
77-104), vlmeval/dataset/utils/mathv.py (is_equal 27-51, post_check 116-140), vlmeval/inference.py
(SPLIT_THINK 247-264), vlmeval/dataset/utils/yorn.py (YOrN_Extraction 254-261)."""

from __future__ import annotations

import hashlib
import socket

import pytest

from capcurriculum.evaluation.benchmarks import get_adapter
from capcurriculum.evaluation.evaluator import evaluate_benchmark, write_results
from capcurriculum.evaluation.judge import Judge, load_judge_prompt
from capcurriculum.evaluation.report import tables
from capcurriculum.evaluation.vlmevalkit import (
    JudgeUnavailable,
    can_infer,
    exact_value,
    extraction_summary,
    grade_all,
    math_equal,
    prompt_hashes,
    protocol_record,
    split_think,
)
from capcurriculum.generation.base import Result
from capcurriculum.io import read_json


@pytest.fixture
def items(load_rows):
    """{benchmark: {id: item}} from the fixture rows, plus two MathVista / MathVision variants."""
    def conv(name, rows):
        return {it.id: it for it in get_adapter(name).rows_to_items(rows, source="fixture").items}

    vista = load_rows("mathvista")
    vista.append({**vista[1], "pid": "1000", "answer": "1000"})  # an integer gold with four digits
    vision = load_rows("mathvision")
    vision.append({**vision[1], "id": "frac", "answer": "\\frac{3}{4}"})  # a LaTeX gold
    return {"mathvista": conv("mathvista", vista), "mathvision": conv("mathvision", vision),
            "mmstar": conv("mmstar", load_rows("mmstar")), "pope": conv("pope", load_rows("pope"))}


PROSE = "The picture looks like it was painted with soft watercolors on thick textured paper."
# (benchmark, id, response, lenient extracted, vlmevalkit with split_think, vlmevalkit without it);
# a vlmevalkit entry is (extracted, how) with no judge: "fell_through" items are the judge's to read.
SWITCH = [
    # a base model's prose: longer than twice the options' text, no letter (matching_util.py:109)
    ("mmstar", "0", PROSE, None, (None, "fell_through"), (None, "fell_through")),
    # option text instead of a letter, boxed in a sentence: lenient reads the box; VLMEvalKit the whole reply
    ("mathvista", "1", "Counting the blue parts gives 8 of 11. \\boxed{8/11}", "B",
     (None, "fell_through"), (None, "fell_through")),
    ("mathvista", "1", "8/11", "B", ("B", "rule"), ("B", "rule")),  # a short reply naming one option's text
    # several letters in the reasoning: only the think-split leaves the lone final letter (inference.py:255)
    ("mmstar", "1", "<think>B is too many, C and D even more.</think>\nA", "A", ("A", "rule"),
     (None, "fell_through")),
    # "Answer:" lines, markdown bold, units, separators, "14.0": VLMEvalKit int()s the whole reply
    ("mathvista", "2", "We count two rows of seven.\nAnswer: 14", "14", (None, "fell_through"),
     (None, "fell_through")),
    ("mathvista", "2", "The answer is **14**.", "14**", (None, "fell_through"), (None, "fell_through")),
    ("mmstar", "1", "**A**", "A", ("A", "rule"), ("A", "rule")),
    ("mathvista", "2", "14 cm", "14 cm", (None, "fell_through"), (None, "fell_through")),
    ("mathvista", "2", "14.0", "14.0", (None, "fell_through"), (None, "fell_through")),
    ("mathvista", "2", "14", "14", ("14", "rule"), ("14", "rule")),
    ("mathvista", "1000", "1,000", "1,000", (None, "fell_through"), (None, "fell_through")),
    # no rounding to the row's precision (post_check compares float() with ==), lists never equal
    ("mathvista", "3", "1.449", "1.449", (None, "fell_through"), (None, "fell_through")),
    ("mathvista", "4", "[2007, 2008]", "[2007, 2008]", (None, "fell_through"), (None, "fell_through")),
    # think-only: nothing after </think>; without the split VLMEvalKit reads the letter inside it
    ("mmstar", "1", "<think>The answer is A.</think>", None, (None, "fell_through"), ("A", "rule")),
    # MathVision's is_equal: the same value through latex2sympy (mathv.py:42-48)
    ("mathvision", "frac", "0.75", "0.75", ("0.75", "rule"), ("0.75", "rule")),
    # a hedged yes/no names both words: neither rule reads it (yorn.py:254-261)
    ("pope", "1", "Yes, although there is no clear view.", None, (None, "fell_through"), (None, "fell_through")),
]
# whether each response is right: lenient, and vlmevalkit with split_think (no judge)
RIGHT = [(False, False), (True, False), (True, True), (True, True), (True, False), (True, False), (True, True),
         (True, False), (True, False), (True, True), (True, False), (True, False), (True, False), (False, False),
         (False, True), (False, False)]


@pytest.mark.parametrize(("case", "right"), list(zip(SWITCH, RIGHT, strict=True)),
                         ids=[f"{c[0]}-{c[1]}-{i}" for i, c in enumerate(SWITCH)])
def test_the_protocol_switch_changes_extraction_as_stated(items, case, right):
    bench, rid, response, lenient, with_split, without_split = case
    adapter, item = get_adapter(bench), items[bench][rid]
    rec = adapter.grade(item, response)
    assert (rec["extracted"], rec["correct"]) == (lenient, right[0])
    for split, (extracted, how) in ((True, with_split), (False, without_split)):
        (got,) = grade_all(adapter, [item], [response], judge=None, split=split)
        assert (got["extracted"], got["extraction"]) == (extracted, how), f"split_think={split}"
        assert got["no_answer"] is (extracted is None)
        if split:
            assert got["correct"] is right[1]


def test_rules_read_as_vlmevalkit_does():
    abcd = {"A": "2", "B": "3", "C": "4", "D": "5"}
    assert can_infer("The answer is C", abcd) == "C"  # one letter among the last five words (matching_util.py:52)
    assert can_infer("C is right but the explanation below goes on for quite a few words", abcd) is None
    assert can_infer("Cannot determine the answer from this image", abcd) == "Z"  # a refusal (matching_util.py:24-30)
    assert can_infer("Z", abcd) == "Z"
    assert can_infer("the correct answer is **B**, since ...; A and C are off", abcd) == "B"  # verbose rule, A-D
    assert can_infer("the answer is E", {**abcd, "E": "6"}) == "E"  # E stands alone: the letter rule
    assert can_infer("A or B", abcd) is None
    assert exact_value("14", "integer") == 14 and exact_value(" 14\n", "integer") == 14
    assert exact_value("14.0", "integer") is None and exact_value("1,000", "integer") is None
    assert exact_value("1.45", "float") == 1.45 and exact_value("$1.45", "float") is None
    assert math_equal("ABC", "abc") and math_equal("0.5", "1/2") and math_equal("2**3", "8")
    assert math_equal("\\frac{1}{2}", "0.5") and not math_equal("0.51", "1/2") and not math_equal(None, "1")
    # is_equal eval()s both sides; here nothing but numbers and operators is evaluated (a deliberate difference)
    assert not math_equal("len('ab')", "2") and not math_equal("__import__('os')", "0")
    assert split_think("<think>A</think>  B ", True) == "B" and split_think("<think>A</think> B", False) == (
        "<think>A</think> B")
    assert split_think("no tags", True) == "no tags"


def test_prompt_hashes_are_those_of_the_files_sent():
    assert prompt_hashes() == {n: hashlib.sha256(load_judge_prompt(n).encode()).hexdigest()
                               for n in ("extract_choice", "extract_value", "extract_yesno")}
    assert protocol_record("lenient", split=True) == {"name": "lenient"}


# --- the judge: asked only where the rule failed ---------------------------------------------------
REPLIES = {PROSE: "C", "gives 8 of 11": "B", "two rows of seven": "14", "1,000": "1,000", "14.0": "14.0",
           "no clear view": "Yes", "[2007, 2008]": "[2007, 2008]"}
ASKED = [("mmstar", "0", PROSE), ("mathvista", "1", "Counting the blue parts gives 8 of 11. \\boxed{8/11}"),
         ("mathvista", "2", "We count two rows of seven.\nAnswer: 14"), ("mathvista", "1000", "1,000"),
         ("mathvista", "2", "14.0"), ("pope", "1", "Yes, although there is no clear view."),
         ("mathvista", "4", "[2007, 2008]")]
NOT_ASKED = [("mmstar", "1", "**A**"), ("mathvista", "2", "14"), ("mathvision", "frac", "0.75"),
             ("mathverse", None, None)]


def reply_for(prompt: str) -> str:
    tail = prompt.rsplit("Answer:", 1)[-1] if "Your output:" in prompt else prompt.rsplit("Model response:", 1)[-1]
    hits = [r for key, r in REPLIES.items() if key in tail]
    assert len(hits) == 1, prompt
    return hits[0]


@pytest.fixture
def judge_config(server, tmp_path):
    server.calls.clear()
    server.reply = reply_for
    server.served_model = None
    return {"enabled": True, "base_url": server.base_url, "model": "claude-haiku-4-5", "api_key_env": None,
            "timeout_s": 5, "max_retries": 0, "cache": str(tmp_path / "judge.sqlite")}


def grade_cases(items, cases, judge):
    out = []
    for bench, rid, response in cases:
        if rid is None:
            continue
        (rec,) = grade_all(get_adapter(bench), [items[bench][rid]], [response], judge=judge, split=True)
        out.append(rec)
    return out


def test_the_judge_is_asked_only_where_the_rule_failed_and_read_as_vlmevalkit(items, judge_config, server):
    with Judge.from_config(judge_config) as judge:
        ruled = grade_cases(items, NOT_ASKED, judge)
        assert server.calls == [] and {r["extraction"] for r in ruled} == {"rule"}
        asked = grade_cases(items, ASKED, judge)
        assert len(server.calls) == len(ASKED)  # one request per item the rule could not read
        assert [(r["extracted"], r["extraction"], r["correct"]) for r in asked] == [
            ("C", "llm", True),  # prose -> the option it means
            ("B", "llm", True),
            ("14", "llm", True),  # the "Answer:" line, extracted
            ("1,000", "llm", False),  # MathVista compares int(): the separator stays wrong
            ("14.0", "llm", False),  # and "14.0" is no integer
            ("yes", "llm", True),
            ("[2007, 2008]", "llm", False)]  # a list answer never equals (post_check, mathvista.py:95-97)
        assert judge.stats["requests"] == len(ASKED) and judge.stats["calls"] == len(ASKED)
        grade_cases(items, ASKED, judge)  # a rerun reads the cache
        assert len(server.calls) == len(ASKED) and judge.stats["cache_hits"] == len(ASKED)
    prompts = [c["body"]["messages"][-1]["content"][-1]["text"] for c in server.calls]
    assert "Options: A. Sketch B. Oil painting C. Watercolor D. Pencil" in prompts[0] and PROSE in prompts[0]
    assert items["mathvista"]["2"].question in prompts[2]  # the value prompt carries the question (hint included)
    assert prompts[0].startswith(load_judge_prompt("extract_choice").split("{question}")[0])
    assert prompts[2].startswith(load_judge_prompt("extract_value").split("{question}")[0])
    assert prompts[5].startswith(load_judge_prompt("extract_yesno").split("{question}")[0])


def test_a_reply_naming_no_option_is_unextracted_not_a_guess(items, judge_config, server):
    server.reply = "I am not sure which one."
    with Judge.from_config(judge_config) as judge:
        (rec,) = grade_cases(items, ASKED[:1], judge)
        assert (rec["extracted"], rec["extraction"], rec["correct"]) == (None, "llm_unparsed", False)
        assert rec["llm_reply"] == "I am not sure which one." and judge.stats["unparseable"] == 1


class ScriptedBackend:
    """Returns the scripted response for each request id (a stand-in for a generation backend)."""

    def __init__(self, responses):
        self.responses = responses

    def generate(self, requests, sampling):
        return [Result(id=r.id, texts=[self.responses[r.id]], n_tokens=[3]) for r in requests]


def run_mmstar(load_rows, judge, out_dir, responses):
    rows = load_rows("mmstar")
    records, summary = evaluate_benchmark(ScriptedBackend(responses), get_adapter("mmstar"), rows, source="f",
                                          max_new_tokens=8, judge=judge, protocol="vlmevalkit", split_think=True)
    details = protocol_record("vlmevalkit", split=True, judge=judge)
    metrics = write_results(out_dir, {"mmstar": (records, summary)}, model="scripted", protocol="vlmevalkit",
                            protocol_details=details)
    return records, read_json(out_dir / "summary.json"), metrics


MMSTAR = {"0": PROSE, "1": "**A**", "2": "<think>Maybe C.</think> I count seven cats, D.", "3": "Hard to say."}


def test_an_unreachable_judge_stops_the_evaluation_naming_the_endpoint_and_scores_nothing_wrong(
        load_rows, judge_config, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    url = f"http://127.0.0.1:{port}/v1"
    with Judge.from_config({**judge_config, "base_url": url, "max_retries": 0}) as judge:
        with pytest.raises(JudgeUnavailable) as err:
            run_mmstar(load_rows, judge, tmp_path / "out", MMSTAR)
        assert judge.stats["requests/extraction"] == 2  # only the two items the rule could not read were asked
    message = str(err.value)
    assert url in message and "2 of 2 mmstar extraction requests" in message and "connection error" in message
    assert "evaluation.judge.enabled=false" in message
    assert not (tmp_path / "out/summary.json").exists()  # nothing was written as a score


def test_the_protocol_judge_version_and_prompt_hashes_are_recorded_and_reported(load_rows, judge_config, server,
                                                                                tmp_path):
    server.served_model = "claude-haiku-4-5-20251001"
    server.reply = lambda prompt: "C" if "watercolors" in prompt else "D"
    with Judge.from_config(judge_config) as judge:
        records, summary, metrics = run_mmstar(load_rows, judge, tmp_path / "out", MMSTAR)
    assert len(server.calls) == 2 and metrics["protocol"] == "vlmevalkit"
    details = summary["mmstar"]["protocol_details"]
    assert details == {"name": "vlmevalkit", "split_think": True, "prompt_sha256": prompt_hashes(),
                       "judge": {"model": "claude-haiku-4-5", "served": {"claude-haiku-4-5-20251001": 2},
                                 "base_url": server.base_url,
                                 "stats": {"requests": 2, "calls": 2, "cache_hits": 0, "unavailable": 0,
                                           "unparseable": 0, "requests/extraction": 2}}}
    assert [r["correct"] for r in records] == [True, True, True, False]  # "Hard to say." -> D, gold B
    report = tables({"staged": {"summary": summary, "records": {"mmstar": records}}}, "tiny")
    assert ("staged (vlmevalkit): split_think true; judge claude-haiku-4-5 (endpoint reported: "
            "claude-haiku-4-5-20251001); extraction prompts sha256: extract_choice "
            + prompt_hashes()["extract_choice"][:16]) in report
    assert "| mmstar | 2 | 2 | 0 | 0 · 0 |" in report
    assert extraction_summary(records)["counts"] == {"llm": 2, "rule": 2}
