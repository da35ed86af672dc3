from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = {
    "1": "<think>8 of 11 parts are blue.</think> \\boxed{B}",  # gold (B) 8/11: right
    "2": "The missing number is 14. \\boxed{14}",  # integer 14: right
    "3": "\\boxed{1.449}",  # float, precision 2: round(1.449, 2) = 1.45 = gold: right
    "4": "\\boxed{[2007,2008]}",  # list "[2007, 2008]" compared without spaces: right
    "5": "I cannot tell.",  # no letter, no option text: no answer, wrong
    "6": "\\boxed{4}",  # integer gold 3: wrong
}


def test_rows_become_items_and_the_imageless_row_is_skipped(load_rows):
    conv = get_adapter("mathvista").rows_to_items(load_rows("mathvista"), source="fixture")
    assert [it.id for it in conv.items] == ["1", "2", "3", "4", "5", "6"]
    assert [(s.row_id, s.field, s.reason) for s in conv.skipped] == [("7", "decoded_image", "missing image")]
    first = conv.items[0]
    assert first.gold == "B" and first.answer_type == "choice" and first.meta["gold_text"] == "8/11"
    assert "(B) 8/11" in first.question  # the query column is the prompt, choices included
    assert first.meta["rows_from"] == "fixture" and first.meta["source"] == "FigureQA"
    assert conv.items[1].answer_type == "number"


def test_hand_scored_rows(load_rows):
    ad = get_adapter("mathvista")
    conv = ad.rows_to_items(load_rows("mathvista"), source="fixture")
    records = [ad.grade(it, RESPONSES[it.id]) for it in conv.items]
    assert [r["correct"] for r in records] == [True, True, True, True, False, False]
    summary = ad.aggregate(records, skipped=conv.skipped)
    assert summary["accuracy"] == 4 / 7  # rows 1-4 right; the skipped row 7 counts as wrong among all 7
    assert summary["no_answer"] == 1  # row 5
    assert summary["judge_unavailable"] == 4  # the free-form rows 2, 3, 4, 6 are judge-scored officially
    assert summary["by_question_type"]["multi_choice"]["accuracy"] == 0.5  # row 1 right, row 5 wrong
    assert summary["by_question_type"]["free_form"]["accuracy"] == 0.75  # rows 2, 3, 4 right; 6 wrong
    assert summary["by_task"]["math word problem"] == {"n": 2, "accuracy": 1.0}  # rows 2, 3
    assert summary["by_skill"]["arithmetic reasoning"] == {"n": 3, "accuracy": 1.0}  # rows 1, 2, 3


def test_a_judge_overrides_the_rule_for_free_form_rows(load_rows):
    ad = get_adapter("mathvista")
    item = ad.rows_to_items(load_rows("mathvista"), source="fixture").items[5]  # gold 3
    record = ad.grade(item, "Counting them all, I think it is four.", judge=lambda it, resp: True)
    assert record["judge"] == "used" and record["correct"] is True and record["no_answer"] is True
    choice = ad.rows_to_items(load_rows("mathvista"), source="fixture").items[0]
    assert ad.grade(choice, "\\boxed{A}", judge=lambda it, resp: True)["judge"] == "not_needed"


def test_a_number_too_long_for_a_float_is_no_number(load_rows):
    """400 nines parse to inf, and MathVista's integer rule would raise on int(inf)."""
    ad = get_adapter("mathvista")
    item = ad.rows_to_items(load_rows("mathvista"), source="fixture").items[1]  # integer gold 14
    record = ad.grade(item, "\\boxed{" + "9" * 400 + "}")
    assert (record["extracted"], record["correct"]) == ("9" * 400, False)
