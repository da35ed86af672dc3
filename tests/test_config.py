import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from capcurriculum.config import MODEL_ROLES, PROFILES, ConfigError, compose, load_params, parse_order, validate
from capcurriculum.config import main as config_main

ROOT = Path(__file__).resolve().parents[1]


def _compose(*overrides):
    return compose(overrides, config_dir=ROOT / "conf")


def test_committed_params_equal_a_fresh_composition():
    # `dvc repro` reads params.yaml as committed; only `dvc exp run` recomposes it from conf/.
    committed = OmegaConf.to_container(OmegaConf.load(ROOT / "params.yaml"))
    assert committed == OmegaConf.to_container(_compose()), "run `python -m capcurriculum.config`"


@pytest.mark.parametrize("profile", PROFILES)
def test_every_profile_composes_and_validates(profile):
    cfg = _compose(f"profile={profile}")
    validate(cfg)
    assert cfg.profile == profile


def test_paper_profile_names_the_papers_models():
    cfg = _compose("profile=paper")
    assert cfg.models.policy.hub_id == "Qwen/Qwen3-VL-8B-Instruct"
    assert {cfg.models.filter_small.hub_id, cfg.models.filter_large.hub_id} == {
        "Qwen/Qwen2.5-VL-7B-Instruct", "Qwen/Qwen2.5-VL-32B-Instruct"}
    assert list(cfg.curriculum.order) == ["perc", "text", "vis"]


def test_compile_without_the_lean_path_fails_naming_its_key():
    cfg = _compose("train.compile=true", "train.completion_forward=transformers")
    with pytest.raises(ConfigError, match="^train.compile: .*completion_forward: lean"):
        validate(cfg)
    validate(_compose("train.compile=true"))   # the tiny profile's lean path


def test_gradient_checkpointing_and_the_update_token_budget_are_checked_naming_their_keys():
    with pytest.raises(ConfigError, match="^train.gradient_checkpointing: .*completion_forward: transformers"):
        validate(_compose("train.gradient_checkpointing=true"))   # the tiny profile's lean path
    with pytest.raises(ConfigError, match="^train.gradient_checkpointing: expected true or false"):
        validate(_compose("train.gradient_checkpointing=sometimes"))
    with pytest.raises(ConfigError, match="^grpo.micro_batch_tokens: must be >= 0"):
        validate(_compose("grpo.micro_batch_tokens=-1"))
    paper = _compose("profile=paper")
    # the paper's engine (TRL) micro-batches by completions, 16 a GPU as the authors' scripts
    assert paper.train.gradient_checkpointing is True and paper.train.engine == "trl"
    assert paper.grpo.micro_batch_tokens == 0 and paper.train.trl.per_device_train_batch_size == 16
    validate(paper)


