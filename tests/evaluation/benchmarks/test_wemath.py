import pytest

from capcurriculum.evaluation.benchmarks import get_adapter

# Which parts each model reply gets right: problem ID -> (sub-problem 1, 2[, 3], composite).
# 2-step golds are B, 3-step golds are C.
TWO_STEP = {
    "1": (True, True, True),  # all right                      -> CM strict, CM loose
    "2": (True, False, True),  # one sub wrong, composite right -> RM strict, CM loose
    "3": (False, False, True),  # all subs wrong, composite right -> RM strict, RM loose
    "4": (True, True, False),  # subs right, composite wrong     -> IG
    "5": (None, True, False),  # sub 1 unanswered, composite wrong -> IK
    "6": (True, None, True),  # sub 2's row has no image: skipped -> problem incomplete, unclassified
}
THREE_STEP = {
    "1": (True, True, True, True),  # -> CM strict, CM loose
    "2": (True, False, True, False),  # -> IK
    "3": (True, True, True, False),  # -> IG
}


def reply(item) -> str:
    pid, key = item.meta["problem_id"], item.meta["key"]
    steps, part = key.split("_")
    table = TWO_STEP if steps == "2steps" else THREE_STEP
    pos = -1 if part == "multi" else int(part) - 1
    verdict = table[pid][pos]
    if verdict is None:
        return "I am not sure."
    if steps == "2steps":  # boxed replies
        return "\\boxed{B}" if verdict else "\\boxed{D}"
    return "Answer: C" if verdict else "Answer: A"  # VLMEvalKit's no-judge "Answer" rule


@pytest.fixture
def graded(load_rows):
    ad = get_adapter("wemath")
    conv = ad.rows_to_items(load_rows("wemath"), source="fixture")
    return ad, conv, [ad.grade(it, reply(it)) for it in conv.items]


def test_rows_and_the_skipped_part(graded):
    _, conv, _ = graded
    assert len(conv.items) == 29  # 6 two-step problems x 3 rows + 3 three-step x 4 rows = 30, one skipped
    assert [(s.row_id, s.field, s.reason) for s in conv.skipped] == [("6:2steps_2", "image_path", "missing image")]
    item = conv.items[0]
    assert item.id == "1:2steps_1" and item.gold == "B"
    assert item.choices == {"A": "2cm", "B": "3cm", "C": "4cm", "D": "5cm", "E": "No correct answer"}
    assert item.question.endswith("A. 2cm; B. 3cm; C. 4cm; D. 5cm; E. No correct answer")


def test_four_dimensional_score_by_hand(graded):
    ad, conv, records = graded
    s = ad.aggregate(records, skipped=conv.skipped)
    # Complete problems N = 8 (2-step 1-5, 3-step 1-3); 2-step 6 lacks a part.
    assert s["n_problems"] == 8 and s["incomplete_problems"] == 1
    # IG: 2-step 4, 3-step 3. IK: 2-step 5, 3-step 2. CM strict: 2-step 1, 3-step 1;
    # RM strict: 2-step 2, 3. CM loose: 2-step 1, 2, 3-step 1; RM loose: 2-step 3.
    assert s["four_dim_counts"] == {"IK": 2, "IG": 2, "CM_strict": 2, "CM_loose": 3, "RM_strict": 2, "RM_loose": 1}
    # Score = (N - 0.5*IG - RM - IK) / N: strict (8 - 1 - 2 - 2) / 8 = 3/8; loose (8 - 1 - 1 - 2) / 8 = 1/2.
    assert s["score_strict"] == 0.375
    assert s["score_loose"] == 0.5
    assert s["headline"] == "score_strict"
    # IK/N = IG/N = 2/8; CM strict 2/8, loose 3/8; RM/(CM+RM): strict 2/4, loose 1/4.
    assert s["rates"] == {"IK": 0.25, "IG": 0.25, "CM_strict": 0.25, "CM_loose": 0.375,
                          "RM_strict": 0.5, "RM_loose": 0.25}
    # S1: sub-problems of complete problems: 2+1+0+2+1 of 10 (2-step) + 3+2+3 of 9 (3-step) = 14/19.
    # S2: composites right in 2-step 1, 2, 3 of 5; S3: 3-step 1 of 3.
    assert s["step_accuracy"] == {"S1": 14 / 19, "S2": 0.6, "S3": 1 / 3}
    # All 29 graded rows: 14 subs + 4 composites right in complete problems + 2 in problem 6 = 20.
    assert s["accuracy"] == 20 / 29
    assert s["no_answer"] == 1  # 2-step 5, sub-problem 1


def test_official_answer_rule_and_no_answer(graded):
    ad, conv, _ = graded
    item = conv.items[0]  # gold B
    assert ad.extract("Reasoning... Answer: <B>.", item) == "B"
    assert ad.extract("\\boxed{3cm}", item) == "B"  # option text inside the box
    assert ad.extract("The triangle is too small to tell.", item) is None
