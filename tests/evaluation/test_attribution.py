"""Error attribution: exact labels in a small built world, the judge's parser, and the summary."""

from __future__ import annotations

import re

import pytest

from capcurriculum.evaluation.attribution import (
    Label,
    attribution_summary,
    exact_attribution,
    parse_attribution,
    parse_response,
    vis_scenes,
)
from capcurriculum.io import DataError, read_jsonl
from capcurriculum.prompts import target_text
from capcurriculum.world.build import build_world, ground_truth_scenes
from capcurriculum.world.scene import WorldConfig


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(seed=3, scenes={"pretrain": 2, "train": 2, "test": 6},
                      text_math={"pretrain": 1, "train": 1, "test": 1},
                      vis_math={"pretrain": 2, "train": 2, "test": 24}, perception_per_scene=6)
    build_world(cfg, root / "raw", root / "world", progress=False)
    return root / "raw", root / "world"


@pytest.fixture(scope="module")
def vis(world):
    _, world_dir = world
    items = read_jsonl(world_dir / "vis_math_test.jsonl")
    return items, vis_scenes(world_dir, "test")


def with_answer(response: str, answer: str) -> str:
    return re.sub(r"\\boxed\{[^}]*\}", lambda _: f"\\boxed{{{answer}}}", response)


def miscount(response: str) -> str:
    """The response with its first perceived count raised by one (and nothing else changed)."""
    return re.sub(r"<think>(\d+)", lambda m: f"<think>{int(m.group(1)) + 1}", response, count=1)


def test_the_world_links_each_vis_item_to_its_replayed_scene(vis):
    items, scenes = vis
    assert len(items) == len(scenes) == 24
    for it in items:
        scene = scenes[it["meta"]["scene_id"]]
        assert scene.id == it["id"]
        facts = parse_response(target_text(it, "vis_math")).facts
        # The target states exactly the counts the question asks about, and the scene agrees.
        assert sorted(n for _, (n, _), _ in facts) == sorted(it["meta"]["counts"].values())
        for _, (n, group), _ in facts:
            assert scene.count(*group) == n


def test_a_world_built_otherwise_is_refused(world, tmp_path):
    import json
    import shutil

    _, world_dir = world
    copy = tmp_path / "world"
    shutil.copytree(world_dir, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["config"]["seed"] += 1
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match="vis_math_test.jsonl"):
        vis_scenes(copy, "test")


def test_the_correct_target_is_not_an_error(vis):
    items, scenes = vis
    for it in items:
        label = exact_attribution(it, scenes[it["id"]], target_text(it, "vis_math"))
        assert (label.label, label.status, label.correct) == (None, "ok", True), label


def test_a_wrong_count_is_a_perception_error(vis):
    items, scenes = vis
    for it in items:
        response = with_answer(miscount(target_text(it, "vis_math")), str(int(it["answer"]) + 1))
        label = exact_attribution(it, scenes[it["id"]], response)
        assert (label.label, label.status, label.correct) == ("perception", "ok", False), label
        assert "but there are" in label.detail
    # Without the scene, the item's meta["counts"] still decides.
    it = items[0]
    bad = with_answer(miscount(target_text(it, "vis_math")), "99")
    assert exact_attribution(it, None, bad).label == "perception"


def test_right_facts_and_a_wrong_answer_is_a_reasoning_error(vis):
    items, scenes = vis
    for it in items:
        response = with_answer(target_text(it, "vis_math"), str(int(it["answer"]) + 1))
        label = exact_attribution(it, scenes[it["id"]], response)
        assert (label.label, label.status, label.correct) == ("reasoning", "ok", False), label
    it = items[0]
    no_box = target_text(it, "vis_math").split("\\boxed")[0]
    assert exact_attribution(it, scenes[it["id"]], no_box).label == "reasoning"  # facts right, no answer


