"""The held-out record kept with a checkpoint: used only on the weights, items and settings it measured."""

import json

import pytest

from capcurriculum.sampling.batching import Item
from capcurriculum.training.held_out_record import FILE, fingerprint_items, load_record, save_record

ROWS = [{"id": f"q{i}", "mode": "text_math", "correct": i % 2 == 0, "pred": str(i), "response": "..."} for i in range(5)]
SETTINGS = {"n": None, "caption_n": 3, "lean": True, "threads": 2}


@pytest.fixture
def checkpoint(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"weights")
    items = {"text_math": [Item({"id": r["id"], "question": "1+1?", "answer": "2"}, "text_math") for r in ROWS]}
    sha = fingerprint_items(items)
    save_record(tmp_path, sha, SETTINGS, {"text_math/acc": 0.6}, {"text_math": [r["correct"] for r in ROWS]}, ROWS,
                rows_per_mode=3)
    return tmp_path, sha, items


def test_a_record_is_read_back_on_the_same_weights_items_and_settings(checkpoint):
    path, sha, _ = checkpoint
    record = load_record(path, sha, SETTINGS)
    assert record["metrics"] == {"text_math/acc": 0.6} and len(record["flags"]["text_math"]) == 5
    assert record["rows"] == [{k: r[k] for k in ("id", "mode", "correct", "pred")} for r in ROWS[:3]]


def test_other_weights_items_or_settings_are_not_matched(checkpoint):
    path, sha, items = checkpoint
    assert load_record(path, sha, {**SETTINGS, "threads": 1}) is None
    items["text_math"][0].example["answer"] = "3"
    assert load_record(path, fingerprint_items(items), SETTINGS) is None
    (path / "model.safetensors").write_bytes(b"trained further")
    assert load_record(path, sha, SETTINGS) is None
    (path / "model.safetensors").unlink()  # a hub reference: no weights to match
    assert load_record(path, sha, SETTINGS) is None


def test_a_damaged_record_names_its_file(checkpoint):
    path, sha, _ = checkpoint
    record = json.loads((path / FILE).read_text())
    del record["flags"]
    (path / FILE).write_text(json.dumps(record))
    with pytest.raises(ValueError, match=r"held_out_eval.json: missing flags"):
        load_record(path, sha, SETTINGS)
