"""The typed config sections (capcurriculum.settings): each key read once, every refusal naming its key, and no
`.get(key, default)` left on a config object anywhere in src/ (a silent default is how models/lean.py once read
"transformers" while the YAML said lean)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from omegaconf import open_dict

from capcurriculum.config import ConfigError, compose
from capcurriculum.settings.evaluation import EvaluationSettings
from capcurriculum.settings.perception import PerceptionSettings
from capcurriculum.settings.train import TrainSettings

ROOT = Path(__file__).resolve().parents[2]
PKG = ROOT / "src" / "capcurriculum"

# Names a config object goes by in src/; a receiver whose root name or any attribute on the way is one of these
# (or ends in "cfg") is a config read.
CONFIG_NAMES = {"cfg", "config", "conf", "params", "settings", "section", "spec"}

# `.get(` on a config-looking name that is not a read of the composed config, and why.
NOT_CONFIG = {
    # JudgeConfig.from_mapping's own typed parse of evaluation.judge: its optional keys' defaults are the
    # dataclass's fields, documented there, and unknown keys are refused.
    ("evaluation/judge.py", "spec"),
    # A source's options, which data/sources/spec.py fills with every option its adapter declares: the dict is
    # complete, `.get` reads a key that is there (None where the source leaves it out).
    ("data/sources/adapters.py", "spec.options"),
    # DryRunSpec.sizes: the dry run's own per-role overrides of the stand-ins' sizes (a dataclass field, not
    # params.yaml); a role without one keeps its built-in sizes.
    ("dryrun.py", "spec.sizes"),
}


def _names(node: ast.expr) -> list[str]:
    """The names along a receiver: `cfg.train.eval` -> [cfg, train, eval]; calls and subscripts pass through."""
    out: list[str] = []
    while True:
        if isinstance(node, ast.Attribute):
            out.append(node.attr)
            node = node.value
        elif isinstance(node, ast.Subscript | ast.Call):
            node = node.value if isinstance(node, ast.Subscript) else node.func
        elif isinstance(node, ast.Name):
            return [node.id, *reversed(out)]
        else:
            return list(reversed(out))


def _defaulted_select(node: ast.Call) -> bool:
    """OmegaConf.select(cfg, key, default=X) with X not a sentinel (a name ending in MISSING or ABSENT, which a
    caller turns into an error naming the key): the same silent default as `.get(key, X)`."""
    func = node.func
    if not (isinstance(func, ast.Attribute) and func.attr == "select" and isinstance(func.value, ast.Name)
            and func.value.id == "OmegaConf"):
        return False
    default = next((k.value for k in node.keywords if k.arg == "default"), None)
    return default is not None and not (isinstance(default, ast.Name) and default.id.endswith(("MISSING", "ABSENT")))


def config_gets(source: str, rel: str) -> list[str]:
    """`rel:line receiver.get(...)` for each `.get(` on a config receiver in `source`, less NOT_CONFIG's, and each
    OmegaConf.select with a default."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Call) and _defaulted_select(node):
            found.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "get":
            receiver = node.func.value
            names = _names(receiver)
            if any(n in CONFIG_NAMES or n.endswith("cfg") for n in names) and \
                    (rel, ast.unparse(receiver)) not in NOT_CONFIG:
                found.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
    return found


def test_no_config_is_read_with_a_silent_default():
    found = [hit for path in sorted(PKG.rglob("*.py"))
             for hit in config_gets(path.read_text(), path.relative_to(PKG).as_posix())]
    assert not found, ("config read with .get (a silent default): read it through a typed section in "
                       f"capcurriculum.settings, or list it in NOT_CONFIG with why: {found}")


@pytest.mark.parametrize("planted", ["cfg.train.get('engine', 'lean')", "settings.get('n')",
                                     "self.cfg.evaluation.get('n')", "gcfg.get('template_file')",
                                     "config['runner'].get('mode')",
                                     "OmegaConf.select(cfg, 'train.compile', default=False)"])