@pytest.mark.parametrize("override, key", [
    ("profile=huge", None),  # not a profile file: Hydra refuses before we see it
    ("+raw.source=web", "raw.source"),
    ("base.pretrain.policy.steps=-5", "base.pretrain.policy.steps"),
    ("base.pretrain.policy.lr=0", "base.pretrain.policy.lr"),
    ("curriculum.order=[perc,txt,vis]", "curriculum.order[1]"),
    ("curriculum.order=[perc,perc,vis]", "curriculum.order"),
    ("models.policy.kind=remote", "models.policy.kind"),
    ("curriculum.steps=[10,10]", None),  # the slot s3 has no steps: composing fails, naming curriculum.steps
    ("curriculum.steps=[10,-1,10]", "curriculum.steps[1]"),
    ("grpo.group_size=1", "grpo.group_size"),
    ("grpo.rollout_batch_size=33", "grpo.rollout_batch_size"),
    ("grpo.reference=anchor", "grpo.reference"),
    ("train.optimizer_state=keep", "train.optimizer_state"),
    ("train.precision=fp16", "train.precision"),
    ("train.compile=yes", "train.compile"),
    ("train.compile=[true]", "train.compile"),
    ("train.eval.n=0", "train.eval.n"),
    ("train.eval.headroom_n=null", "train.eval.headroom_n"),  # the tiny default's n is null: the slice is needed
    ("evaluation.n=many", "evaluation.n"),
    ("evaluation.protocol=official", "evaluation.protocol"),  # unknown: refused, not run as lenient
    ("evaluation.split_think=maybe", "evaluation.split_think"),  # VLMEvalKit's SPLIT_THINK: true or false
    ("~evaluation.split_think", "evaluation.split_think"),  # recorded with every result: it must be said
    ("~evaluation.protocol", "evaluation.protocol"),  # recorded with every result: it must be said
    ("+train.processes=2", "train.processes"),  # the lean engine's data parallel is gone: an unknown key
    ("train.engine=verl", "train.engine"),
    ("+foo=1", "foo"),                                  # a key no file of conf/ sets: nothing would read it
    ("+train.sft.lrr=1.0e-4", "train.sft.lrr"),
    ("train.sft.lr=-1", "train.sft.lr"),
    ("train.reward.timeout_s=abc", "train.reward.timeout_s"),
    ("train.reward.accuracy_weight=-1", "train.reward.accuracy_weight"),
    ("train.seed=abc", "train.seed"),
    ("train.launcher.kind=slurm", "train.launcher.kind"),
    ("train.launcher.num_processes=0", "train.launcher.num_processes"),
    ("train.launcher.args=--use_cpu", "train.launcher.args"),
    ("train.weights_dtype=float8", "train.weights_dtype"),
    ("train.weights_dtype=bfloat16", "train.weights_dtype"),  # without an accelerate launcher: refused
    ("train.rollout=sglang", "train.rollout"),
    ("train.trl.per_device_train_batch_size=0", "train.trl.per_device_train_batch_size"),
    ("train.trl.vllm_gpu_memory_utilization=1.5", "train.trl.vllm_gpu_memory_utilization"),
])
def test_a_wrong_value_fails_naming_its_key(override, key):
    if key is None:
        with pytest.raises(Exception, match="huge|^curriculum.steps: needs one step count per set"):
            _compose(override)
        return
    cfg = _compose(override.replace("+raw", "raw"))  # Hydra refuses an unknown key without +
    with pytest.raises(ConfigError) as err:
        validate(cfg)
    assert str(err.value).startswith(key + ":")


def test_unknown_profile_in_params_is_refused(tmp_path):
    cfg = _compose()
    cfg.profile = "huge"
    path = tmp_path / "params.yaml"
    path.write_text(OmegaConf.to_yaml(cfg))
    with pytest.raises(ConfigError, match=r"^profile: unknown profile 'huge'"):
        load_params(path)


def test_order_accepts_a_list_or_a_comma_string():
    # The two forms `dvc exp run -S` can pass without triggering a Hydra sweep (DESIGN.md section 1).
    assert parse_order(["vis", "text", "perc"]) == ["vis", "text", "perc"]
    assert parse_order("vis, text,perc") == ["vis", "text", "perc"]
    with pytest.raises(ConfigError, match="curriculum.order: is empty"):
        parse_order("")


def test_a_one_name_order_is_refused_showing_the_list_form(capsys):
    # `-S curriculum.order=vis,text,perc` is a sweep (DVC, Hydra): each experiment would get one name. Refused
    # while composing, where `dvc exp run` composes too, and by the CLI without a traceback.
    with pytest.raises(ConfigError, match=r"^curriculum.order: is the single name 'vis'.*'curriculum.order=\[vis,text,perc\]'"):
        _compose("curriculum.order=vis")
    quoted = _compose("curriculum.order='vis,text,perc'")  # one comma string (parse_order's other form) stays
    assert [quoted.curriculum[f"s{k}"].set for k in (1, 2, 3)] == ["vis", "text", "perc"]
    with pytest.raises(SystemExit) as exit_:
        config_main(["curriculum.order=vis", "--out", "/dev/null"])
    assert str(exit_.value.code).startswith("config: curriculum.order: is the single name 'vis'")


def test_writing_a_profile_says_how_dvc_exp_run_keeps_it(tmp_path, capsys):
    # dvc exp run composes conf/ afresh: a workspace set to smoke by this CLI would fall back to tiny (an hour of
    # work) unless the same overrides are given to it; the CLI says so with the exact command.
    config_main(["profile=smoke", "--out", str(tmp_path / "params.yaml")])
    out = capsys.readouterr().out
    assert "wrote" in out and "(profile smoke)" in out and "dvc exp run -S profile=smoke" in out
    assert OmegaConf.load(tmp_path / "params.yaml").profile == "smoke"
    config_main(["--out", str(tmp_path / "default.yaml")])  # the default profile: nothing to carry over
    assert "dvc exp run" not in capsys.readouterr().out


