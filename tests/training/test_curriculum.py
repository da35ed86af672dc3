"""A curriculum stage end to end on a tiny model: GRPO and the caption-SFT variant, outputs and boundaries."""

import json
from pathlib import Path

import pytest
import torch
from omegaconf import OmegaConf

from capcurriculum.config import ConfigError, compose
from capcurriculum.io import read_jsonl, write_jsonl
from capcurriculum.models.tiny import save_pretrained_dir
from capcurriculum.sampling.world_data import load_set_items
from capcurriculum.training.curriculum import run_stage, stage_spec

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def stage_env(tmp_path, world, processor, model):
    raw, world_dir = world
    sets = tmp_path / "sets"
    rows = read_jsonl(world_dir / "perception_pretrain.jsonl")[:12]
    write_jsonl(sets / "perc" / "perc_train.jsonl", rows + [{**rows[0], "id": "bad", "answer": "see figure",
                                                             "answer_type": "number"}])
    write_jsonl(sets / "perc" / "perc_val.jsonl", read_jsonl(world_dir / "perception_pretrain.jsonl")[12:17])
    init = save_pretrained_dir(model, processor, tmp_path / "init")
    # type-balanced: the fixture's 12 questions barely repeat, so balancing per question text would drop them
    cfg = compose(["profile=smoke", "train.eval.n=4", "train.eval.headroom_n=4", "train.eval.group_size=2",
                   "train.balance=answer"], config_dir=ROOT / "conf")
    return cfg, raw, world_dir, sets, init, tmp_path


def test_unparseable_gold_answers_are_skipped_and_counted(stage_env):
    _, raw, _, sets, _, _ = stage_env
    items, counts = load_set_items("perc", sets, raw)
    assert counts == {"data/perc/items": 12, "data/perc/skipped_ungradeable": 1}
    assert all(it.mode == "perc_image" and Path(it.image_path).exists() for it in items)


def test_question_balance_on_free_form_questions_fails_before_training_naming_the_key(stage_env):
    cfg, raw, world_dir, sets, init, tmp = stage_env
    rows = [{**r, "question": f"{r['question']} (asked {i} ways)"} for i, r in enumerate(read_jsonl(sets / "perc/perc_train.jsonl"))]
    write_jsonl(sets / "perc" / "perc_train.jsonl", rows)  # every question text unique, as an LLM writes them
    cfg = OmegaConf.merge(cfg, {"train": {"balance": "question", "min_items": 1}})
    with pytest.raises(ValueError, match=r"train_1: every item of perc .*train.balance: question"):
        run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw,
                  world_dir=world_dir, out_dir=tmp / "out", resume_dir=tmp / "resume")
    assert not (tmp / "out").exists()


def test_the_lean_engine_under_a_launcher_is_refused_before_any_work(stage_env):
    # a stage started by hand under `accelerate launch` (the config's own launcher is refused by check_engine)
    from types import SimpleNamespace

    from capcurriculum.config import ConfigError
    from capcurriculum.training.curriculum import StagePaths, StageRecipe

    cfg, raw, world_dir, sets, init, tmp = stage_env
    acc = SimpleNamespace(num_processes=2, is_main_process=True, state=SimpleNamespace(deepspeed_plugin=None))
    paths = StagePaths.of(init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw, world_dir=world_dir,
                          out_dir=tmp / "out", resume_dir=tmp / "resume")
    with pytest.raises(ConfigError, match=r"^train.launcher.kind: .*use train.engine: trl"):
        StageRecipe(cfg, stage_spec(cfg, "train_1"), paths, accelerator=acc)
    assert not (tmp / "out").exists()