def test_the_walk_sees_a_planted_read(planted):
    assert config_gets(f"x = {planted}\n", "planted.py") == [f"planted.py:1 {planted}"]


def test_the_walk_leaves_other_mappings_alone():
    assert config_gets('x = os.environ.get("HOME")\ny = row.get("answer")\n'
                       'z = OmegaConf.select(cfg, "evaluation.rows", default=_MISSING)\n', "planted.py") == []


def _compose(*overrides):
    return compose(overrides, config_dir=ROOT / "conf")


@pytest.mark.parametrize("profile", ["tiny", "smoke", "paper"])
def test_every_profile_says_every_key(profile):
    cfg = _compose(f"profile={profile}")
    for section in (EvaluationSettings, PerceptionSettings, TrainSettings):
        section.from_config(cfg)


def test_a_key_left_out_is_missing_not_defaulted():
    cfg = _compose()
    with open_dict(cfg):  # null in the profile; Hydra's ~key cannot delete a null
        del cfg.evaluation["rows"]
    with pytest.raises(ConfigError, match=r"^evaluation\.rows: missing"):
        EvaluationSettings.from_config(cfg)


def test_a_null_headroom_slice_is_the_eval_slice():
    train = TrainSettings.from_config(_compose("profile=paper"))
    assert (train.eval_n, train.headroom_n) == (400, 400)


REFUSALS = [
    # (section, override, the message's start)
    (EvaluationSettings, "evaluation.protocol=official", "evaluation.protocol: expected one of lenient, vlmevalkit"),
    (EvaluationSettings, "evaluation.prompt=chat", "evaluation.prompt: expected one of reasoning, plain"),
    (EvaluationSettings, "evaluation.split_think=yes", "evaluation.split_think: expected true or false"),
    (EvaluationSettings, "evaluation.n=0", "evaluation.n: expected an integer >= 1 or null"),
    (EvaluationSettings, "evaluation.batch_size=2.5", "evaluation.batch_size: expected an integer >= 1"),
    (EvaluationSettings, "evaluation.max_new_tokens=null", "evaluation.max_new_tokens: expected an integer >= 1"),
    (EvaluationSettings, "evaluation.backend=hf", "evaluation.backend: expected a mapping"),
    (EvaluationSettings, "evaluation.judge.enabled=maybe", "evaluation.judge.enabled: expected true or false"),
    (EvaluationSettings, "evaluation.benchmarks=[]", "evaluation.benchmarks: expected a non-empty list"),
    (EvaluationSettings, "evaluation.benchmarks=[tiny_perception,tiny_vis_mth]",
     "evaluation.benchmarks[1]: unknown benchmark 'tiny_vis_mth' (did you mean 'tiny_vis_math'?); known: tiny_perception"),
    (EvaluationSettings, "evaluation.benchmarks=[mmmu]", "evaluation.benchmarks[0]: unknown benchmark 'mmmu'; known: "),
    (EvaluationSettings, "evaluation.rows={tiny_vis_math: /nonexistent.jsonl}", "evaluation.rows.tiny_vis_math: "),
    (EvaluationSettings, "evaluation.rows={mmmu: /nonexistent.jsonl}",
     "evaluation.rows.mmmu: is not one of evaluation.benchmarks"),
    (TrainSettings, "train.engine=verl", "train.engine: expected one of lean, trl"),
    (TrainSettings, "train.attn_implementation=flash", "train.attn_implementation: expected one of"),
    (TrainSettings, "train.weights_dtype=float16", "train.weights_dtype: expected one of float32, bfloat16"),
    (TrainSettings, "~train.engine", "train.engine: missing"),
    (TrainSettings, "train.eval.n=-1", "train.eval.n: expected an integer >= 1 or null"),
    (TrainSettings, "train.eval.headroom_n=null", "train.eval.headroom_n: required when train.eval.n is null"),
    (PerceptionSettings, "perception.generation.template=1", "perception.generation.template: expected true or false"),
    (PerceptionSettings, "perception.generation.template_file=''",
     "perception.generation.template_file: expected a non-empty string or null"),
    (PerceptionSettings, "perception.generation.template_per_scene=0",
     "perception.generation.template_per_scene: expected an integer >= 1 or null"),
    (PerceptionSettings, "perception.filter.audit_max_dropped=-1",
     "perception.filter.audit_max_dropped: expected an integer >= 0 or null"),
    (PerceptionSettings, "~perception.filter.audit_max_dropped", "perception.filter.audit_max_dropped: missing"),
]


