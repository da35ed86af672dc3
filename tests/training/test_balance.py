"""Answer-balanced sampling: a set that pays a blind constant answer stops paying it; streams stay exact."""

from collections import Counter

import pytest

from capcurriculum.sampling.batching import Item
from capcurriculum.training.balance import (
    answer_balance_weights,
    constant_answer_reward,
    drop_single_answer_types,
)
from capcurriculum.training.grpo import PromptStream


def _item(i, qtype, answer, mode="perc_image"):
    return Item({"id": f"q{i}", "answer": answer, "meta": {"qtype": qtype}}, mode, image_path="x.jpg")


def _skewed():
    # the shape of a filtered D_perc: one colour and one shape dominate their question types
    return ([_item(i, "color", "orange") for i in range(6)] + [_item(6, "color", "green"), _item(7, "color", "Green ")]
            + [_item(8 + i, "shape", "cross") for i in range(3)] + [_item(11, "shape", "circle")])


def test_weights_give_every_answer_of_a_type_the_same_mass_and_keep_the_type_mix():
    items = _skewed()
    w = answer_balance_weights(items)
    mass = Counter()
    for it, x in zip(items, w):
        mass[(it.example["meta"]["qtype"], it.example["answer"].strip().lower())] += x
    assert mass[("color", "orange")] == pytest.approx(4) and mass[("color", "green")] == pytest.approx(4)
    assert mass[("shape", "cross")] == pytest.approx(2) and mass[("shape", "circle")] == pytest.approx(2)
    assert sum(w) == pytest.approx(len(items))


def test_items_without_a_question_type_keep_their_weight():
    math = [Item({"id": f"m{i}", "answer": a}, "text_math") for i, a in enumerate(["4", "4", "4", "9"])]
    assert answer_balance_weights(math + _skewed())[:4] == [1.0, 1.0, 1.0, 1.0]


def test_a_blind_constant_answer_earns_less_under_balance():
    items = _skewed()
    assert constant_answer_reward(items) == pytest.approx((6 + 3) / 12)
    assert constant_answer_reward(items, answer_balance_weights(items)) == pytest.approx(0.5)


def test_a_weighted_stream_draws_in_proportion_and_resumes_exactly():
    items = _skewed()
    a = PromptStream(items, seed=1, weights=answer_balance_weights(items))
    draws = [a.next(12) for _ in range(200)]
    answers = Counter(it.example["answer"].strip().lower() for batch in draws for it in batch
                      if it.example["meta"]["qtype"] == "color")
    assert abs(answers["orange"] - answers["green"]) / sum(answers.values()) < 0.05
    state = a.state()
    rest = a.next(30)
    b = PromptStream(items, seed=1, weights=answer_balance_weights(items))
    b.load_state(state)
    assert [it.example["id"] for it in b.next(30)] == [it.example["id"] for it in rest]
    ordered = PromptStream(items, seed=1, shuffle=False, weights=answer_balance_weights(items))
    ids = [int(it.example["id"][1:]) for it in ordered.next(12)]
    assert ids == sorted(ids)  # a difficulty order survives the balanced draws
    with pytest.raises(ValueError, match="3 weights for 12 prompts"):
        PromptStream(items, seed=1, weights=[1.0, 1.0, 1.0])



def test_a_question_type_with_one_answer_is_dropped_and_counted(caplog):
    items = _skewed() + [_item(20 + i, "size", "small") for i in range(5)]
    math = [Item({"id": "m0", "answer": "4"}, "text_math")]
    with caplog.at_level("WARNING"):
        kept, dropped = drop_single_answer_types(items + math, "train_1")
    assert dropped == 5 and kept == items[:12] + math
    assert "all 5 size questions of perc_image answer 'small'" in caplog.text
    # what it buys: with the size type in, a blind policy still earned 5 of 17 draws
    assert constant_answer_reward(items, answer_balance_weights(items)) == pytest.approx((4 + 2 + 5) / 17)
    assert constant_answer_reward(kept[:12], answer_balance_weights(kept[:12])) == pytest.approx(0.5)


def _q(i, question, answer, qtype="shape"):
    return Item({"id": f"q{i}", "question": question, "answer": answer, "meta": {"qtype": qtype}}, "perc_image",
                image_path="x.jpg")


def _question_skewed():
    # the shape of the tiny D_perc: balanced within the type, but each question text leans one way
    # (the filter kept a question where the filter models' usual answer to it was wrong)
    return ([_q(i, "What shape is the red object?", "cross") for i in range(3)]
            + [_q(3, "What shape is the red object?", "circle")]
            + [_q(4 + i, "What shape is the blue object?", "circle") for i in range(3)]
            + [_q(7, "What shape is the blue object?", "cross")])


def test_a_type_balanced_set_can_still_pay_a_blind_answer_per_question():
    items = _question_skewed()
    by_type = answer_balance_weights(items)
    assert constant_answer_reward(items, by_type) == pytest.approx(0.5)
    assert constant_answer_reward(items, by_type, by="question") == pytest.approx(0.75)
    by_question = answer_balance_weights(items, "question")
    assert constant_answer_reward(items, by_question, by="question") == pytest.approx(0.5)
    mass = Counter()
    for it, w in zip(items, by_question):
        mass[(it.example["question"], it.example["answer"])] += w
    assert sorted(mass.values()) == pytest.approx([2.0] * 4)


def test_question_balance_groups_by_normalised_text_within_a_type_and_drops_single_answer_questions(caplog):
    items = _question_skewed() + [_q(10, "what shape is the RED object? ", "square"),
                                  _q(11, "Is the red cross small or large?", "small", qtype="size"),
                                  _q(12, "Is the red cross small or large?", "small", qtype="size")]
    with caplog.at_level("WARNING"):
        kept, dropped = drop_single_answer_types(items, "train_1", "question")
    assert dropped == 2 and kept == items[:9]
    assert "balance: question cannot balance them" in caplog.text
    w = answer_balance_weights(kept, "question")
    assert w[8] == pytest.approx(5 / 3)  # the third answer of the (normalised) red-object question
    with pytest.raises(ValueError, match="balance by 'label'"):
        answer_balance_weights(kept, "label")


def test_a_question_text_seen_once_is_no_prior_and_counts_under_its_type():
    # free-form questions (the paper's LLM writes each one new): a per-question prior would be a lookup table
    unique = [_q(i, f"What shape is object number {i}?", a) for i, a in enumerate(["cross", "cross", "circle", "square"])]
    assert constant_answer_reward(unique, by="question") == pytest.approx(constant_answer_reward(unique)) == 0.5
    assert constant_answer_reward(unique + _question_skewed(), by="question") == pytest.approx((2 + 3 + 3) / 12)