@pytest.mark.parametrize("method", ["grpo", "sft"])
def test_a_stage_trains_and_records_its_boundary(stage_env, method):
    cfg, raw, world_dir, sets, init, tmp = stage_env
    cfg.curriculum.method.perc = method
    cfg.curriculum.s1.method = method
    spec = stage_spec(cfg, "train_1")
    logged = []
    m = run_stage(cfg, spec, init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw, world_dir=world_dir,
                  out_dir=tmp / "out", resume_dir=tmp / "resume", on_log=lambda step, row: logged.append(step))
    assert logged == [1, 2]
    boundary = json.loads((tmp / "out/trainer_state/boundary.json").read_text())
    assert boundary["method"] == method and boundary["steps_done"] == 2 and boundary["sets"] == ["perc"]
    assert (tmp / "out/model.safetensors").exists() and not (tmp / "resume").exists()
    assert {"before/mean_acc", "after/mean_acc", "delta/perc_image", "delta/perc_image/se"} <= set(m)
    if method == "sft":
        assert m["sft/images"] > 0 and "loss/last_tenth" in m
    else:
        assert "reward/last_tenth" in m and "before/headroom/perc/pass_at_2" in m
        assert 0 <= m["before/headroom/perc/greedy_mass"] <= 1 and 0 <= m["after/headroom/perc/greedy_mass"] <= 1
        assert 0 < m["data/const_answer_reward"] <= m["data/question_prior_reward"] <= 1
        # the stage's own set held out (perc_val here, capped at train.eval.headroom_n), against a blind answer
        # per question text
        assert m["set/perc/n"] == 4 and 0 <= m["set/perc/no_look"] <= 1
        assert {"before/set/perc/acc", "after/set/perc/acc", "delta/set/perc", "delta/set/perc/se"} <= set(m)
        assert (tmp / "out/trainer_state/optimizer.safetensors").exists()


def test_held_out_accuracy_covers_the_whole_test_split_and_headroom_its_first_items(stage_env):
    cfg, raw, world_dir, sets, init, tmp = stage_env
    cfg = OmegaConf.merge(cfg, {"train": {"eval": {"n": None, "headroom_n": 3}}})
    m = run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw,
                  world_dir=world_dir, out_dir=tmp / "out", resume_dir=tmp / "resume")
    whole = {name: len(read_jsonl(world_dir / f"{name}_test.jsonl")) for name in ("perception", "text_math", "vis_math")}
    assert whole["perception"] > whole["text_math"] > 3  # the fixture's world: 3 questions a test scene
    for tag in ("before", "after"):
        assert m[f"{tag}/perc_image/n"] == whole["perception"]
        assert (m[f"{tag}/text_math/n"], m[f"{tag}/vis_math/n"]) == (whole["text_math"], whole["vis_math"])
        assert m[f"{tag}/perc_caption/n"] == m[f"{tag}/headroom/perc/n"] == 3
    assert m["set/perc/n"] == 3
    # capabilities of different n: the mean's change is the mean of theirs, their variances added
    caps = ("perc_image", "text_math", "vis_math")
    assert m["delta/mean_acc"] == pytest.approx(sum(m[f"delta/{c}"] for c in caps) / 3)
    assert m["delta/mean_acc/se"] == pytest.approx(sum(m[f"delta/{c}/se"] ** 2 for c in caps) ** 0.5 / 3)


def test_a_wrong_stage_config_fails_before_training(stage_env):
    cfg = stage_env[0]
    bad = OmegaConf.merge(cfg, {"train": {"optimizer_state": "keep"}})
    with pytest.raises(ConfigError, match="^train.optimizer_state"):
        stage_spec(bad, "train_1")
    with pytest.raises(ConfigError, match="^stage: unknown training node"):
        stage_spec(cfg, "train_9")


