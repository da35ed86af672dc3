"""build_set: normalised, deduplicated, split, deterministic sets with their images beside them."""

import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from capcurriculum.data.sets import build_set, normalise_question, read_set, set_paths
from capcurriculum.data.sources import SourceError
from capcurriculum.io import read_json, read_jsonl
from capcurriculum.world import WorldConfig, build_world

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "sources"
ORZ = {"adapter": "orz_math", "path": str(FIXTURES / "orz_math")}
VLAA = {"adapter": "vlaa_thinking", "path": str(FIXTURES / "vlaa_thinking")}
GEO = {"adapter": "geometry3k", "path": str(FIXTURES / "geometry3k")}


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_normalise_question():
    assert normalise_question("  What is\n$17 + 25$? ") == normalise_question("what IS $17 + 25$?")
    assert normalise_question("<image>Find x.") == "find x."


def test_vis_set_files_images_and_stats(tmp_path):
    stats = build_set("vis", [VLAA, GEO], tmp_path, seed=0, val_fraction=0.25)
    paths = set_paths(tmp_path, "vis")
    train, val = read_jsonl(paths["train"]), read_jsonl(paths["val"])
    assert (stats["train"], stats["val"]) == (len(train), len(val)) == (5, 2)
    assert stats["duplicates"] == 1 and stats["sources"]["vlaa_thinking"]["duplicates"] == 1
    assert stats["sources"]["vlaa_thinking"]["duplicate_examples"][0].endswith(
        "[12]: clevr_math-CLEVR_train_000001b.png")
    assert stats["skipped"] == {"missing_answer": 1, "missing_image": 2, "missing_question": 1,
                                "unparseable_answer": 3}
    assert sum(stats["by_source"]["train"].values()) + sum(stats["by_source"]["val"].values()) == 7
    assert stats["answer_types"] == {"choice": 2, "number": 3, "text": 2}
    assert read_json(paths["stats"]) == json.loads(json.dumps(stats))
    ids = [r["id"] for r in train + val]
    assert len(set(ids)) == len(ids) == 7
    for row in train + val:
        img = paths["images"] / row["image"]
        assert img.is_file() and row["capability"] == "vis"
        assert row["image"].split("/", 1)[0] in ("vlaa_thinking", "geometry3k")
    geo = next(r for r in train + val if r["id"] == "geometry3k-test-00000")
    assert geo["image"] == "geometry3k/test-00000.png"
    assert (paths["images"] / geo["image"]).read_bytes()[:4] == b"\x89PNG"
    clevr = next(r for r in train + val if r["id"] == "clevr_math-CLEVR_train_000001.png")
    assert (paths["images"] / clevr["image"]).read_bytes() == (
        FIXTURES / "vlaa_thinking" / "images" / "clevr_math" / "CLEVR_train_000001.png").read_bytes()
    assert stats["images"] == len(_tree(paths["images"])) == 7


def test_same_seed_same_bytes_other_seed_other_order(tmp_path):
    a = build_set("vis", [VLAA, GEO], tmp_path / "a", seed=3, val_fraction=0.25)
    b = build_set("vis", [VLAA, GEO], tmp_path / "b", seed=3, val_fraction=0.25)
    assert a == b and _tree(tmp_path / "a") == _tree(tmp_path / "b")
    build_set("vis", [VLAA, GEO], tmp_path / "c", seed=4, val_fraction=0.25)
    order = {k: [r["id"] for r in read_jsonl(tmp_path / k / "vis_train.jsonl")
                 + read_jsonl(tmp_path / k / "vis_val.jsonl")] for k in "ac"}
    assert sorted(order["a"]) == sorted(order["c"]) and order["a"] != order["c"]


def test_dedupe_within_and_across_sources(tmp_path):
    stats = build_set("text", [ORZ, {**ORZ, "name": "orz_again"}], tmp_path, seed=0, val_fraction=0)
    assert stats["sources"]["orz_math"]["duplicates"] == 1  # 'what is   $17 + 25$?' again
    assert stats["sources"]["orz_again"]["duplicates"] == 5 and stats["sources"]["orz_again"]["used"] == 0
    assert stats["train"] == 4 and stats["val"] == 0
    assert stats["files"]["images"] is None and not set_paths(tmp_path, "text")["images"].exists()
    # same question, different image: both kept
    build_set("v", [VLAA], tmp_path, val_fraction=0)
    vis = [r["question"] for r in read_jsonl(tmp_path / "v_train.jsonl")]
    assert vis.count("Subtract all red cubes. How many objects are left?") == 2


