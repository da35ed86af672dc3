from capcurriculum.evaluation.benchmarks import get_adapter

# id = category_subcategory_set_figure_question. Golds (gt_answer 1 = yes, 0 = no) in the fixture.
RESPONSES = {
    "VD_chart_0_0_0": "\\boxed{yes}",  # gold yes: right
    "VD_chart_0_0_1": "No.",  # gold no: right
    "VD_chart_0_1_0": "Yes, it is.",  # gold no: wrong
    "VD_chart_0_1_1": "Answer: yes",  # gold yes: right
    "VS_map_1_0_0": "yes",  # gold yes: right
    "VS_map_1_1_0": "\\boxed{No}",  # gold no: right
}


def test_hand_scored_question_figure_and_pair_accuracy(load_rows):
    ad = get_adapter("hallusionbench")
    conv = ad.rows_to_items(load_rows("hallusionbench"), source="fixture")
    assert [(s.row_id, s.field) for s in conv.skipped] == [("VS_map_2_0_0", "gt_answer")]  # gold "2"
    s = ad.aggregate([ad.grade(it, RESPONSES[it.id]) for it in conv.items])
    assert s["aAcc"] == 5 / 6  # every question but VD_chart_0_1_0
    # Figures: VD chart 0 fig 0 (2/2), fig 1 (1/2: fails), VS map 1 fig 0, fig 1 -> 3 of 4 all right.
    assert s["fAcc"] == 0.75
    # Questions across figures: VD chart 0 q0 (fig 0 right, fig 1 wrong: fails), q1 (both right),
    # VS map 1 q0 (both right) -> 2 of 3.
    assert s["qAcc"] == 2 / 3
    assert s["by_category"]["VD"] == {"n": 4, "aAcc": 0.75, "fAcc": 0.5, "qAcc": 0.5}
    assert s["by_category"]["VS"] == {"n": 2, "aAcc": 1.0, "fAcc": 1.0, "qAcc": 1.0}
    assert s["headline"] == "aAcc"


def test_a_skipped_row_is_a_wrong_question_in_its_figure_and_question_groups(load_rows):
    ad = get_adapter("hallusionbench")
    conv = ad.rows_to_items(load_rows("hallusionbench"), source="fixture")
    s = ad.aggregate([ad.grade(it, RESPONSES[it.id]) for it in conv.items], skipped=conv.skipped)
    # VS_map_2_0_0 (skipped) adds a wrong question, a failed figure (VS map 2 fig 0) and a failed
    # question group (VS map 2 q0): aAcc 5/7, fAcc 3/5, qAcc 2/4.
    assert (s["aAcc"], s["fAcc"], s["qAcc"]) == (5 / 7, 3 / 5, 2 / 4)
    assert s["by_subcategory"]["map"] == {"n": 3, "aAcc": 2 / 3, "fAcc": 2 / 3, "qAcc": 1 / 2}
    assert ad.headline(s) == {"metric": "aAcc", "value": 5 / 7, "beside": {"qAcc": 2 / 4, "fAcc": 3 / 5}}


def test_no_answer_and_missing_image(load_rows):
    ad = get_adapter("hallusionbench")
    rows = load_rows("hallusionbench")
    rows[0]["image"] = None
    conv = ad.rows_to_items(rows, source="fixture")
    assert ("VD_chart_0_0_0", "image") in [(s.row_id, s.field) for s in conv.skipped]
    record = ad.grade(conv.items[0], "Yes and no: the chart is ambiguous.")
    assert record["no_answer"] and not record["correct"]
