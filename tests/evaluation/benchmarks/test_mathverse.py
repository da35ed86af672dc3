from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = {
    "1": "<think>x = 8</think>\\boxed{B}",  # gold B: right
    "2": "\\boxed{5.0}",  # gold 5: right
    "3": "\\boxed{1.732}",  # gold \sqrt{3}: equal in value, but the rule compares strings/numbers: wrong
    "4": "\\boxed{5}",  # Text Dominant, gold 5: right
    "5": "Answer: 6",  # Text Only, gold 5: wrong
}


def test_vision_intensive_is_the_default_and_other_versions_are_excluded(load_rows):
    conv = get_adapter("mathverse").rows_to_items(load_rows("mathverse"), source="fixture")
    assert [it.id for it in conv.items] == ["1", "2", "3"]
    assert conv.counts == {"items": 3, "skipped": 1, "excluded": 2}  # rows 4, 5 are other versions
    assert [(s.row_id, s.field, s.reason) for s in conv.skipped] == [("6", "image", "missing image")]
    assert conv.items[0].choices == {"A": "4", "B": "8", "C": "12", "D": "16"}
    assert conv.items[0].question.startswith("Please directly answer")  # query_wo is the prompt


def test_hand_scored_rows_without_and_with_a_judge(load_rows):
    ad = get_adapter("mathverse")
    items = ad.rows_to_items(load_rows("mathverse"), source="fixture").items
    rule = [ad.grade(it, RESPONSES[it.id]) for it in items]
    summary = ad.aggregate(rule)
    assert summary["accuracy"] == 2 / 3  # rows 1, 2 right; row 3 needs the judge
    assert summary["judge_unavailable"] == 3  # MathVerse is judge-scored throughout

    def judge(item, response):  # knows only that 1.732 is sqrt(3); undecided otherwise
        return True if item.id == "3" else None

    judged = [ad.grade(it, RESPONSES[it.id], judge=judge) for it in items]
    assert [r["judge"] for r in judged] == ["failed", "failed", "used"]
    assert ad.aggregate(judged)["accuracy"] == 1.0  # rows 1, 2 by rule, row 3 by the judge


def test_all_versions_and_text_only_rows_without_image(load_rows):
    ad = get_adapter("mathverse", versions="all")
    conv = ad.rows_to_items(load_rows("mathverse"), source="fixture")
    assert [it.id for it in conv.items] == ["1", "2", "3", "4", "5"]
    assert conv.items[4].image is None  # Text Only has no image by design, not a skip
    records = [ad.grade(it, RESPONSES[it.id]) for it in conv.items]
    summary = ad.aggregate(records)
    assert summary["accuracy"] == 3 / 5  # rows 1, 2, 4 right
    assert summary["by_version"]["Vision Intensive"]["accuracy"] == 2 / 3
    assert summary["by_version"]["Text Only"] == {"n": 1, "accuracy": 0.0}
    assert summary["by_subfield"]["Length"] == {"n": 4, "accuracy": 0.5}  # rows 2, 3, 4, 5: 2 and 4 right