@pytest.mark.parametrize("response", [
    "I think it is 7. \\boxed{7}",  # no <think> block
    "<think>I see a few shapes and add them up.</think> \\boxed{7}",
    "<think>3 blobs; 3 + 4 = 7</think> \\boxed{7}",  # a group the world has no word for
    "<think>3 + 4 = 7</think> \\boxed{7}",  # steps but no facts
    "",
])
def test_garbage_is_unparseable(vis, response):
    items, scenes = vis
    label = exact_attribution(items[0], scenes[items[0]["id"]], response)
    assert (label.label, label.status) == (None, "unparseable")
    assert label.detail


def test_a_scene_that_is_not_the_items_is_refused(vis):
    items, scenes = vis
    with pytest.raises(ValueError, match=items[0]["id"]):
        exact_attribution(items[0], scenes[items[1]["id"]], target_text(items[0], "vis_math"))


def test_perception_items_check_objects_against_ground_truth(world):
    raw_dir, world_dir = world
    scenes = ground_truth_scenes(raw_dir)
    items = read_jsonl(world_dir / "perception_test.jsonl")
    for it in items:
        scene = scenes[it["meta"]["scene_id"]]
        assert exact_attribution(it, scene, target_text(it, "perc_image")).correct is True
    obj = next(it for it in items if it["meta"]["qtype"] == "color" and ":" in it["meta"]["trace"])
    scene = scenes[obj["meta"]["scene_id"]]
    true_color = obj["answer"]
    other = "green" if true_color != "green" else "red"
    response = f"<think>{obj['meta']['trace'].replace(true_color, other)}</think> \\boxed{{{other}}}"
    label = exact_attribution(obj, scene, response)
    assert label.label == "perception" and true_color in label.detail


def test_parse_response_reads_facts_steps_and_answer():
    trace = parse_response("<think>2 circles, 1 red shape; 2 × 1 = 2, 2 + 4 = 6</think> \\boxed{6}")
    assert [f[1] for f in trace.facts] == [(2, ("shape", "circle")), (1, ("color", "red"))]
    assert trace.steps == ["2 × 1 = 2", "2 + 4 = 6"] and trace.answer == "6"


@pytest.mark.parametrize("reply, expected", [
    ('{"label": "perception", "why": "it counted 4 cubes, there are 5"}', "perception"),
    ('```json\n{"label": "reasoning"}\n```', "reasoning"),
    ('Here is my analysis.\n{"error_type": "Perception error", "why": "misread the axis"}', "perception"),
    ("The model read every value correctly but subtracted wrongly.\n\nreasoning", "reasoning"),
    ("Perception", "perception"),
    ("**Reasoning.**", "reasoning"),
    ("This is a perception error.", "perception"),
    ("Final answer: perceptual", "perception"),
    ('{"label": "both"}', None),
    ("It could be perception or reasoning, hard to say.", None),
    ("I cannot tell.", None),
    ("", None),
])
def test_parse_attribution(reply, expected):
    assert parse_attribution(reply) == expected


P, R = Label("perception", "ok"), Label("reasoning", "ok")
OK = Label(None, "ok", correct=True)
UNPARSEABLE, UNAVAILABLE = Label(None, "unparseable"), Label(None, "unavailable")


def test_summary_agreement_and_confusion():
    exact = [P, P, P, R, R, P, UNPARSEABLE, OK, R]
    judge = [P, P, R, R, P, UNAVAILABLE, P, None, UNPARSEABLE]
    s = attribution_summary(exact, judge)
    assert s["n"] == 9
    assert s["exact"] == {"perception": 4, "reasoning": 3, "not_an_error": 1, "unparseable": 1,
                          "unavailable": 0, "perception_share": 4 / 7, "not_run": 0}
    assert s["judge"] == {"perception": 4, "reasoning": 2, "not_an_error": 0, "unparseable": 1,
                          "unavailable": 1, "perception_share": 4 / 6, "not_run": 1}
    assert s["confusion"] == {"perception": {"perception": 2, "reasoning": 1},
                              "reasoning": {"perception": 1, "reasoning": 1}}
    assert s["both_labelled"] == 5 and s["agreement"] == pytest.approx(3 / 5)


def test_summary_edge_cases():
    assert attribution_summary([], [])["agreement"] is None
    with pytest.raises(ValueError, match="aligned"):
        attribution_summary([P], [])
    with pytest.raises(ValueError):
        Label("perception", "unavailable")
