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


def test_each_question_type_gets_its_own_headroom_beside_the_slices():
    from capcurriculum.sampling.headroom import summarize

    # two identify items (greedy wrong; one solved by a sample) and two counts (greedy right, every sample right)
    greedy = [False, False, True, True]
    sampled = [[0.0, 1.0], [0.0, 0.0], [1.0, 1.0], [1.0, 1.0]]
    keys = ["a", "b", "1", "2"]
    answers = [["a", "c"], ["b", "b"], ["1", "1"], ["2", "2"]]
    out = summarize(greedy, sampled, keys, answers, 2, ["identify", "identify", "count", "count"])
    assert (out["greedy_pass_at_1"], out["pass_at_2"], out["n"]) == (0.5, 0.75, 4)
    assert (out["identify/greedy_pass_at_1"], out["identify/pass_at_2"], out["identify/n"]) == (0.0, 0.5, 2)
    assert out["identify/sampled_pass_at_1"] == 0.25 and out["identify/greedy_mass"] == 0.75
    assert (out["count/greedy_pass_at_1"], out["count/pass_at_2"]) == (1.0, 1.0)


def test_items_without_a_question_type_get_only_the_slices_figures():
    from capcurriculum.sampling.headroom import summarize

    out = summarize([True], [[1.0, 0.0]], ["7"], [["7", "8"]], 2, [None])
    assert sorted(out) == ["greedy_mass", "greedy_pass_at_1", "greedy_se", "n", "pass_at_2", "sampled_pass_at_1"]