@pytest.mark.parametrize(("section", "override", "message"), REFUSALS, ids=[r[1] for r in REFUSALS])
def test_a_bad_value_is_refused_naming_its_key(section, override, message):
    cfg = _compose(override)
    with pytest.raises(ConfigError) as refused:
        section.from_config(cfg)
    assert str(refused.value).startswith(message)


def test_validate_builds_the_sections_so_check_params_names_the_key():
    from capcurriculum.config import validate

    with pytest.raises(ConfigError, match=r"^perception\.filter\.audit_max_dropped: expected an integer >= 0"):
        validate(_compose("perception.filter.audit_max_dropped=-1"))
    with pytest.raises(ConfigError, match=r"^evaluation\.prompt: expected one of reasoning, plain"):
        validate(_compose("evaluation.prompt=chat"))


def test_the_benchmark_vocabulary_is_the_evaluators_registries():
    """settings/choices names the benchmarks so that check_params can refuse a misspelt one (the settings layer
    cannot import evaluation); the names must be exactly what evaluation runs, tiny and hub."""
    from capcurriculum.evaluation.benchmarks import ADAPTERS
    from capcurriculum.evaluation.evaluator import TINY_BENCHMARKS
    from capcurriculum.settings.choices import HUB_BENCHMARK_NAMES, TINY_BENCHMARK_NAMES

    assert set(TINY_BENCHMARK_NAMES) == set(TINY_BENCHMARKS)
    assert set(HUB_BENCHMARK_NAMES) == set(ADAPTERS)


def test_a_hub_benchmark_is_accepted_under_its_printed_spelling():
    """get_adapter matches any case with '-' and '_' ignored; the check accepts what it accepts."""
    settings = EvaluationSettings.from_config(_compose("evaluation.benchmarks=[MathVista,Real-World-QA]"))
    assert settings.benchmarks == ("MathVista", "Real-World-QA")


TYPED = ("train", "evaluation")  # sections every key of which is read through capcurriculum.settings


def untyped_reads(source: str, rel: str) -> list[str]:
    """`rel:line cfg.<section>.<key>` for each attribute read of a typed section's key (a whole section passed
    on, as stage_params records it, is not a key read)."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Attribute) and \
                node.value.attr in TYPED and isinstance(node.value.value, ast.Name | ast.Attribute) and \
                _names(node.value.value)[-1:] in (["cfg"], ["params"]):
            found.append(f"{rel}:{node.lineno} {ast.unparse(node)}")
    return found


def test_the_typed_sections_keys_are_read_only_through_their_settings():
    files = [*sorted(PKG.rglob("*.py")), *sorted((ROOT / "stages").glob("*.py"))]
    found = [hit for path in files for hit in untyped_reads(path.read_text(), path.relative_to(ROOT).as_posix())
             if not hit.startswith("src/capcurriculum/settings/")]
    assert not found, f"read these through TrainSettings / EvaluationSettings (capcurriculum.settings): {found}"


@pytest.mark.parametrize("planted", ["cfg.train.threads", "self.cfg.evaluation.n", "params.train.sft"])
def test_the_typed_walk_sees_a_planted_read(planted):
    assert untyped_reads(f"x = {planted}\n", "planted.py") == [f"planted.py:1 {planted}"]
