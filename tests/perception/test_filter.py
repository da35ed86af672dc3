import contextlib
import hashlib
from pathlib import Path

import pytest

from capcurriculum.generation import Result
from capcurriculum.perception.filter import (
    VERDICT_COUNTS,
    ask_filter_models,
    filter_requests,
    judge_model,
    split_kept,
    verdict_counts,
)


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


def test_a_path_not_asked_is_skipped_not_wrong():
    verdicts = judge_model([ex(0), ex(1)], [Result("q0|image", texts=["\\boxed{red}"]),
                                            Result("q1|image", texts=["\\boxed{blue}"])], "m")
    assert [v["caption_skipped"] for v in verdicts] == [True, True]
    assert [v["keep"] for v in verdicts] == [False, False]   # no caption answer: never kept
    counts = verdict_counts(verdicts, "m")
    assert counts["filter/m/caption_asked"] == 0 and counts["filter/m/caption_wrong"] == 0
    assert counts["filter/m/caption_unanswered"] == 0 and counts["filter/m/removed_by_image_right"] == 1
    assert verdict_counts([], "m") == {f"filter/m/{k}": 0 for k in (*VERDICT_COUNTS, "n")}  # asked nothing
    with pytest.raises(ValueError, match="no image-path result for candidate q1"):
        judge_model([ex(1)], [Result("q1|caption", texts=["\\boxed{red}"])], "m")


class ScriptedFilterModel:
    """A filter model whose every answer is fixed by (model, candidate, path): right or wrong by a hash.
    It records what it was asked, so a test can see what the cascade saved."""

    def __init__(self, name: str, right_rate: dict[str, float], asked: list):
        self.name, self.right_rate, self.asked = name, right_rate, asked

    def generate(self, requests, sampling=None):
        out = []
        for r in requests:
            self.asked.append((self.name, r.id))
            qid, path = r.id.split("|")
            h = int(hashlib.sha256(f"{self.name}/{r.id}".encode()).hexdigest(), 16) % 1000 / 1000
            out.append(Result(r.id, texts=["\\boxed{red}" if h < self.right_rate[path] else "\\boxed{blue}"]))
        return out


def test_cascade_keeps_the_same_set_and_asks_less():
    examples = [ex(i) for i in range(200)]
    captions = {f"s{i}": "A red circle." for i in range(200)}
    rates = {"small": {"image": 0.5, "caption": 0.6}, "large": {"image": 0.6, "caption": 0.7}}
    runs = {}
    for cascade in (False, True):
        asked = []
        def open_model(role):
            return contextlib.nullcontext(ScriptedFilterModel(role, rates[role], asked))
        records, keep = ask_filter_models(examples, captions, Path("/imgs"), ["small", "large"], open_model,
                                          cascade=cascade)
        runs[cascade] = records, keep, asked
    (full, keep_full, asked_full), (casc, keep_casc, asked_casc) = runs[False], runs[True]
    assert keep_casc == keep_full and 10 < sum(keep_full.values()) < 100
    assert len(asked_full) == 2 * 2 * 200 and len(asked_casc) < 0.6 * len(asked_full)
    assert len(asked_casc) == sum(1 + (not r["caption_skipped"]) for r in casc)
    assert set(asked_casc) < set(asked_full)
    small_kept = {r["id"] for r in casc if r["model"] == "small" and r["keep"]}
    assert {qid.split("|")[0] for m, qid in asked_casc if m == "large"} == small_kept
    # the caption was asked only after a wrong image answer, and each asked verdict equals the full run's
    assert all(not r["image_correct"] for r in casc if not r["caption_skipped"])
    by_key = {(r["model"], r["id"]): r for r in full}
    for r in casc:
        same = by_key[(r["model"], r["id"])]
        assert r["image_correct"] == same["image_correct"] and r["keep"] == same["keep"]
