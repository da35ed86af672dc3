"""The difficulty curriculum: pass rates of the base policy, cached by a node, order a stage easy -> hard."""

import json

import pytest
import torch
from omegaconf import OmegaConf

from capcurriculum.config import compose
from capcurriculum.data.sets import build_set
from capcurriculum.io import DataError, read_jsonl, write_jsonl
from capcurriculum.models.tiny import save_pretrained_dir
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.world_data import WorldData
from capcurriculum.sampling.world_data import load_set_items
from capcurriculum.training.difficulty import (
    keep_signal,
    load_pass_rates,
    order_items,
    pass_rates,
    write_pass_rates,
)

from .test_curriculum import ROOT


def _items(levels):
    return [Item({"id": f"q{i}", "answer": "1", "difficulty": d}, "text_math") for i, d in enumerate(levels)]


def test_levels_order_easy_to_hard_with_unlevelled_items_last_and_ties_stable():
    items = _items([3, None, 1, 3, 2])
    assert [it.example["id"] for it in order_items(items, "easy_to_hard")] == ["q2", "q4", "q0", "q3", "q1"]
    assert order_items(items, "none") is items


def test_pass_rates_order_high_rate_first_and_a_missing_rate_is_an_error():
    items = _items([None] * 4)
    rates = {"q0": 0.25, "q1": 1.0, "q2": 0.0, "q3": 0.25}
    assert [it.example["id"] for it in order_items(items, "pass_rate", rates)] == ["q1", "q0", "q3", "q2"]
    with pytest.raises(ValueError, match="1 items have no cached pass rate \\(first: q3\\)"):
        order_items(items, "pass_rate", {k: v for k, v in rates.items() if k != "q3"})


def test_signal_only_keeps_the_items_the_base_sometimes_solves():
    items = _items([None] * 4)
    kept, dropped = keep_signal(items, {"q0": 0.0, "q1": 0.5, "q2": 1.0, "q3": 0.125}, "train_2")
    assert [it.example["id"] for it in kept] == ["q1", "q3"] and dropped == 2
    with pytest.raises(ValueError, match="^train.signal_only: 1 items have no cached pass rate"):
        keep_signal(items, {"q0": 0.0, "q1": 0.5, "q2": 1.0}, "train_2")


def test_a_malformed_pass_rate_line_names_the_file_and_line(tmp_path):
    path = tmp_path / "text.jsonl"
    write_jsonl(path, [{"id": "a", "pass_rate": 0.5}, {"id": "b", "pass_rate": 1.5}])
    with pytest.raises(DataError, match="text.jsonl:2: expected"):
        load_pass_rates(path)
    with pytest.raises(FileNotFoundError, match="the `difficulty` node writes them"):
        load_pass_rates(tmp_path / "vis.jsonl")


def test_pass_rates_are_seeded_fractions_of_the_samples(world, processor, model):
    items = WorldData(*world).items("text_math", "text_math", "test", limit=6)
    torch.manual_seed(0)
    a = pass_rates(model, processor, items, group_size=4, max_new_tokens=8, batch_size=4)
    torch.manual_seed(0)
    b = pass_rates(model, processor, items, group_size=4, max_new_tokens=8, batch_size=4)
    assert a == b and [r["id"] for r in a] == [it.example["id"] for it in items]
    assert all(r["n"] == 4 and r["pass_rate"] in (0, 0.25, 0.5, 0.75, 1) for r in a)


@pytest.fixture
def sets_env(tmp_path, world, processor, model):
    raw, world_dir = world
    sets = tmp_path / "sets"
    write_jsonl(sets / "perc" / "perc_train.jsonl", read_jsonl(world_dir / "perception_pretrain.jsonl")[:5])
    for name, world_set in (("text", "text_math"), ("vis", "vis_math")):
        build_set(name, [{"adapter": "world", "path": str(world_dir), "set": world_set, "split": "pretrain"}],
                  sets / name, seed=0, val_fraction=0.0, max_items=6, capability=name)
    policy = save_pretrained_dir(model, processor, tmp_path / "policy")
    return raw, sets, policy, tmp_path


def test_the_node_caches_every_set_only_when_asked_and_a_stage_orders_by_it(sets_env):
    raw, sets, policy, tmp = sets_env
    cfg = compose(["profile=smoke"], config_dir=ROOT / "conf")
    out = tmp / "difficulty"
    m = write_pass_rates(cfg, policy_dir=policy, sets_dir=sets, raw_dir=raw, out_dir=out)
    assert m == {"computed": 0.0} and sorted(p.name for p in out.iterdir()) == ["status.json"]

    cfg = OmegaConf.merge(cfg, {"train": {"signal_only": True}})  # either switch asks for the rates
    m = write_pass_rates(cfg, policy_dir=policy, sets_dir=sets, raw_dir=raw, out_dir=out)
    assert sorted(p.name for p in out.iterdir()) == ["perc.jsonl", "status.json", "text.jsonl", "vis.jsonl"]
    assert json.loads((out / "status.json").read_text())["computed"] is True
    assert not out.with_name("difficulty.tmp").exists()
    for name in ("perc", "text", "vis"):
        items, _ = load_set_items(name, sets, raw)
        rates = load_pass_rates(out / f"{name}.jsonl")
        assert set(rates) == {it.example["id"] for it in items} and m[f"{name}/items"] == len(items)
        assert 0 <= m[f"{name}/never_solved"] <= 1
        ordered = order_items(items, "pass_rate", rates)
        assert [rates[it.example["id"]] for it in ordered] == sorted(rates.values(), reverse=True)