def test_slot_views_follow_the_order_and_stale_ones_are_refused():
    cfg = _compose("curriculum.order=[vis,text,perc]", "curriculum.steps=[5,6,7]")
    assert (cfg.curriculum.s1.set, cfg.curriculum.s1.steps, cfg.curriculum.s3.set) == ("vis", 5, "perc")
    cfg.curriculum.s2.set = "perc"  # e.g. params.yaml edited by hand without recomposing
    with pytest.raises(ConfigError, match="^curriculum.s2: .*recompose"):
        validate(cfg)


def test_caption_sft_is_a_perception_only_method_that_follows_its_slot():
    cfg = _compose("curriculum.order=[text,perc,vis]", "curriculum.method.perc=sft")
    assert (cfg.curriculum.s1.method, cfg.curriculum.s2.method) == ("grpo", "sft")
    validate(cfg)
    with pytest.raises(ConfigError, match="^curriculum.method.text: expected grpo,"):
        validate(_compose("curriculum.method.text=sft"))


def test_an_unknown_attention_implementation_fails_naming_the_key():
    with pytest.raises(ConfigError, match="^train.attn_implementation: "):
        validate(_compose("train.attn_implementation=flashy"))


def test_runner_modes_agree_with_the_container_runner():
    from capcurriculum.config import RUNNER_MODES
    from capcurriculum.container import MODES

    assert RUNNER_MODES == MODES
    with pytest.raises(ConfigError, match="^runner.mode: "):
        validate(_compose("runner.mode=podman"))


def test_merged_steps_are_the_stages_total_and_a_stale_total_is_refused():
    cfg = compose(["profile=smoke", "curriculum.steps=[1,2,3]"])
    assert cfg.merged.steps == 6
    cfg.merged.steps = 7  # a params.yaml edited by hand after its steps changed
    with pytest.raises(ConfigError, match="merged.steps"):
        validate(cfg)


def test_dvc_composition_derives_merged_steps_through_the_hydra_plugin(tmp_path):
    # A fresh process, as `dvc exp run` composes: the resolver comes only from hydra_plugins/.
    root = Path(__file__).resolve().parents[1]
    out = tmp_path / "params.yaml"
    code = ("from dvc.utils.hydra import compose_and_dump; import sys; "
            "compose_and_dump(sys.argv[1], sys.argv[2], None, 'config', sys.argv[3], "
            "['curriculum.steps=[5,0,7]', 'merged.enabled=true'])")
    subprocess.run([sys.executable, "-c", code, str(out), str(root / "conf"), str(root)], check=True, cwd=tmp_path)
    composed = OmegaConf.load(out)
    assert composed.merged.steps == 12
    assert list(composed.dag.baselines) == ["merged"] and "merged" in composed.dag.evaluate


@pytest.mark.parametrize("profile, merged", [("tiny", False), ("smoke", True), ("paper", True)])
def test_the_dags_shape_follows_merged_enabled(profile, merged):
    """The tiny default trains the staged chain alone; merged.enabled adds the baseline node and its evaluation
    (dvc.yaml's foreach over the derived `dag`), which the smoke profile's tests and the paper profile run."""
    cfg = compose([f"profile={profile}"])
    validate(cfg)
    assert list(cfg.dag.baselines) == (["merged"] if merged else [])
    assert list(cfg.dag.evaluate) == ["base", "staged", *(["merged"] if merged else [])]
    assert cfg.dag.evaluate.staged == "data/models/train_3"
    flipped = compose([f"profile={profile}", f"merged.enabled={str(not merged).lower()}"])
    assert list(flipped.dag.baselines) == ([] if merged else ["merged"])


