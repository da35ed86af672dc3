from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = {
    "0": "\\boxed{C}",  # gold C: right
    "1": "\\boxed{3}",  # option text "3" is B, gold A: wrong
    "2": "<think>A or D? Count again.</think> Answer: D",  # gold D: right
    "3": "no idea",  # no answer: wrong
}


def test_options_are_read_from_the_question(load_rows):
    conv = get_adapter("mmstar").rows_to_items(load_rows("mmstar"), source="fixture")
    assert conv.items[0].choices == {"A": "Sketch", "B": "Oil painting", "C": "Watercolor", "D": "Pencil"}
    assert conv.skipped == []


def test_a_row_without_image_is_skipped(load_rows):
    rows = load_rows("mmstar")
    rows[1]["image"] = None
    conv = get_adapter("mmstar").rows_to_items(rows, source="fixture")
    assert [(s.row_id, s.field, s.reason) for s in conv.skipped] == [("1", "image", "missing image")]


def test_hand_scored_rows_and_categories(load_rows):
    ad = get_adapter("mmstar")
    conv = ad.rows_to_items(load_rows("mmstar"), source="fixture")
    records = [ad.grade(it, RESPONSES[it.id]) for it in conv.items]
    s = ad.aggregate(records)
    assert s["accuracy"] == 0.5  # rows 0, 2 right
    assert s["no_answer"] == 1  # row 3
    assert s["by_category"] == {"coarse perception": {"n": 1, "accuracy": 1.0},
                                "fine-grained perception": {"n": 2, "accuracy": 0.5},  # row 2 of 1, 2
                                "math": {"n": 1, "accuracy": 0.0}}
    assert s["by_l2_category"]["object counting"] == {"n": 2, "accuracy": 0.5}