def test_prompts_over_max_prompt_length_are_dropped_and_counted(stage_env, processor):
    from capcurriculum.sampling.batching import encode_prompts
    from capcurriculum.training.curriculum import drop_overlong

    _, raw, _, sets, _, _ = stage_env
    items, _ = load_set_items("perc", sets, raw)
    lengths = [int(encode_prompts(processor, [it])["input_ids"].shape[1]) for it in items]
    cut = sorted(lengths)[len(lengths) // 2]
    kept, dropped = drop_overlong(items, processor, cut, where="test")
    assert dropped == sum(n > cut for n in lengths) > 0
    assert [it.example["id"] for it in kept] == [it.example["id"] for it, n in zip(items, lengths) if n <= cut]


def test_balance_is_checked(stage_env):
    cfg = stage_env[0]
    assert stage_spec(OmegaConf.merge(cfg, {"train": {"balance": "answer"}}), "train_1").balance == "answer"
    assert stage_spec(OmegaConf.merge(cfg, {"train": {"balance": "question"}}), "train_1").balance == "question"
    with pytest.raises(ConfigError, match="^train.balance"):
        stage_spec(OmegaConf.merge(cfg, {"train": {"balance": "label"}}), "train_1")
    with pytest.raises(ConfigError, match="^train.signal_only: expected true or false"):
        stage_spec(OmegaConf.merge(cfg, {"train": {"signal_only": "yes"}}), "train_1")


@pytest.mark.parametrize("switch", [{"difficulty": "pass_rate"}, {"signal_only": True}])
def test_a_pass_rate_stage_reads_the_difficulty_nodes_cache(stage_env, switch):
    cfg, raw, world_dir, sets, init, tmp = stage_env
    # min_items 0: the signal filter and the type balance leave none of the fixture's 12 items, an empty stage
    cfg = OmegaConf.merge(cfg, {"train": {**switch, "min_items": 0}})
    with pytest.raises(FileNotFoundError, match="perc.jsonl: no pass rates"):
        run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw,
                  world_dir=world_dir, out_dir=tmp / "out", resume_dir=tmp / "resume", difficulty_dir=tmp / "none")
    items, _ = load_set_items("perc", sets, raw)
    write_jsonl(tmp / "rates" / "perc.jsonl", [{"id": it.example["id"], "pass_rate": 0.5 if i % 2 else 0.0}
                                              for i, it in enumerate(items)])
    m = run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw,
                  world_dir=world_dir, out_dir=tmp / "out", resume_dir=tmp / "resume", difficulty_dir=tmp / "rates")
    assert m.get("train/skipped_no_signal", 0) == (6 if "signal_only" in switch else 0)


def test_the_training_seed_follows_the_global_one_unless_set():
    from capcurriculum.training.curriculum import training_seed

    assert training_seed(compose(["profile=smoke", "seed=5"], config_dir=ROOT / "conf")) == 5
    assert training_seed(compose(["profile=smoke", "seed=5", "train.seed=2"], config_dir=ROOT / "conf")) == 2
    assert training_seed(OmegaConf.create({"seed": 3, "train": {"seed": None}})) == 3
    with pytest.raises(ConfigError, match=r"^train\.seed: missing"):  # null is the global seed; absent is an error
        training_seed(OmegaConf.create({"seed": 3, "train": {}}))


def test_a_stage_with_the_tower_and_mergers_frozen_leaves_every_vision_weight_as_it_was(stage_env):
    from safetensors.torch import load_file

    cfg, raw, world_dir, sets, init, tmp = stage_env
    cfg = OmegaConf.merge(cfg, {"train": {"vision_lr_scale": 0.0, "merger_lr_scale": 0.0}})
    spec = stage_spec(cfg, "train_1")
    assert (spec.vision_lr_scale, spec.merger_lr_scale) == (0.0, 0.0)
    run_stage(cfg, spec, init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw, world_dir=world_dir,
              out_dir=tmp / "out", resume_dir=tmp / "resume")
    before, after = load_file(init / "model.safetensors"), load_file(tmp / "out/model.safetensors")
    visual = [k for k in before if ".visual." in f".{k}"]
    assert any("merger" in k for k in visual)
    assert all(torch.equal(before[k], after[k]) for k in visual)
    assert any(not torch.equal(before[k], after[k]) for k in before if k not in visual)
    assert json.loads((tmp / "out/trainer_state/boundary.json").read_text())["merger_lr_scale"] == 0.0


def test_a_bad_tower_or_merger_rate_names_its_key(stage_env):
    cfg = stage_env[0]
    with pytest.raises(ConfigError, match="^train.merger_lr_scale"):
        stage_spec(OmegaConf.merge(cfg, {"train": {"merger_lr_scale": -1}}), "train_1")
    with pytest.raises(ConfigError, match="^merged.merger_lr_scale"):
        stage_spec(OmegaConf.merge(cfg, {"merged": {"merger_lr_scale": "all"}}), "merged")
    with pytest.raises(ConfigError, match="^train.vision_lr_scale"):
        stage_spec(OmegaConf.merge(cfg, {"train": {"vision_lr_scale": "frozen"}}), "train_2")
    with pytest.raises(ConfigError, match="^merged.vision_lr_scale"):
        stage_spec(OmegaConf.merge(cfg, {"merged": {"vision_lr_scale": -0.5}}), "merged")


