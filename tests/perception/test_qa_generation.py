import pytest

from capcurriculum.data.docci import DocciRecord
from capcurriculum.perception.qa_generation import CandidateCollector, load_qa_prompt, parse_generation, validate_item

REC = DocciRecord("img1", "train", "img1.jpg", "A red circle.", None)


@pytest.mark.parametrize("text, n", [
    ('[{"question": "What color is the circle?", "answer": "red"}]', 1),
    ('Sure! ```json\n[{"question": "Q1?", "answer": "2"}, {"question": "Q2?", "answer": "no"}]\n``` done', 2),
    ('Here: [{"question": "Q?", "answer": "blue"}] hope it helps', 1),
    ('{"questions": [{"question": "Q?", "answer": "3"}]}', 1),
    ("Q: How many circles?\nA: 2\nQ: Is it red?\nA: yes", 2),
])
def test_parser_reads_json_fenced_json_and_q_a_lines(text, n):
    out = parse_generation(text)
    assert out.error is None and len(out.items) == n


def test_a_caption_with_nothing_to_ask_is_counted():
    c = CandidateCollector("short", 3)
    c.add_output(REC, "[]", None, "llm")
    assert c.metrics()["dropped/no_questions"] == 1 and c.examples == [] and c.unparseable == []


@pytest.mark.parametrize("text", ["", "   ", "red red red circle <think> box", "[1, 2, 3]", '[{"question": '])
def test_garbage_is_an_error_not_an_exception(text):
    out = parse_generation(text)
    assert out.items == [] and out.error


@pytest.mark.parametrize("item, why", [
    ({"answer": "red"}, "missing_question"),
    ({"question": "Q?", "answer": ""}, "missing_answer"),
    ({"question": "Q?", "answer": True}, "missing_answer"),
    ({"question": "Q?", "answer": "a red car parked by the road"}, "answer_too_long"),
])
def test_short_format_rules(item, why):
    assert validate_item(item, "short", max_words=3) == (None, why)


def test_short_answers_are_normalised_and_typed():
    clean, why = validate_item({"question": "How many?", "answer": "Three.", "type": "count"}, "short", 3)
    assert why is None and clean["answer"] == "3" and clean["answer_type"] == "number"


@pytest.mark.parametrize("item, why", [
    ({"question": "Q?", "answer": "B", "choices": ["a", "b", "c"]}, "bad_choices"),
    ({"question": "Q?", "answer": "E", "choices": ["a", "b", "c", "d"]}, "bad_answer_letter"),
    ({"question": "Q?", "answer": "A", "choices": ["a", "A", "c", "d"]}, "duplicate_choices"),
])
def test_mcq_rules(item, why):
    assert validate_item(item, "mcq", 3) == (None, why)


def test_collector_counts_every_drop_and_keeps_unparseable_outputs():
    c = CandidateCollector("short", max_words=3)
    c.add_output(REC, '[{"question": "What color?", "answer": "red"}, {"question": "what color?", "answer": "red"}]',
                 None, "llm")
    c.add_output(REC, "blah", None, "llm")
    c.add_output(REC, None, "timeout", "llm")
    c.add_item(REC, {"question": "Is it big?", "answer": "a very big one indeed"}, "template")
    m = c.metrics()
    assert m["candidates"] == 1 and m["dropped/duplicate"] == 1 and m["dropped/unparseable_output"] == 1
    assert m["dropped/generation_error"] == 1 and m["dropped/answer_too_long"] == 1
    assert [u["output"] for u in c.unparseable] == ["blah", None]
    ex = c.examples[0]
    assert ex.image == "img1.jpg" and ex.meta["scene_id"] == "img1" and ex.capability == "perc"


def test_mcq_question_lists_its_options():
    c = CandidateCollector("mcq", 3)
    c.add_item(REC, {"question": "Color?", "answer": "(b)", "choices": ["blue", "red", "green", "white"]}, "llm")
    ex = c.examples[0]
    assert ex.answer == "B" and ex.answer_type == "choice" and ex.question.endswith("D. white")


def test_prompts_live_in_files_and_format():
    for name in ("qa_short", "qa_mcq"):
        text = load_qa_prompt(name).format(caption="CAPTION", n=3, max_words=2)
        assert "CAPTION" in text and "JSON" in text
