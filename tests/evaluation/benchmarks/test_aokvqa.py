from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = {
    "q1": "\\boxed{D}",  # gold D (cigarette): right
    "q2": "The answer is (B).",  # gold A (bus): wrong
    "q3": "\\boxed{food}",  # the option text maps to B, gold B: right
}


def test_gold_from_correct_choice_idx_and_skips(load_rows):
    conv = get_adapter("aokvqa").rows_to_items(load_rows("aokvqa"), source="fixture")
    assert [it.id for it in conv.items] == ["q1", "q2", "q3"]
    assert [it.gold for it in conv.items] == ["D", "A", "B"]
    assert [(s.row_id, s.field) for s in conv.skipped] == [("q4", "correct_choice_idx"), ("q5", "image")]
    assert "hidden" in conv.skipped[0].reason
    assert conv.items[0].question.endswith("Options:\nA. toothpick\nB. food\nC. popsicle stick\nD. cigarette")


def test_hand_scored_rows(load_rows):
    ad = get_adapter("aokvqa")
    conv = ad.rows_to_items(load_rows("aokvqa"), source="fixture")
    records = [ad.grade(it, RESPONSES[it.id]) for it in conv.items]
    s = ad.aggregate(records, skipped=conv.skipped)
    assert s["accuracy"] == 2 / 5  # q1, q3 right of all 5 rows: the skipped q4, q5 count as wrong
    assert s["skipped"] == 2
    # q4 and q5 (skipped, not difficult) stay in their group, wrong
    assert s["by_difficult_direct_answer"] == {"false": {"n": 4, "accuracy": 0.5},
                                               "true": {"n": 1, "accuracy": 0.0}}
    assert ad.grade(conv.items[0], "It is hard to see what he holds.")["no_answer"] is True


def test_a_malformed_value_is_skipped_not_raised(load_rows):
    rows = load_rows("aokvqa")[:1]
    rows[0]["correct_choice_idx"] = "three"
    conv = get_adapter("aokvqa").rows_to_items(rows, source="fixture")
    assert conv.items == [] and conv.skipped[0].row_id == "q1" and "malformed" in conv.skipped[0].reason