def _chain(stage_env, cfg=None):
    """train_1's metrics, and a call that runs train_2 (text) from train_1's checkpoint (optionally on another config)."""
    base_cfg, raw, world_dir, sets, init, tmp = stage_env
    cfg = cfg or base_cfg
    write_jsonl(sets / "text" / "text_train.jsonl", read_jsonl(world_dir / "text_math_pretrain.jsonl")[:12])
    where = {"base_dir": init, "sets_dir": sets, "raw_dir": raw, "world_dir": world_dir}
    first = run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, out_dir=tmp / "t1", resume_dir=tmp / "r1",
                      **where)
    return first, lambda c=cfg: run_stage(c, stage_spec(c, "train_2"), init_dir=tmp / "t1", out_dir=tmp / "t2",
                                          resume_dir=tmp / "r2", **where)


def test_the_next_stage_reuses_the_closing_held_out_pass_and_it_equals_a_fresh_one(stage_env):
    first, second = _chain(stage_env)
    record = stage_env[5] / "t1/trainer_state/held_out_eval.json"
    reused = second()
    assert reused["before/reused"] == 1.0
    caps = [k[len("after/"):] for k in first if k.startswith("after/") and "/headroom/" not in k
            and "/set/" not in k and k != "after/mean_acc"]
    assert {"perc_image/acc", "text_math/acc", "vis_math/acc", "perc_caption/acc"} <= set(caps)
    assert all(reused[f"before/{k}"] == first[f"after/{k}"] for k in caps)
    record.unlink()  # the same stage, measuring afresh
    fresh = second()
    assert "before/reused" not in fresh
    same = [k for k in fresh if k.startswith(("before/", "delta/")) and "/headroom/" not in k]
    assert len(same) > 20 and {k: reused[k] for k in same} == {k: fresh[k] for k in same}
    # headroom samples afresh either way; its greedy part comes from the reused rows
    assert reused["before/headroom/text/greedy_pass_at_1"] == fresh["before/headroom/text/greedy_pass_at_1"]


def test_a_record_of_other_weights_or_settings_is_not_reused(stage_env):
    cfg, *_, tmp = stage_env
    _, second = _chain(stage_env)
    path = tmp / "t1/trainer_state/held_out_eval.json"
    record = json.loads(path.read_text())
    path.write_text(json.dumps({**record, "key": {**record["key"], "weights_sha256": "0" * 64}}))
    assert "before/reused" not in second()
    path.write_text(json.dumps(record))
    assert "before/reused" not in second(OmegaConf.merge(cfg, {"train": {"eval": {"n": 3}}}))
    assert second()["before/reused"] == 1.0


def test_a_paper_shaped_stage_measures_on_its_sets_held_out_splits_and_never_reads_the_world(stage_env, tmp_path):
    # Issue 41, crash 1: off the synthetic world (raw.source: docci; the paper's data/world holds no sets) the
    # held-out passes read the sets' own held-out splits: D_perc's val and test, a math set's val. No
    # data/world exists in this workspace, so any read under it fails; a set without a held-out split
    # (sets.val_fraction: 0, the paper's D_vis here) is not measured.
    cfg, raw, world_dir, sets, init, tmp = stage_env
    rows = read_jsonl(world_dir / "perception_pretrain.jsonl")
    write_jsonl(sets / "perc" / "perc_test.jsonl", rows[17:20])
    write_jsonl(sets / "text" / "text_train.jsonl", read_jsonl(world_dir / "text_math_pretrain.jsonl")[:6])
    write_jsonl(sets / "text" / "text_val.jsonl", read_jsonl(world_dir / "text_math_pretrain.jsonl")[6:9])
    write_jsonl(sets / "vis" / "vis_val.jsonl", [])
    cfg = OmegaConf.merge(cfg, {"raw": {"source": "docci"}, "world": None,
                                "train": {"eval": {"n": None, "headroom_n": 4}}})
    nowhere = tmp_path / "data" / "world"
    m = run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw,
                  world_dir=nowhere, out_dir=tmp / "out", resume_dir=tmp / "resume")
    assert not nowhere.exists() and not nowhere.parent.exists()
    for tag in ("before", "after"):
        assert m[f"{tag}/perc_image/n"] == 5 + 3          # perc_val + perc_test, the whole held-out split
        assert m[f"{tag}/text_math/n"] == 3               # text_val
        assert m[f"{tag}/perc_caption/n"] == m[f"{tag}/headroom/perc/n"] == 4
        assert f"{tag}/vis_math/acc" not in m             # D_vis held nothing out
        assert 0 <= m[f"{tag}/perc_image/no_look"] <= 1
    caps = ("perc_image", "text_math")
    assert m["before/mean_acc"] == pytest.approx(sum(m[f"before/{c}/acc"] for c in caps) / 2)
    assert {"delta/perc_image", "delta/text_math"} <= set(m) and "delta/vis_math" not in m
    assert (tmp / "out/model.safetensors").exists()


