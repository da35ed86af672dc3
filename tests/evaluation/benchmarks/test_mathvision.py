from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = {
    "1": "\\boxed{1/3}",  # gold B = "1/3": the option text maps to B: right
    "2": "\\boxed{12.0}",  # gold 12, same number: right
    "3": "Answer: D",  # options drawn in the image (letters only), gold D: right
    "4": "\\boxed{8}",  # gold 7: wrong
}


def test_skips_name_the_missing_field(load_rows):
    conv = get_adapter("mathvision").rows_to_items(load_rows("mathvision"), source="fixture")
    assert [it.id for it in conv.items] == ["1", "2", "3", "4"]
    assert [(s.row_id, s.field) for s in conv.skipped] == [("5", "answer"), ("6", "decoded_image")]
    assert "MathVision_MINI row 5: field 'answer'" in str(conv.skipped[0])
    assert "Options:\nA. 1/2\nB. 1/3" in conv.items[0].question


def test_hand_scored_rows(load_rows):
    ad = get_adapter("mathvision")
    conv = ad.rows_to_items(load_rows("mathvision"), source="fixture")
    records = [ad.grade(it, RESPONSES[it.id]) for it in conv.items]
    assert [r["correct"] for r in records] == [True, True, True, False]
    summary = ad.aggregate(records, skipped=conv.skipped)
    assert summary["accuracy"] == 3 / 6  # 3 of 6 rows: the two skipped rows count as wrong
    assert summary["skipped"] == 2
    assert summary["judge_unavailable"] == 2  # the two free-form rows (2, 4)
    assert summary["by_subject"]["counting"] == {"n": 2, "accuracy": 1.0}  # rows 2, 3
    assert summary["by_level"]["2"] == {"n": 1, "accuracy": 1.0}  # row 1


def test_a_response_without_an_answer(load_rows):
    ad = get_adapter("mathvision")
    item = ad.rows_to_items(load_rows("mathvision"), source="fixture").items[3]
    record = ad.grade(item, "<think>Let me count the squares carefully and then")
    assert record["no_answer"] and not record["correct"]