@pytest.mark.parametrize("order", ["[text,vis,perc]", "[vis,text,perc]"])
def test_perception_last_also_evaluates_the_chain_before_it(order):
    """The paper's transfer control (reasoning-only RL, text -> vis): with perception last, evaluate@before_perc
    scores train_2, the chain before its perception stage; any other order has no such node."""
    cfg = compose([f"curriculum.order={order}"])
    validate(cfg)
    assert cfg.dag.evaluate.before_perc == "data/models/train_2" and list(cfg.dag.evaluate)[-1] == "before_perc"
    assert "before_perc" not in compose(["curriculum.order=[perc,vis,text]"]).dag.evaluate
    cfg.dag.evaluate = {"base": "data/models/base/policy", "staged": "data/models/train_3"}  # set by hand: stale
    with pytest.raises(ConfigError, match=r"^dag: .*curriculum.order give .*recompose params.yaml"):
        validate(cfg)


def test_a_stale_or_hand_set_dag_and_a_non_boolean_merged_enabled_are_refused():
    cfg = compose(["profile=smoke"])
    cfg.merged.enabled = False  # params.yaml edited by hand: the derived shape still holds the baseline
    with pytest.raises(ConfigError, match=r"^dag: .* merged.enabled=false, models and curriculum.order give .*recompose params.yaml"):
        validate(cfg)
    with pytest.raises(ConfigError, match="^merged.enabled: expected true or false, got 'yes'"):
        validate(compose(["merged.enabled=yes"]))
    cfg = compose([])
    cfg.models.filter_large.step = 700  # a filter's step moved by hand: base@policy would not save it
    with pytest.raises(ConfigError, match=r"^dag: .*recompose params.yaml"):
        validate(cfg)


def test_the_tiny_filters_are_the_policys_checkpoints_and_the_smoke_and_paper_filters_their_own_models():
    """Issue 37's filters of one lineage: in the tiny profile base@filter_* start from the policy's base, whose
    pre-training keeps their steps; the smoke profile's filters (trained on captions) and the paper's hub models
    start from their own init."""
    tiny = compose([])
    validate(tiny)
    assert {r: tiny.models[r].kind for r in ("filter_small", "filter_large")} == {"filter_small": "lineage",
                                                                                   "filter_large": "lineage"}
    assert tiny.dag.bases.policy == {"from": "data/models/init/policy", "checkpoints": [600, 900]}
    assert tiny.dag.bases.filter_small == {"from": "data/models/base/policy", "checkpoints": []}
    moved = compose(["models.filter_small.step=300"])
    assert list(moved.dag.bases.policy.checkpoints) == [300, 900]
    for profile in ("smoke", "paper"):
        cfg = compose([f"profile={profile}"])
        validate(cfg)
        assert all(cfg.dag.bases[r] == {"from": f"data/models/init/{r}", "checkpoints": []} for r in MODEL_ROLES)


@pytest.mark.parametrize("overrides, match", [
    (["models.filter_small.step=1201"], r"^models.filter_small.step: is 1201, past the policy's pre-training"),
    (["models.filter_small.step=0"], r"^models.filter_small.step: must be > 0"),
    (["+models.filter_small.seed=3"], r"^models.filter_small.seed: is set, but models.filter_small is a lineage"),
    (["base.pretrain.filter_large={steps: 600, lr: 0.003}"], r"^base.pretrain.filter_large: is set, but"),
    (["models.policy.kind=lineage", "+models.policy.step=600"], r"^models.policy.kind: lineage names a filter"),
    (["profile=smoke", "models.filter_small.step=600"], r"^models.filter_small.step: only a lineage filter has a step"),
    (["models.filter_small.kind=distilled"], r"^models.filter_small.kind: expected one of tiny, hub, lineage"),
])
def test_a_lineage_filter_is_refused_where_it_cannot_be_the_policys_checkpoint(overrides, match):
    with pytest.raises(ConfigError, match=match):
        validate(compose(overrides))


@pytest.mark.parametrize("profile", PROFILES)
def test_every_param_a_dvc_node_declares_is_in_every_profile(profile):
    # DVC refuses a node whose declared param is absent from params.yaml ("Parameters 'tokenizer' are
    # missing"); a key set to null (the paper profile's world, tokenizer) is present.
    from capcurriculum.runtime import dag_nodes, substitute

    for merged in (True, False):  # every node the profile's DAG can hold, the merged baseline's included
        cfg = _compose(f"profile={profile}", f"merged.enabled={str(merged).lower()}")
        missing = []
        for name, body, subs in dag_nodes(OmegaConf.to_container(cfg), ROOT / "dvc.yaml"):
            for key in body.get("params", []):
                if isinstance(key, str):
                    key = substitute(key, subs)
                    if OmegaConf.select(cfg, key, default="<absent>") == "<absent>":
                        missing.append(f"{name}: {key}")
        assert not missing, missing