def test_the_tiny_profile_measures_on_the_world(stage_env):
    from capcurriculum.sampling.world_data import WorldData
    from capcurriculum.training.curriculum import SetsHeldOut, held_out_data

    cfg, raw, world_dir, sets, _, _ = stage_env
    assert isinstance(held_out_data(cfg, raw, world_dir, sets), WorldData)
    paper = OmegaConf.merge(cfg, {"raw": {"source": "docci"}})
    assert isinstance(held_out_data(paper, raw, world_dir / "absent", sets), SetsHeldOut)


def _trl(cfg):
    """The smoke stage on the trl engine (TRL scores with transformers' forward)."""
    return OmegaConf.merge(cfg, {"train": {"engine": "trl", "completion_forward": "transformers", "compile": False}})


def test_a_stage_trains_through_the_trl_engine_with_the_lean_engines_record(stage_env):
    # The same stage around the other engine: curves per GRPO step, the held-out passes, the boundary (naming the
    # engine), the weights and the optimizer a later stage may carry.
    cfg, raw, world_dir, sets, init, tmp = stage_env
    cfg = _trl(cfg)
    logged = []
    m = run_stage(cfg, stage_spec(cfg, "train_1"), init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw,
                  world_dir=world_dir, out_dir=tmp / "out", resume_dir=tmp / "resume",
                  on_log=lambda step, row: logged.append((step, row)))
    assert [s for s, _ in logged] == [1, 2]
    assert {"reward", "reward/accuracy", "kl", "loss", "grad_norm", "response_length"} <= set(logged[0][1])
    boundary = json.loads((tmp / "out/trainer_state/boundary.json").read_text())
    assert boundary["engine"] == "trl" and boundary["steps_done"] == 2
    assert {"reward/last_tenth", "before/mean_acc", "after/mean_acc", "delta/set/perc"} <= set(m)
    assert (tmp / "out/model.safetensors").exists() and (tmp / "out/trainer_state/optimizer.safetensors").exists()
    assert not (tmp / "resume").exists() and not (tmp / ".resume.trl").exists()


class _Killed(Exception):
    pass


def test_a_trl_stage_stopped_after_its_first_point_resumes_to_the_uninterrupted_result(stage_env):
    # Stopped at step 2 (after step 1's resumable point), the re-run restores weights, optimizer, RNG and the
    # data position, and ends where the uninterrupted stage ends: the same curves and metrics.
    cfg, raw, world_dir, sets, init, tmp = stage_env
    cfg = _trl(OmegaConf.merge(cfg, {"train": {"checkpoint_every": 1}}))
    where = dict(init_dir=init, base_dir=init, sets_dir=sets, raw_dir=raw, world_dir=world_dir)
    whole_rows = []
    whole = run_stage(cfg, stage_spec(cfg, "train_1"), **where, out_dir=tmp / "whole", resume_dir=tmp / "r1",
                      on_log=lambda step, row: whole_rows.append(row))

    def stop(step, row):
        if step == 2:
            raise _Killed

    with pytest.raises(_Killed):
        run_stage(cfg, stage_spec(cfg, "train_1"), **where, out_dir=tmp / "again", resume_dir=tmp / "r2", on_log=stop)
    assert json.loads((tmp / "r2/state.json").read_text())["step"] == 1
    resumed_rows = []
    resumed = run_stage(cfg, stage_spec(cfg, "train_1"), **where, out_dir=tmp / "again", resume_dir=tmp / "r2",
                        on_log=lambda step, row: resumed_rows.append(row))
    assert resumed_rows == whole_rows[1:]
    volatile = ("seconds",)
    assert {k: v for k, v in resumed.items() if not any(t in k for t in volatile)} == \
        {k: v for k, v in whole.items() if not any(t in k for t in volatile)}
