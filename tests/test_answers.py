"""Answer extraction and the gold guard: which box is the answer, that no response can make finding it slow,
and that a gold no answer could match is never rewarded, kept or scored right."""

import threading
import time

import pytest

from capcurriculum.answers import MAX_ANSWER_CHARS, boxed_answers, extract_boxed, gold_is_gradeable
from capcurriculum.evaluation.benchmarks import BenchItem, get_adapter
from capcurriculum.sampling.rewards import RewardConfig, reward

BOXES = [
    # text, top-level box contents in order
    ("\\boxed{6}", ["6"]),
    ("no box here", []),
    ("\\boxed{5} then \\boxed{ 6 }", ["5", "6"]),
    ("\\boxed{\\frac{1}{2}}", ["\\frac{1}{2}"]),            # braces inside a box are its own
    ("\\boxed{\\boxed{6}}", [None]),                         # a box holding a box is no answer
    ("\\boxed{6} \\boxed{x \\boxed{7}}", ["6", None]),
    ("\\boxed{x \\boxed{6}", ["6"]),                          # an unclosed box holds nothing: the closed one stands
    ("\\boxed{5} and \\boxed{6", ["5"]),                      # a trailing unclosed box is not an answer
    ("} stray { \\boxed{6} {", ["6"]),                        # stray braces around a box do not matter
    ("\\boxed{" + "9" * (MAX_ANSWER_CHARS + 1) + "}", [None]),  # longer than any grader reads
    ("\\boxed{" + "9" * MAX_ANSWER_CHARS + "}", ["9" * MAX_ANSWER_CHARS]),
]


@pytest.mark.parametrize("text, expected", BOXES)
def test_top_level_boxes(text, expected):
    assert boxed_answers(text) == expected
    assert extract_boxed(text) == (expected[-1] if expected else None)


def test_reward_cannot_ask_for_longer_answers_than_extraction_reads():
    with pytest.raises(ValueError, match="max_answer_chars"):
        RewardConfig(max_answer_chars=MAX_ANSWER_CHARS + 1)


