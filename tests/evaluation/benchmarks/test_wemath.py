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
    "6": (True, None, True),  # sub 2's row has no image: skipped, scored wrong -> RM strict, CM loose
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
    # N = 9 composite problems (2-step 1-6, 3-step 1-3): every row counts, as VLMEvalKit's 525 does;
    # 2-step 6's skipped sub-problem 2 is a wrong part, not a hole.
    assert s["n_problems"] == 9 and s["incomplete_problems"] == 0 and s["unplaced_rows"] == 0
    # IG: 2-step 4, 3-step 3. IK: 2-step 5, 3-step 2. CM strict: 2-step 1, 3-step 1;
    # RM strict: 2-step 2, 3, 6. CM loose: 2-step 1, 2, 6, 3-step 1; RM loose: 2-step 3.
    assert s["four_dim_counts"] == {"IK": 2, "IG": 2, "CM_strict": 2, "CM_loose": 4, "RM_strict": 3, "RM_loose": 1}
    # Score = (N - 0.5*IG - RM - IK) / N: strict (9 - 1 - 3 - 2) / 9 = 1/3; loose (9 - 1 - 1 - 2) / 9 = 5/9.
    assert s["score_strict"] == 3 / 9
    assert s["score_loose"] == 5 / 9
    assert s["headline"] == "score_strict"
    assert ad.headline(s) == {"metric": "score_strict", "value": 3 / 9, "beside": {"score_loose": 5 / 9}}
    # IK/N = IG/N = 2/9; CM strict 2/9, loose 4/9; RM/(CM+RM): strict 3/5, loose 1/5.
    assert s["rates"] == {"IK": 2 / 9, "IG": 2 / 9, "CM_strict": 2 / 9, "CM_loose": 4 / 9,
                          "RM_strict": 3 / 5, "RM_loose": 1 / 5}
    # S1: sub-problems: 2+1+0+2+1+1 of 12 (2-step) + 3+2+3 of 9 (3-step) = 15/21.
    # S2: composites right in 2-step 1, 2, 3, 6 of 6; S3: 3-step 1 of 3.
    assert s["step_accuracy"] == {"S1": 15 / 21, "S2": 4 / 6, "S3": 1 / 3}
    # All 30 rows: 20 right (14 subs + 4 composites in problems 1-5 and 3-step, 2 in problem 6); the
    # skipped row counts as wrong.
    assert s["accuracy"] == 20 / 30
    assert s["n"] == 30 and s["skipped"] == 1
    assert s["no_answer"] == 1  # 2-step 5, sub-problem 1


def test_a_part_missing_from_the_rows_is_wrong_and_the_problem_counted(graded):
    ad, conv, records = graded
    # Drop 3-step problem 1's composite (right) from the rows altogether: the problem stays in N,
    # its composite now wrong with every sub-problem right -> IG instead of CM.
    rest = [r for r in records if r["id"] != "1:3steps_multi"]
    s = ad.aggregate(rest, skipped=conv.skipped)
    assert s["n_problems"] == 9 and s["incomplete_problems"] == 1
    assert s["four_dim_counts"]["IG"] == 3 and s["four_dim_counts"]["CM_strict"] == 1
    assert s["score_strict"] == (9 - 1.5 - 3 - 2) / 9


def test_the_full_testmini_divides_by_525_even_with_skipped_rows():
    # 1,740 rows = 3 x 360 two-step + 4 x 165 three-step problems: VLMEvalKit's hard-coded N = 525
    # (vlmeval/dataset/utils/wemath.py, evaluate_update_main_results_df). Every part answered right
    # except the 2-step problems' first sub-problems in 10 problems whose rows were skipped.
    from capcurriculum.evaluation.benchmarks import Skipped

    ad = get_adapter("wemath")
    keys = [(2, p, k) for p in range(360) for k in ("1", "2", "multi")]
    keys += [(3, 1000 + p, k) for p in range(165) for k in ("1", "2", "3", "multi")]
    records, skipped = [], []
    for steps, pid, part in keys:
        key = f"{steps}steps_{part}"
        if steps == 2 and part == "1" and pid < 10:
            skipped.append(Skipped("WeMath", f"{pid}:{key}", "image_path", "missing image", "A",
                                   {"problem_id": str(pid), "key": key}))
        else:
            records.append({"id": f"{pid}:{key}", "gold": "A", "extracted": "A", "correct": True,
                            "no_answer": False, "meta": {"problem_id": str(pid), "key": key}})
    assert len(records) + len(skipped) == 1740
    s = ad.aggregate(records, skipped=skipped)
    assert s["n_problems"] == 525
    # the 10 problems with a skipped (wrong) sub-problem and a right composite: RM strict, CM loose
    assert s["four_dim_counts"]["RM_strict"] == 10 and s["four_dim_counts"]["RM_loose"] == 0
    assert s["score_strict"] == (525 - 10) / 525 and s["score_loose"] == 1.0


def test_official_answer_rule_and_no_answer(graded):
    ad, conv, _ = graded
    item = conv.items[0]  # gold B
    assert ad.extract("Reasoning... Answer: <B>.", item) == "B"
    assert ad.extract("\\boxed{3cm}", item) == "B"  # option text inside the box
    assert ad.extract("The triangle is too small to tell.", item) is None
