import pytest

from capcurriculum.evaluation.benchmarks import get_adapter

# question_id -> reply. Golds: 1 yes, 2 no, 3 yes, 4 no (adversarial); 5 yes, 6 no (popular);
# 7 no, 8 yes (random).
RESPONSES = {
    "1": "\\boxed{Yes}",  # TP
    "2": "Yes, there is one.",  # FP
    "3": "<think>I see no such thing.</think> No.",  # FN
    "4": "\\boxed{no}",  # TN
    "5": "Answer: yes",  # TP
    "6": "I am not sure.",  # neither yes nor no: no answer; wrong, and not a "yes" prediction
    "7": "No",  # TN
    "8": "yes",  # TP
}


@pytest.fixture
def summary(load_rows):
    ad = get_adapter("pope")
    conv = ad.rows_to_items(load_rows("pope"), source="fixture")
    assert [(s.row_id, s.field) for s in conv.skipped] == [("9", "answer"), ("10", "image")]
    return ad.aggregate([ad.grade(it, RESPONSES[it.id]) for it in conv.items], skipped=conv.skipped)


def test_overall_by_hand(summary):
    # Every row counts, as in VLMEvalKit, where a row without a prediction reads as "no": the skipped
    # row 10 (gold yes, no image) is a false negative, row 9 (gold "maybe") only wrong.
    # TP 3 (1, 5, 8), FP 1 (2), FN 2 (3, 10), TN 2 (4, 7), unknown 1 (6), no gold 1 (9).
    assert summary["accuracy"] == 5 / 10  # TP + TN of 10 rows
    assert summary["precision"] == 0.75  # 3 / (3 + 1)
    assert summary["recall"] == 0.6  # 3 / (3 + 2)
    assert summary["f1"] == 2 * 0.75 * 0.6 / (0.75 + 0.6)  # 2/3
    assert summary["yes_ratio"] == 0.4  # replies read as yes: 1, 2, 5, 8 of 10
    assert summary["no_answer"] == 1
    assert summary["headline"] == "f1"


def test_per_category_by_hand(summary):
    cats = summary["by_category"]
    # adversarial: one each of TP, FP, FN, TN.
    assert cats["adversarial"] == {"n": 4, "accuracy": 0.5, "precision": 0.5, "recall": 0.5, "f1": 0.5,
                                   "yes_ratio": 0.5}
    # popular: TP and an unknown on a "no" gold: precision 1/1, recall 1/1, accuracy 1/2.
    assert cats["popular"] == {"n": 2, "accuracy": 0.5, "precision": 1.0, "recall": 1.0, "f1": 1.0,
                               "yes_ratio": 0.5}
    # random: TN 7, TP 8, the skipped 9 (no gold) and 10 (FN).
    assert cats["random"] == {"n": 4, "accuracy": 0.5, "precision": 1.0, "recall": 0.5, "f1": 2 / 3,
                              "yes_ratio": 0.25}
