"""The reward on realistic and adversarial responses."""

import pytest

from capcurriculum.answers import final_answer, gold_is_gradeable
from capcurriculum.sampling.rewards import (
    RewardConfig,
    format_reward,
    reward,
)

CASES = [
    # response, gold, type, accuracy, format
    ("<think>2 circles, 3 each</think> \\boxed{6}", "6", "number", 1, 1),
    ("<think>2 circles</think> The answer is \\boxed{6.0}.", "6", "number", 1, 1),
    ("<think>it is red</think> \\boxed{Red}", "red", "text", 1, 1),
    ("<think>count</think> \\boxed{five}", "5", "number", 1, 1),
    ("<think>x</think> \\boxed{\\frac{1}{2}}", "0.5", "number", 1, 1),
    ("<think>x</think> \\boxed{\\frac{1}{2}}", "\\frac{2}{4}", "number", 1, 1),
    ("\\boxed{6}", "6", "number", 1, 0),                                        # right, unformatted
    ("<think>maybe \\boxed{6}</think> I am not sure", "6", "number", 0, 0),   # answer only inside reasoning
    ("<think>hmm</think> \\boxed{5} or \\boxed{6}", "6", "number", 0, 1),      # two answers that disagree
    ("<think>sure</think> \\boxed{6} so \\boxed{6}", "6", "number", 1, 1),     # repeated, same answer
    ("", "6", "number", 0, 0),                                                 # empty
    ("<think>" + "lots " * 5000 + "</think> \\boxed{" + "6" * 200 + "}", "6", "number", 0, 1),  # enormous
    ("<think>a</think><think>b</think> \\boxed{6}", "6", "number", 1, 0),      # two think blocks
    ("<think>a</think> \\boxed{(B)}", "B", "choice", 1, 1),
    ("<think>a</think> \\boxed{Blue}", "B", "choice", 0, 1),
    ("<think>a</think> \\boxed{B}", "B", "choice", 1, 1),
    ("<think>a</think> \\boxed{7}", "6", "number", 0, 1),
]


@pytest.mark.parametrize("response, gold, answer_type, acc, fmt", CASES)
def test_reward_table(response, gold, answer_type, acc, fmt):
    out = reward(response, gold, answer_type)
    assert (out["accuracy"], out["format"]) == (acc, fmt)
    assert out["reward"] == pytest.approx(0.9 * acc + 0.1 * fmt)


def test_weights_come_from_config():
    out = reward("<think>a</think> \\boxed{6}", "6", "number", RewardConfig(accuracy_weight=1.0, format_weight=0.5))
    assert out["reward"] == pytest.approx(1.5)
    with pytest.raises(ValueError, match="weights"):
        RewardConfig(accuracy_weight=-1.0)


def test_final_answer_counts_distinct_answers():
    assert final_answer("<think>\\boxed{1}</think> \\boxed{2} \\boxed{3}") == ("3", 2)
    assert format_reward("  <think>x</think>\n\\boxed{y}") == 1.0


def test_unparseable_gold_is_not_gradeable():
    assert gold_is_gradeable("6", "number") and gold_is_gradeable("\\frac{1}{2}", "number")
    assert not gold_is_gradeable("", "text")
    assert not gold_is_gradeable("see the figure", "number")


def _grade_through_math_verify(pred: str, gold: str) -> bool:
    """The grade before plain numbers skipped math-verify: the shared matcher, then math-verify."""
    from capcurriculum.answers import is_correct
    from capcurriculum.answers import math_verify_equal as _math_verify_main

    return is_correct(pred, gold, "number") or _math_verify_main(pred, gold, 2)


def test_plain_numbers_are_graded_as_math_verify_would():
    import random

    from capcurriculum.answers import plain_decimal
    from capcurriculum.sampling.rewards import grade

    rng = random.Random(0)
    golds = ["6", "0", "-3", "12.5", "1,000", "0.333333", "1000000", "2.718282"]
    pairs = [(p, g) for g in golds for p in ("6", "6.0", "06", "+6", "-0", "0.0", "1000", "1,000", "1000.0000001",
                                             "12.50", "0.3333333", "2.71828", "2.718281", "7", "5.999999")]
    pairs += [(str(rng.randint(-20, 20)), str(rng.randint(-20, 20))) for _ in range(100)]
    pairs += [(f"{rng.uniform(-50, 50):.{rng.randint(0, 7)}f}", f"{rng.uniform(-50, 50):.{rng.randint(0, 7)}f}")
              for _ in range(100)]
    assert all(plain_decimal(p) and plain_decimal(g) for p, g in pairs)
    disagree = [(p, g) for p, g in pairs if grade(p, g, "number") != _grade_through_math_verify(p, g)]
    assert disagree == []
    # and the shortcut is taken only for bare decimals: these still reach math-verify
    assert not any(plain_decimal(x) for x in ("1e3", "\\frac{1}{2}", "5%", "nan", "inf", ".5", "3 cm", "2^3"))
    assert grade("\\frac{1}{2}", "0.5", "number") and grade("5", "five", "number")
