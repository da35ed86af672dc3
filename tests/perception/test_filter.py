from pathlib import Path

import pytest

from capcurriculum.generation import Result
from capcurriculum.perception.filter import filter_requests, judge_model, split_kept, verdict_counts


def ex(i, answer="red", scene=None):
    return {"id": f"q{i}", "question": "What color?", "answer": answer, "answer_type": "text",
            "image": f"s{i}.jpg", "meta": {"scene_id": scene or f"s{i}"}}


def res(i, image, caption):
    return [Result(f"q{i}|image", texts=[image]) if image is not None else Result.failed(f"q{i}|image", "boom"),
            Result(f"q{i}|caption", texts=[caption])]


def test_keep_iff_image_wrong_and_caption_right():
    examples = [ex(0), ex(1), ex(2), ex(3), ex(4)]
    results = (res(0, "\\boxed{blue}", "\\boxed{red}")      # the paper's case: kept
               + res(1, "\\boxed{red}", "\\boxed{red}")     # image right: not a perception gap
               + res(2, "\\boxed{blue}", "\\boxed{green}")  # caption wrong: not answerable
               + res(3, None, "<think>red</think> \\boxed{Red.}")  # image request failed
               + res(4, "garbage without a box at all here", "red"))  # unparseable image answer
    verdicts = judge_model(examples, results, "m")
    # q3's image request failed (say, the image did not decode): no evidence, so not kept.
    assert [v["keep"] for v in verdicts] == [True, False, False, False, True]
    assert verdicts[3]["image_error"] == "boom" and verdicts[4]["image_pred"] is None
    counts = verdict_counts(verdicts, "m")
    assert counts["filter/m/kept"] == 2 and counts["filter/m/removed_by_image_right"] == 1
    assert counts["filter/m/failed"] == 1
    assert counts["filter/m/removed_by_caption_wrong_only"] == 1 and counts["filter/m/image_unanswered"] == 2


def test_both_paths_are_asked_per_candidate():
    reqs = filter_requests([ex(0)], {"s0": "A red circle."}, Path("/imgs"))
    assert [r.id for r in reqs] == ["q0|image", "q0|caption"]
    image_parts = [p for p in reqs[0].messages[0]["content"] if p["type"] == "image"]
    assert image_parts[0]["image"] == "/imgs/s0.jpg"
    assert "A red circle." in str(reqs[1].messages) and "image" not in str(reqs[1].messages[0]["content"][0]["type"])


def test_split_is_by_scene_and_seeded():
    examples = [ex(i, scene=f"s{i // 3}") for i in range(60)]
    a = split_kept(examples, [0.85, 0.05, 0.10], seed=1)
    assert split_kept(examples, [0.85, 0.05, 0.10], seed=1) == a
    scenes = {k: {e["meta"]["scene_id"] for e in v} for k, v in a.items()}
    assert not (scenes["train"] & scenes["test"]) and sum(map(len, a.values())) == 60
    with pytest.raises(ValueError, match="perception.filter.split"):
        split_kept(examples, [0.5, 0.5], seed=1)