def test_caps_and_capability(tmp_path):
    stats = build_set("vis", [{**VLAA, "max_items": 2}, GEO], tmp_path, seed=0, val_fraction=0,
                      capability="vis")
    assert stats["sources"]["vlaa_thinking"]["capped"] == 3 and stats["sources"]["vlaa_thinking"]["used"] == 2
    assert stats["train"] == 4
    stats = build_set("vis", [VLAA, GEO], tmp_path, seed=0, val_fraction=0.5, max_items=3)
    assert (stats["train"], stats["val"], stats["capped"]) == (1, 2, 4)  # 7 kept, 3 left, half (rounded up) val
    text = build_set("text", [ORZ], tmp_path, capability="text", val_fraction=0)
    assert text["with_difficulty"] == 0
    assert {r["capability"] for r in read_jsonl(tmp_path / "text_train.jsonl")} == {"text"}


def test_validation_only_set(tmp_path):
    stats = build_set("valid", [GEO], tmp_path, val_fraction=1.0)
    assert (stats["train"], stats["val"]) == (0, 2)
    assert read_jsonl(tmp_path / "valid_train.jsonl") == []


def test_accepts_omegaconf_and_round_trips(tmp_path):
    cfg = OmegaConf.create({"text": [ORZ]})
    build_set("text", cfg.text, tmp_path, seed=1, val_fraction=0.2)
    examples = read_set(tmp_path, "text", "train") + read_set(tmp_path, "text", "val")
    assert sorted(e.id for e in examples) == ["orz_math-00000", "orz_math-00001", "orz_math-00002",
                                              "orz_math-00007"]
    assert next(e for e in examples if e.id == "orz_math-00002").choices == ["4", "6", "7", "9"]


def test_bad_config_and_bad_source_write_nothing(tmp_path):
    with pytest.raises(ValueError, match="val_fraction must be in"):
        build_set("text", [ORZ], tmp_path, val_fraction=1.5)
    with pytest.raises(ValueError, match="source name\\(s\\) orz_math repeat"):
        build_set("text", [ORZ, ORZ], tmp_path)
    with pytest.raises(ValueError, match="non-empty list of sources"):
        build_set("text", [], tmp_path)
    bad = {**VLAA, "columns": {"question": "prompt"}}
    with pytest.raises(SourceError, match="source 'vlaa_thinking'.*'prompt'"):
        build_set("vis", [GEO, bad], tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_stale_images_are_removed(tmp_path):
    build_set("s", [GEO], tmp_path, val_fraction=0)
    assert set_paths(tmp_path, "s")["images"].is_dir()
    build_set("s", [ORZ], tmp_path, val_fraction=0)
    assert not set_paths(tmp_path, "s")["images"].exists()


# ---------------------------------------------------------------------------- tiny profile


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("world")
    cfg = WorldConfig(
        scenes={"pretrain": 0, "train": 4, "test": 2},
        text_math={"pretrain": 0, "train": 6, "test": 2},
        vis_math={"pretrain": 0, "train": 5, "test": 2},
        perception_per_scene=1,
    )
    build_world(cfg, root / "raw", root / "world", progress=False)
    return root / "world"


def test_world_sets_pass_through(world, tmp_path):
    text_cfg = [{"adapter": "world", "path": str(world), "set": "text_math", "split": "train"}]
    vis_cfg = [{"adapter": "world", "path": str(world), "set": "vis_math", "split": "train"}]
    text = build_set("text", text_cfg, tmp_path, seed=0, val_fraction=0.2)
    vis = build_set("vis", vis_cfg, tmp_path, seed=0, val_fraction=0.2)
    src = {r["id"]: r for r in read_jsonl(world / "text_math_train.jsonl")}
    out = read_jsonl(tmp_path / "text_train.jsonl") + read_jsonl(tmp_path / "text_val.jsonl")
    assert len(out) == text["train"] + text["val"] == len(src) - text["duplicates"]
    assert all(r == src[r["id"]] for r in out)  # unchanged, text-only
    src = {r["id"]: r for r in read_jsonl(world / "vis_math_train.jsonl")}
    out = read_jsonl(tmp_path / "vis_train.jsonl") + read_jsonl(tmp_path / "vis_val.jsonl")
    assert (vis["train"], vis["val"], vis["images"]) == (4, 1, 5)
    for r in out:
        assert r["image"] == f"world/{src[r['id']]['image']}"
        assert (tmp_path / "vis_images" / r["image"]).read_bytes() == (
            world / "vis_images" / src[r["id"]]["image"]).read_bytes()
        assert {k: v for k, v in r.items() if k != "image"} == {k: v for k, v in src[r["id"]].items()
                                                                if k != "image"}
        assert r["difficulty"] in (1, 2, 3)
