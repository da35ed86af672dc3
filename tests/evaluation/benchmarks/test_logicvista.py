from capcurriculum.evaluation.benchmarks import get_adapter

RESPONSES = {
    "0": "\\boxed{C}",  # gold C: right
    "1": "\\boxed{C, A}",  # gold "A, C": same letter set: right
    "2": "\\boxed{A}",  # gold "A, C": one letter short: wrong
    "3": "Hmm, hard to say.",  # no answer: wrong
}


def test_hand_scored_rows_and_skills(load_rows):
    ad = get_adapter("logicvista")
    conv = ad.rows_to_items(load_rows("logicvista"), source="fixture")
    assert [it.gold for it in conv.items] == ["C", "AC", "AC", "B"]
    assert [(s.row_id, s.field) for s in conv.skipped] == [("4", "image")]
    records = [ad.grade(it, RESPONSES[it.id]) for it in conv.items]
    s = ad.aggregate(records, skipped=conv.skipped)
    assert s["accuracy"] == 2 / 5  # rows 0, 1 of 5: the imageless row 4 counts as wrong
    assert s["no_answer"] == 1  # row 3
    assert s["judge_unavailable"] == 4  # VLMEvalKit judges every LogicVista reply
    # Rows 1, 2 are both deductive and spatial; one of the two is right.
    assert s["by_skill"] == {"deductive": {"n": 2, "accuracy": 0.5}, "inductive": {"n": 1, "accuracy": 1.0},
                             "numerical": {"n": 1, "accuracy": 0.0}, "spatial": {"n": 2, "accuracy": 0.5}}
