"""The sharpening measure of the RL headroom report: the sampled mass on the greedy answer."""

import pytest

from capcurriculum.sampling.headroom import answer_key, greedy_mass


def test_greedy_mass_is_the_mean_share_of_samples_giving_the_greedy_answer():
    greedy = ["red", "3", None]
    sampled = [["red", "blue", "red", "red"],   # 3 of 4
               ["3", "3", "3", "3"],            # a sharp item: all of them
               [None, "2", "2", None]]          # no greedy answer: samples without one agree with it
    assert greedy_mass(greedy, sampled) == pytest.approx((0.75 + 1.0 + 0.5) / 3)


def test_a_wrong_greedy_answer_counts_as_much_as_a_right_one():
    # mass measures sharpness, not accuracy: the gold answer appears nowhere here
    assert greedy_mass(["blue"], [["blue", "blue"]]) == 1.0
    assert greedy_mass(["blue"], [["red", "green"]]) == 0.0


def test_answers_compare_after_the_shared_normalisation():
    assert answer_key("The Red.") == answer_key("red") == "red"
    assert answer_key("three") == answer_key("3")
    assert answer_key(None) is None


def test_mismatched_or_empty_inputs_are_refused():
    with pytest.raises(ValueError, match="2 greedy answers for 1 sampled groups"):
        greedy_mass(["a", "b"], [["a"]])
    with pytest.raises(ValueError, match="0 greedy answers"):
        greedy_mass([], [])