MB = 1 << 20
BOUND_S = 10.0  # per response of about 1 MB, through the reward and two evaluator gradings; 0.2-2 s on a loaded 2-core machine, where the old scan took minutes at 100 KB
ADVERSARIAL = [
    # name, response (about 1 MB each but the last), reward accuracy, reward format, evaluator right
    ("repeated unclosed boxes", "<think>x</think> " + "\\boxed{" * (MB // 7), 0, 0, False),
    ("unclosed boxes, then a closed one", "<think>x</think> " + "\\boxed{" * (MB // 7) + "\\boxed{6}", 1, 1, True),
    ("3,000 nested boxes", "<think>x</think> " + "\\boxed{" * 3000 + "6" + "}" * 3000, 0, 1, False),
    ("nested boxes, 1 MB deep", "<think>x</think> " + "\\boxed{" * (MB // 8) + "6" + "}" * (MB // 8), 0, 1, False),
    ("1 MB prose", "<think>x</think> " + "so the answer is near " * (MB // 22) + "\\boxed{6}", 1, 1, True),
    ("1 MB think block", "<think>" + "count the circles. " * (MB // 19) + "</think> \\boxed{6}", 1, 1, True),
    ("1 MB of open braces", "<think>x</think> " + "{" * MB + "\\boxed{6}", 1, 1, True),
    ("1 MB of close braces", "<think>x</think> " + "}" * MB + "\\boxed{6}", 1, 1, True),
    ("a 1 MB box", "<think>x</think> \\boxed{" + "6" * MB + "}", 0, 1, False),
    ("100,000 agreeing boxes", "<think>x</think> " + "\\boxed{6} " * 100_000, 1, 1, True),
    # short, because a backtracking "Answer:" rule is cubic here (10-50 s at this length) and holds the GIL
    ("'Answer:' and 1,500 newlines", "<think>x</think> Answer:" + "\n" * 1500, 0, 0, False),
]


def _within(bound_s: float, fn):
    """fn()'s value, or a failure once bound_s has passed (a thread, so a hang fails instead of hanging)."""
    out: list = []
    worker = threading.Thread(target=lambda: out.append(fn()), daemon=True)
    start = time.perf_counter()
    worker.start()
    worker.join(bound_s)
    took = time.perf_counter() - start  # a regex holds the GIL: join() can return late, so time it too
    assert not worker.is_alive() and took < bound_s, f"still grading after {bound_s} s (took {took:.1f} s)"
    assert out, "grading raised (see the thread's traceback above)"
    return out[0]


@pytest.mark.parametrize("name, response, acc, fmt, right", ADVERSARIAL, ids=[c[0] for c in ADVERSARIAL])
def test_adversarial_responses_are_graded_fast(name, response, acc, fmt, right):
    number = BenchItem("MathVista", "1", "How many?", None, "6", "number", {},
                       {"question_type": "free_form", "mv_answer_type": "integer", "precision": None})
    choice = BenchItem("MathVista", "2", "Which?", None, "A", "choice", {"A": "6", "B": "7"},
                       {"question_type": "multi_choice"})
    adapter = get_adapter("mathvista")

    def grade_everywhere():
        return (reward(response, "6", "number"), adapter.grade(number, response)["correct"],
                adapter.grade(choice, response.replace("\\boxed{6}", "\\boxed{A}"))["correct"])

    out, number_right, choice_right = _within(BOUND_S, grade_everywhere)
    assert (out["accuracy"], out["format"]) == (acc, fmt)
    assert (number_right, choice_right) == (right, right)


GOLDS = [
    # gold, answer_type, gradeable
    ("6", "number", True),
    ("\\frac{1}{2}", "number", True),
    ("red", "text", True),
    ("B", "choice", True),
    ("none", "text", True),          # a real answer ("how many are hidden?"), not a placeholder
    ("in the table", "text", True),  # a place ("where is the cup?"), not a pointer to one
    ("", "text", False),
    ("   ", "number", False),
    ("see figure", "text", False),
    ("See the figure.", "number", False),
    ("Refer to the diagram above", "text", False),
    ("shown in the image", "text", False),
    ("N/A", "text", False),
    ("?", "text", False),
    ("see figure", "number", False),
    ("x + 1", "number", False),      # a number-typed gold with a free symbol
    ("9" * (MAX_ANSWER_CHARS + 1), "text", False),  # longer than any extracted answer can be
]


@pytest.mark.parametrize("gold, answer_type, gradeable", GOLDS)
def test_gold_is_gradeable(gold, answer_type, gradeable):
    assert gold_is_gradeable(gold, answer_type) is gradeable


@pytest.mark.parametrize("gold, answer_type, response", [
    ("see figure", "text", "<think>look</think> \\boxed{see figure}"),
    ("", "text", "<think>nothing</think> \\boxed{}"),
    ("N/A", "text", "<think>x</think> \\boxed{n/a}"),
    ("x + 1", "number", "<think>x</think> \\boxed{x + 1}"),
])
def test_an_ungradeable_gold_is_never_rewarded_and_is_counted(gold, answer_type, response):
    out = reward(response, gold, answer_type)
    assert (out["accuracy"], out["format"], out["ungradeable_gold"]) == (0.0, 1.0, 1.0)
    assert out["reward"] == pytest.approx(0.1)  # the format reward still stands
    assert reward("<think>x</think> \\boxed{6}", "6", "number")["ungradeable_gold"] == 0.0


def test_an_ungradeable_gold_is_never_scored_right_nor_judged_and_is_counted():
    adapter = get_adapter("mathvista")
    meta = {"question_type": "free_form", "mv_answer_type": "text", "precision": None}
    bad = BenchItem("MathVista", "1", "What is shown?", None, "see figure", "text", {}, meta)
    good = BenchItem("MathVista", "2", "What colour?", None, "red", "text", {}, meta)
    asked = []

    def judge(item, response):
        asked.append(item.id)
        return True

    records = [adapter.grade(bad, "\\boxed{see figure}", judge=judge), adapter.grade(good, "\\boxed{red}", judge=judge)]
    assert [(r["correct"], r["ungradeable_gold"]) for r in records] == [(False, True), (True, False)]
    assert asked == ["2"]  # a judge would call "see figure" right
    summary = adapter.aggregate(records)
    assert (summary["correct"], summary["ungradeable_gold"]) == (1, 1)


def test_the_filter_never_keeps_an_ungradeable_gold_and_counts_it():
    from capcurriculum.generation import Result
    from capcurriculum.perception.filter import judge_model, verdict_counts

    examples = [{"id": f"q{i}", "question": "What color?", "answer": gold, "answer_type": "text",
                 "image": f"s{i}.jpg", "meta": {"scene_id": f"s{i}"}} for i, gold in enumerate(["see figure", "red"])]
    results = [Result("q0|image", texts=["\\boxed{blue}"]), Result("q0|caption", texts=["\\boxed{see figure}"]),
               Result("q1|image", texts=["\\boxed{blue}"]), Result("q1|caption", texts=["\\boxed{red}"])]
    verdicts = judge_model(examples, results, "m")
    assert [(v["caption_correct"], v["keep"]) for v in verdicts] == [(False, False), (True, True)]
    assert verdict_counts(verdicts, "m")["filter/m/ungradeable_gold"] == 1
