"""The built world: DOCCI's layout, byte-for-byte determinism, consistent sets, atomic output."""

import json
from pathlib import Path

import pytest

from capcurriculum.io import read_json, read_jsonl
from capcurriculum.world import WorldConfig, build, build_world

DOCCI_FIELDS = {"example_id", "split", "image_file", "description"}
SPLITS = ("pretrain", "train", "test")


def _config(seed=0):
    return WorldConfig(
        seed=seed,
        scenes={"pretrain": 6, "train": 8, "test": 4},
        text_math={"pretrain": 5, "train": 4, "test": 3},
        vis_math={"pretrain": 5, "train": 4, "test": 3},
        perception_per_scene=4,
    )


def _build(root: Path, seed=0):
    metrics = build_world(_config(seed), root / "raw", root / "sets", progress=False)
    return root / "raw", root / "sets", metrics


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    return _build(tmp_path_factory.mktemp("world"))


def test_raw_corpus_has_docci_layout(built):
    raw, _, _ = built
    rows = read_jsonl(raw / "docci_descriptions.jsonlines")
    assert all(set(r) == DOCCI_FIELDS for r in rows)
    assert [sum(r["split"] == s for r in rows) for s in SPLITS] == [6, 8, 4]
    assert len({r["example_id"] for r in rows}) == len(rows)
    assert "world_train_000003" in {r["example_id"] for r in rows}
    for r in rows:
        assert (raw / "images" / r["image_file"]).read_bytes()[:3] == b"\xff\xd8\xff"  # JPEG
        assert len(r["description"].split()) > 30
    assert len(list((raw / "images").iterdir())) == len(rows)
    truth = read_jsonl(raw / "ground_truth.jsonl")
    assert [t["example_id"] for t in truth] == [r["example_id"] for r in rows]
    assert all(t["image_size"] == 96 and t["grid"] == 3 and 2 <= len(t["objects"]) <= 5 for t in truth)
    assert set(truth[0]["objects"][0]) == {"shape", "color", "size", "row", "col"}


def test_sets_reference_existing_images_and_match_manifest(built):
    raw, sets, metrics = built
    manifest = read_json(sets / "manifest.json")
    assert manifest["config"]["seed"] == 0
    expected = {
        f"{kind}_{split}.jsonl" for kind in ("perception", "text_math", "vis_math") for split in SPLITS
    }
    assert set(manifest["files"]) == expected
    for name, n in manifest["files"].items():
        rows = read_jsonl(sets / name)
        assert len(rows) == n
        kind, split = name.removesuffix(".jsonl").rsplit("_", 1)
        assert metrics[f"{kind}.{split}"] == n
        for row in rows:
            if kind == "perception":
                assert row["image"].startswith(f"world_{split}_") and (raw / "images" / row["image"]).exists()
            elif kind == "vis_math":
                assert (
                    row["image"].startswith(f"vis_{split}_") and (sets / "vis_images" / row["image"]).exists()
                )
            else:
                assert row["image"] is None
    assert manifest["files"]["perception_train.jsonl"] == 8 * 4
    assert manifest["files"]["vis_math_pretrain.jsonl"] == 5
    assert len(list((sets / "vis_images").iterdir())) == 12
    assert metrics["images"] == 18 + 12


def test_same_seed_same_bytes_and_other_seed_differs(built, tmp_path):
    raw, sets, _ = built
    raw2, sets2, _ = _build(tmp_path / "again")
    assert _tree(raw) == _tree(raw2)
    assert _tree(sets) == _tree(sets2)
    raw3, sets3, _ = _build(tmp_path / "other", seed=1)
    a, c = _tree(raw), _tree(raw3)
    assert a["docci_descriptions.jsonlines"] != c["docci_descriptions.jsonlines"]
    images = [name for name in a if name.startswith("images/")]
    assert sum(a[n] != c[n] for n in images) > 0.8 * len(images)
    assert _tree(sets)["text_math_train.jsonl"] != _tree(sets3)["text_math_train.jsonl"]


def test_a_larger_test_split_keeps_the_items_and_images_it_had(built, tmp_path):
    # Each split draws from its own stream, so held-out sets can grow (the tiny profile's did: 400 -> 1,600
    # scenes, 400 -> 2,000 math items) while every model's data and the old test items stay the same.
    raw, sets, _ = built
    cfg = _config()
    cfg.scenes["test"], cfg.text_math["test"], cfg.vis_math["test"] = 9, 7, 6
    build_world(cfg, tmp_path / "raw", tmp_path / "sets", progress=False)
    old, new = _tree(raw) | _tree(sets), _tree(tmp_path / "raw") | _tree(tmp_path / "sets")
    assert {name for name in new if name not in old and name.startswith(("images/", "vis_images/"))}
    for name, data in old.items():
        if name.endswith("_test.jsonl") or name in ("docci_descriptions.jsonlines", "ground_truth.jsonl"):
            lines = data.decode().splitlines()
            assert new[name].decode().splitlines()[:len(lines)] == lines, name
            assert len(new[name].decode().splitlines()) > len(lines), name
        elif name != "manifest.json":
            assert new[name] == data, name


def test_a_crash_leaves_nothing_half_written(tmp_path, monkeypatch):
    raw, sets, _ = _build(tmp_path)
    before = _tree(tmp_path)

    def boom(*args, **kwargs):
        raise RuntimeError("killed mid-build")

    monkeypatch.setattr(build, "vis_math", boom)
    with pytest.raises(RuntimeError):
        build_world(_config(seed=5), raw, sets, progress=False)
    assert _tree(tmp_path) == before  # the old outputs stand, no temporary left behind
    assert sorted(p.name for p in tmp_path.iterdir()) == ["raw", "sets"]


def test_rebuild_replaces_previous_output(tmp_path):
    raw, sets, _ = _build(tmp_path)
    (raw / "stale.txt").write_text("old")
    build_world(_config(seed=1), raw, sets, progress=False)
    assert not (raw / "stale.txt").exists()
    assert json.loads((sets / "manifest.json").read_text())["config"]["seed"] == 1
