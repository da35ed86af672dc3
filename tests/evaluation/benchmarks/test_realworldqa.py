from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = [
    "B",  # letter question, gold B, bare letter: right
    "\\boxed{two}",  # gold "2": number words map to digits: right
    "uphill",  # gold "Downhill": wrong
    "I think the answer is C",  # gold A: wrong
]


def test_items_use_the_row_index_as_id(load_rows):
    conv = get_adapter("realworldqa").rows_to_items(load_rows("realworldqa"), source="fixture")
    assert [it.id for it in conv.items] == ["#0", "#1", "#2", "#3"]
    assert [it.answer_type for it in conv.items] == ["choice", "number", "text", "choice"]
    assert conv.items[3].choices == {"A": "Left", "B": "Middle", "C": "Right"}
    assert [(s.row_id, s.field) for s in conv.skipped] == [("#4", "image")]


def test_hand_scored_rows(load_rows):
    ad = get_adapter("realworldqa")
    conv = ad.rows_to_items(load_rows("realworldqa"), source="fixture")
    records = [ad.grade(it, r) for it, r in zip(conv.items, RESPONSES, strict=True)]
    assert [r["correct"] for r in records] == [True, True, False, False]
    s = ad.aggregate(records, skipped=conv.skipped)
    assert s["accuracy"] == 0.4  # 2 of 5 rows, the imageless one counted wrong
    no_answer = ad.grade(conv.items[2], "The road surface and the horizon suggest a slope.")
    assert no_answer["no_answer"] and not no_answer["correct"]