_ON_TRL = ("train.engine=trl", "train.completion_forward=transformers", "train.compile=false")


@pytest.mark.parametrize("engine, override, key", [
    ("lean", "train.rollout=vllm_colocate", "train.rollout"),
    ("lean", "grpo.ppo_epochs=2", "grpo.ppo_epochs"),
    ("lean", "train.trl.per_device_train_batch_size=8", "train.trl.per_device_train_batch_size"),
    ("trl", "train.completion_forward=lean", "train.completion_forward"),
    ("trl", "train.compile=true", "train.compile"),
    ("trl", "grpo.micro_batch_tokens=4096", "grpo.micro_batch_tokens"),
])
def test_a_knob_an_engine_cannot_honour_is_refused_naming_the_key_and_the_engine(engine, override, key):
    cfg = _compose(*(_ON_TRL if engine == "trl" else ()), override)
    with pytest.raises(ConfigError, match=rf"^{key}: .*\(train.engine: {engine}\)"):
        validate(cfg)


def test_the_knobs_only_the_trl_engine_honours_validate_on_it():
    # several passes over a rollout, TRL's rollout samplers and its per-device micro-batch
    validate(_compose(*_ON_TRL, "grpo.ppo_epochs=2", "train.rollout=vllm_server",
                      "train.trl.per_device_train_batch_size=8", "grpo.lr_scheduler_type=cosine"))


def test_an_accelerate_launcher_needs_its_config_file():
    with pytest.raises(ConfigError, match="^train.launcher.config_file: 'conf/accelerate/zero9.yaml' is not a file"):
        validate(_compose("train.launcher.kind=accelerate", "train.launcher.config_file=conf/accelerate/zero9.yaml"))
    paper = _compose("profile=paper")
    assert paper.train.launcher.kind == "accelerate" and paper.train.launcher.config_file == "conf/accelerate/zero2.yaml"


def test_the_lean_engine_under_an_accelerate_launcher_is_refused_pointing_at_the_trl_engine():
    # The lean engine is one process on the CPU; several processes or GPUs are the trl engine's (issue 41)
    launched = ("train.launcher.kind=accelerate", "train.launcher.config_file=conf/accelerate/zero2.yaml",
                "train.launcher.num_processes=2")
    with pytest.raises(ConfigError, match=r"^train.launcher.kind: .*use train.engine: trl.*\(train.engine: lean\)"):
        validate(_compose(*launched))
    validate(_compose(*_ON_TRL, *launched))


def test_the_accelerate_launcher_becomes_accelerate_launchs_command_line():
    from capcurriculum.runtime import accelerate_command
    from capcurriculum.settings.train import TrainSettings

    launcher = TrainSettings.from_config(_compose(
        *_ON_TRL, "train.launcher.kind=accelerate", "train.launcher.config_file=conf/accelerate/zero2.yaml",
        "train.launcher.num_processes=16", "train.launcher.num_machines=2",
        "train.launcher.args=[--machine_rank,1,--main_process_ip,10.0.0.1]")).launcher
    assert accelerate_command(launcher, ["stages/train.py", "train_1"])[1:] == [
        "-m", "accelerate.commands.launch", "--config_file", "conf/accelerate/zero2.yaml", "--num_processes", "16",
        "--num_machines", "2", "--machine_rank", "1", "--main_process_ip", "10.0.0.1", "stages/train.py", "train_1"]


def test_an_unknown_key_names_its_nearest_known_sibling():
    with pytest.raises(ConfigError, match=r"^train.sft.lrr: unknown key .*did you mean 'train.sft.lr'"):
        validate(_compose("+train.sft.lrr=1.0e-4"))
    validate(_compose("+evaluation.rows.mathvista=params.yaml", "evaluation.benchmarks=[mathvista]"))  # user keys
