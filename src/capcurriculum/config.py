"""params.yaml -> a validated config, with every check that must fail before any work starts.

`conf/` (Hydra) is the source of truth; DVC composes it into `params.yaml` on `dvc exp run`, and
stage scripts read `params.yaml` (DESIGN.md section 6). Every error names the offending key.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from capcurriculum.container import MODES as RUNNER_MODES
from capcurriculum.settings.choices import (  # the config's vocabulary, shared with the typed sections
    BALANCES,
    CAPABILITIES,
    check_choice,
    CHECKPOINTING_NEEDS_TRANSFORMERS,
    COMPILE_NEEDS_LEAN,
    COMPLETION_FORWARDS,
    ConfigError,
    DIFFICULTY_ORDERS,
    ENGINES,
    LAUNCHERS,
    LEAN_ONE_PROCESS,
    METHODS,
    MODEL_KINDS,
    MODEL_ROLES,
    OPTIMIZER_STATES,
    PRECISIONS,
    PROFILES,
    ROLLOUTS,
    WORLD_VERSIONS,
)


def repo_root() -> Path:
    """The DVC repository root: DVC_ROOT when DVC runs us (queued runs point it at the parent repo)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"]).resolve()
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / ".dvc").is_dir() or (p / "dvc.yaml").is_file():
            return p
    return here


def workdir_root() -> Path:
    """Where this run's files live: the cwd's repository (a queued run's temporary copy included)."""
    here = Path.cwd().resolve()
    for p in (here, *here.parents):
        if (p / "dvc.yaml").is_file():
            return p
    return here


SUM_RESOLVER = "capcurriculum.sum"
SLOT_RESOLVERS = ("capcurriculum.slot_set", "capcurriculum.slot_steps")
DAG_RESOLVER = "capcurriculum.dag"
# The models the evaluate@<name> nodes score, by name: base and the staged chain's end always, a baseline's when
# its node is in the DAG (merged.enabled), and `before_perc`, the chain before its perception stage, when the order
# puts perception last (the reasoning-only chain the paper's transfer is measured against: text -> vis).
# stages/evaluate.py and the report read them from here.
EVAL_MODELS = {"base": "data/models/base/policy", "staged": "data/models/train_3", "merged": "data/models/merged",
               "before_perc": "data/models/train_2"}


def dag(merged_enabled: Any, models: Any = None, order: Any = None) -> dict[str, Any]:
    """The DAG's shape (conf/config.yaml's derived `dag`): `bases`, one base@<role> node per model role, each with
    the folder it starts `from` (its init, or for a `lineage` filter the policy's base, whose pre-training saves
    that filter's step among its `checkpoints`); `baselines`, the training nodes beside the staged chain (dvc.yaml's
    `baseline@<name>`, from `merged.enabled`); and `evaluate`, the models the evaluate@<name> nodes score (with
    `before_perc` when `order` ends in perc). A non-boolean gives the boolean's shape for False, a malformed `models`
    entry a plain base and a malformed order no `before_perc`; validation names the key."""
    models = OmegaConf.to_container(models, resolve=True) if isinstance(models, DictConfig) else (models or {})
    lineage = {role: m["step"] if "step" in m else None for role, m in models.items()
               if role != "policy" and isinstance(m, dict) and "kind" in m and m["kind"] == "lineage"}
    bases = {role: {"from": "data/models/base/policy" if role in lineage else f"data/models/init/{role}",
                    "checkpoints": sorted({s for s in lineage.values() if isinstance(s, int)})
                    if role == "policy" else []} for role in MODEL_ROLES}
    baselines = ["merged"] if merged_enabled is True else []
    order = list(order) if isinstance(order, (list, tuple, ListConfig)) else \
        [o.strip() for o in order.split(",")] if isinstance(order, str) else []
    perc_last = len(order) == 3 and order[-1] == "perc"
    evaluate = {m: EVAL_MODELS[m] for m in ("base", "staged", *baselines, *(["before_perc"] if perc_last else []))}
    return {"bases": bases, "baselines": baselines, "evaluate": evaluate}


def _slot(values: Any, k: int, key: str, order: Any) -> Any:
    """values[k] for the slot views (curriculum.s<k+1>), or an error naming the key: under `dvc exp run` this is
    evaluated while DVC composes conf/, before any node runs, where a bare `${curriculum.steps.2}` said only
    "Interpolation key 'curriculum.steps.2' not found"."""
    if isinstance(order, str) and "," not in order:  # what a sweep of the comma form gives each experiment
        raise ConfigError("curriculum.order", f"is the single name {order!r}; an order lists the sets, as "
                          "-S 'curriculum.order=[vis,text,perc]' (DVC and Hydra read `curriculum.order=vis,text,perc` "
                          "as a sweep of three one-name orders)")
    if isinstance(values, str) and key == "curriculum.order":  # the comma-string form parse_order accepts
        values = [v.strip() for v in values.split(",") if v.strip()]
    values = list(values) if isinstance(values, (list, ListConfig)) else values
    if not isinstance(values, list) or not 0 <= k < len(values):
        order = list(order) if isinstance(order, ListConfig) else order
        if key == "curriculum.order":
            raise ConfigError(key, f"the staged run has 3 slots, one set each; got {values}")
        raise ConfigError(key, f"needs one step count per set of curriculum.order ({order}), got {values}")
    return values[k]


def register_resolvers() -> None:
    """`${capcurriculum.sum:${curriculum.steps}}` in conf/config.yaml: the merged baseline's steps, derived when
    conf/ is composed, so the merged node declares `merged.steps` and a new split of the same total does not
    re-run it. DVC's composition registers it through hydra_plugins/ (its default `hydra.plugins_path` is the
    repository root). A steps list that is not all integers sums to None; validation names curriculum.steps.
    `${capcurriculum.slot_set:...}` / `${capcurriculum.slot_steps:...}`: the slot views, erring by key name."""
    if not OmegaConf.has_resolver(SLOT_RESOLVERS[0]):
        OmegaConf.register_new_resolver(SLOT_RESOLVERS[0], lambda order, k: _slot(order, k, "curriculum.order", order))
        OmegaConf.register_new_resolver(SLOT_RESOLVERS[1],
                                        lambda order, steps, k: _slot(steps, k, "curriculum.steps", order))
    if not OmegaConf.has_resolver(DAG_RESOLVER):
        OmegaConf.register_new_resolver(DAG_RESOLVER, lambda enabled, models=None, order=None: OmegaConf.create(
            dag(enabled, models, order)))
    if not OmegaConf.has_resolver(SUM_RESOLVER):
        OmegaConf.register_new_resolver(SUM_RESOLVER, lambda xs: sum(xs) if all(
            isinstance(x, int) and not isinstance(x, bool) for x in xs) else None)


def compose(overrides: Iterable[str] = (), config_dir: str | Path | None = None) -> DictConfig:
    """Compose conf/ with Hydra exactly as `dvc exp run` does, resolved."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    config_dir = Path(config_dir or workdir_root() / "conf").resolve()
    register_resolvers()
    with initialize_config_dir(str(config_dir), version_base=None):
        cfg = hydra_compose(config_name="config", overrides=list(overrides))
    resolve(cfg)
    return cfg


def resolve(cfg: DictConfig) -> None:
    """OmegaConf.resolve, with an interpolation that cannot resolve named as the config key at fault: a steps list
    shorter than the order fails on the slot views (`curriculum.s3.steps: ${curriculum.steps.2}`)."""
    from omegaconf.errors import InterpolationKeyError, InterpolationResolutionError

    try:
        OmegaConf.resolve(cfg)
    except (InterpolationKeyError, InterpolationResolutionError) as e:
        ours = e.__cause__ or e.__context__
        if isinstance(ours, ConfigError):  # a resolver of ours named the key (the slot views)
            raise ours from None
        order, steps = OmegaConf.select(cfg, "curriculum.order"), OmegaConf.select(cfg, "curriculum.steps")
        if "curriculum.steps" in str(e) or "curriculum.order" in str(e):
            order_list = list(order) if isinstance(order, ListConfig) else order
            steps_list = list(steps) if isinstance(steps, ListConfig) else steps
            raise ConfigError("curriculum.steps", f"needs one step count per set of curriculum.order "
                                                  f"({order_list}), got {steps_list}") from None
        raise ConfigError(getattr(e, "full_key", None) or "<interpolation>", str(e).splitlines()[0]) from None


def load_params(path: str | Path = "params.yaml", validate_all: bool = True) -> DictConfig:
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"{path}: not found; run from the repository root (or `dvc repro`)")
    cfg = OmegaConf.load(path)
    if not isinstance(cfg, DictConfig):
        raise ConfigError("<root>", f"{path} must hold a mapping")
    resolve(cfg)
    if validate_all:
        validate(cfg)
    return cfg


def select(cfg: DictConfig, key: str) -> Any:
    """cfg[key] by dotted path, raising ConfigError naming the key when it is missing."""
    value = OmegaConf.select(cfg, key, throw_on_missing=False, default=_MISSING)
    if value is _MISSING or value is None:
        raise ConfigError(key, "missing")
    return value


_MISSING = object()


def parse_order(value: Any, key: str = "curriculum.order") -> list[str]:
    """A curriculum order as a list (`[perc,text,vis]`) or a comma string (`'perc,text,vis'`)."""
    if isinstance(value, str):
        items = [s.strip() for s in value.split(",") if s.strip()]
    elif isinstance(value, (list, tuple, ListConfig)):
        items = [str(s).strip() for s in value]
    else:
        raise ConfigError(key, f"expected a list or a comma-separated string, got {type(value).__name__}")
    for i, name in enumerate(items):
        if name not in CAPABILITIES:
            raise ConfigError(f"{key}[{i}]", f"unknown set {name!r}; expected one of {', '.join(CAPABILITIES)}")
    dupes = sorted({n for n in items if items.count(n) > 1})
    if dupes:
        raise ConfigError(key, f"repeats {', '.join(dupes)}; each set appears at most once")
    if not items:
        raise ConfigError(key, "is empty")
    return items


def check_dag(cfg: DictConfig) -> None:
    """merged.enabled is a boolean, and `dag` is what it, `models` and `curriculum.order` derive (a params.yaml
    edited by hand after one changed is stale: DVC would run the old shape)."""
    enabled = OmegaConf.select(cfg, "merged.enabled")
    if enabled is None:
        return
    if not isinstance(enabled, bool):
        raise ConfigError("merged.enabled", f"expected true or false, got {enabled!r}")
    got, want = OmegaConf.select(cfg, "dag"), dag(enabled, OmegaConf.select(cfg, "models"),
                                                  OmegaConf.select(cfg, "curriculum.order"))
    if got is not None:
        got = OmegaConf.to_container(got, resolve=True) if isinstance(got, DictConfig) else got
        if got != want:
            raise ConfigError("dag", f"is {got} but merged.enabled={str(enabled).lower()}, models and curriculum.order give "
                              f"{want}: it "
                              "is derived, not set; recompose params.yaml (python -m capcurriculum.config)")


def check_lineage(cfg: DictConfig, role: str) -> None:
    """A `lineage` filter is the policy's pre-training at `step`: a filter role, a tiny policy trained at least that
    long, and no recipe or architecture of its own (those keys would not be read)."""
    if role == "policy":
        raise ConfigError("models.policy.kind", "lineage names a filter that is the policy's earlier checkpoint; the "
                                                "policy itself is tiny or hub")
    if select(cfg, "models.policy.kind") != "tiny":
        raise ConfigError(f"models.{role}.kind", "lineage needs a policy pre-trained here (models.policy.kind: tiny), "
                                                 f"got {select(cfg, 'models.policy.kind')!r}")
    _positive(cfg, f"models.{role}.step")
    total = select(cfg, "base.pretrain.policy.steps")
    if isinstance(total, int) and select(cfg, f"models.{role}.step") > total:
        raise ConfigError(f"models.{role}.step", f"is {select(cfg, f'models.{role}.step')}, past the policy's "
                                                 f"pre-training (base.pretrain.policy.steps: {total})")
    for key in (f"models.{role}.size", f"models.{role}.seed", f"base.pretrain.{role}"):
        if OmegaConf.select(cfg, key) is not None:
            raise ConfigError(key, f"is set, but models.{role} is a lineage checkpoint of the policy (its architecture, "
                                   f"seed and recipe): set it to null, or models.{role}.kind: tiny")


def parse_steps(cfg: DictConfig, order: list[str]) -> list[int]:
    """curriculum.steps: one non-negative integer per slot of the order."""
    steps = select(cfg, "curriculum.steps")
    if not isinstance(steps, (list, tuple, ListConfig)):
        raise ConfigError("curriculum.steps", f"expected a list with one entry per slot, got {steps!r}")
    steps = list(steps)
    if len(steps) != len(order):
        raise ConfigError("curriculum.steps", f"needs one entry per slot of curriculum.order ({len(order)}: "
                          f"{', '.join(order)}), got {len(steps)}")
    for i, n in enumerate(steps):
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ConfigError(f"curriculum.steps[{i}]", f"must be an integer >= 0, got {n!r}")
    return steps


def check_method(set_name: str, method: Any) -> str:
    """A curriculum set's training method: grpo, or sft for perception only (caption SFT)."""
    if method not in METHODS or (method == "sft" and set_name != "perc"):
        raise ConfigError(f"curriculum.method.{set_name}", f"expected grpo{' or sft' if set_name == 'perc' else ''}, "
                          f"got {method!r} (sft is the caption-SFT perception variant)")
    return method


def _positive(cfg: DictConfig, key: str, allow_zero: bool = False, kind: type = int) -> None:
    value = select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
        raise ConfigError(key, f"expected a{'n integer' if kind is int else ' number'}, got {value!r}")
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(key, f"must be {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def validate(cfg: DictConfig) -> None:
    """Every check that must fail before work starts. Raises ConfigError naming the key."""
    profile = select(cfg, "profile")
    if profile not in PROFILES:
        raise ConfigError("profile", f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}")
    _positive(cfg, "seed", allow_zero=True)

    source = select(cfg, "raw.source")
    if source not in ("world", "docci"):
        raise ConfigError("raw.source", f"expected 'world' or 'docci', got {source!r}")
    if source == "docci":
        local = OmegaConf.select(cfg, "raw.docci.local_dir")
        if local is not None and not Path(str(local)).expanduser().is_dir():
            raise ConfigError("raw.docci.local_dir", f"{local!r} is not a directory")
        for name in ("descriptions", "images") if local is None else ():
            select(cfg, f"raw.docci.urls.{name}")

    if OmegaConf.select(cfg, "world") is not None:  # null in the paper profile, which builds no world
        version = select(cfg, "world.version")
        if isinstance(version, bool) or version not in WORLD_VERSIONS:
            raise ConfigError("world.version", f"expected one of {', '.join(map(str, WORLD_VERSIONS))} (1: the first "
                                               f"world, 2: issue 37's), got {version!r}")

    for role in MODEL_ROLES:
        kind = select(cfg, f"models.{role}.kind")
        if kind not in MODEL_KINDS:
            raise ConfigError(f"models.{role}.kind", f"expected one of {', '.join(MODEL_KINDS)}, got {kind!r}")
        if kind != "lineage" and OmegaConf.select(cfg, f"models.{role}.step") is not None:
            raise ConfigError(f"models.{role}.step", f"only a lineage filter has a step (models.{role}.kind is "
                                                     f"{kind!r}): set it to null")
        if kind == "hub":  # a hub id, or a local from_pretrained directory (a pre-downloaded copy, a stand-in)
            hub_id = str(select(cfg, f"models.{role}.hub_id"))
            if hub_id.startswith(("/", ".", "~")) and not (Path(hub_id).expanduser() / "config.json").is_file():
                raise ConfigError(f"models.{role}.hub_id", f"{hub_id!r} is not a model directory (no config.json)")
            if OmegaConf.select(cfg, f"models.{role}.revision", default=_MISSING) is _MISSING:
                raise ConfigError(f"models.{role}.revision", "missing (null: the hub's default branch)")
        elif kind == "tiny":
            for key in ("hidden_size", "num_layers", "num_heads", "head_dim"):
                _positive(cfg, f"models.{role}.size.{key}")
            _positive(cfg, f"base.pretrain.{role}.steps", allow_zero=True)
            _positive(cfg, f"base.pretrain.{role}.lr", kind=float)
        else:
            check_lineage(cfg, role)

    order = parse_order(select(cfg, "curriculum.order"))
    if OmegaConf.select(cfg, "curriculum.steps") is not None:
        parse_steps(cfg, order)
        for k, name in enumerate(order):
            slot = OmegaConf.select(cfg, f"curriculum.s{k + 1}")
            method = OmegaConf.select(cfg, f"curriculum.method.{name}")
            if method is not None:
                check_method(name, method)
            if slot is not None and (slot.get("set") != name or slot.get("steps") != select(cfg, "curriculum.steps")[k]):
                raise ConfigError(f"curriculum.s{k + 1}", f"is {dict(slot)} but curriculum.order/steps give set "
                                  f"{name!r}: recompose params.yaml (python -m capcurriculum.config)")
        merged_steps, total = OmegaConf.select(cfg, "merged.steps"), sum(select(cfg, "curriculum.steps"))
        if merged_steps is not None and merged_steps != total:
            raise ConfigError("merged.steps", f"is {merged_steps!r} but curriculum.steps sum to {total}: "
                              "recompose params.yaml (python -m capcurriculum.config)")
    check_dag(cfg)
    for key, allowed in (("train.optimizer_state", OPTIMIZER_STATES), ("train.difficulty", DIFFICULTY_ORDERS),
                         ("train.balance", BALANCES),
                         ("train.completion_forward", COMPLETION_FORWARDS), ("train.precision", PRECISIONS),
                         ("runner.mode", RUNNER_MODES)):
        value = OmegaConf.select(cfg, key)
        if value is not None:
            check_choice(key, value, allowed)
    check_engine(cfg)
    check_known_keys(cfg)
    check_training_values(cfg)
    compiled = OmegaConf.select(cfg, "train.compile")
    if compiled is not None and not isinstance(compiled, bool):
        raise ConfigError("train.compile", f"expected true or false, got {compiled!r}")
    if compiled and OmegaConf.select(cfg, "train.completion_forward") != "lean":
        raise ConfigError("train.compile", COMPILE_NEEDS_LEAN)
    checkpointing = OmegaConf.select(cfg, "train.gradient_checkpointing")
    if checkpointing is not None and not isinstance(checkpointing, bool):
        raise ConfigError("train.gradient_checkpointing", f"expected true or false, got {checkpointing!r}")
    if checkpointing and OmegaConf.select(cfg, "train.completion_forward") == "lean":
        raise ConfigError("train.gradient_checkpointing", CHECKPOINTING_NEEDS_TRANSFORMERS)
    build_settings(cfg)
    if OmegaConf.select(cfg, "grpo") is not None:
        from capcurriculum.settings.grpo import GRPOSettings

        try:  # its messages already start with the key (grpo.<field>: ...)
            GRPOSettings.from_dict(OmegaConf.to_container(cfg.grpo, resolve=True))
        except ValueError as e:
            key, _, why = str(e).partition(": ")
            raise ConfigError(key, why) from None


def build_settings(cfg: DictConfig) -> None:
    """The typed sections (capcurriculum.settings), built here as the nodes build them, so a missing key or a bad
    value fails in validate (check_params, before any node runs), naming the key, not minutes into a node."""
    from capcurriculum.settings.evaluation import EvaluationSettings
    from capcurriculum.settings.perception import PerceptionSettings
    from capcurriculum.settings.train import TrainSettings

    for section in (EvaluationSettings, PerceptionSettings, TrainSettings):
        section.from_config(cfg)


# Mappings whose keys are the user's (backend keyword arguments, benchmark names, the dry run's paths): any key
OPEN_KEYS = ("evaluation.rows", "evaluation.backend", "perception.generation.llm.backend", "perception.filter.backend",
             "perception.generation.llm.sampling", "perception.filter.sampling", "dryrun", "hydra",
             "dag")  # dag: derived from merged.enabled, checked whole by check_dag


def _flat_keys(node: Any, prefix: str = "") -> set[str]:
    keys: set[str] = set()
    if isinstance(node, dict | DictConfig):
        for k, v in node.items():
            keys.add(f"{prefix}{k}")
            keys |= _flat_keys(v, f"{prefix}{k}.")
    return keys


def known_keys(conf_dir: Path) -> set[str]:
    """Every key some file of conf/ sets (conf/config.yaml and each profile): the keys a composition may hold."""
    import yaml

    keys: set[str] = set()
    for path in [conf_dir / "config.yaml", *sorted((conf_dir / "profile").glob("*.yaml"))]:
        tree = yaml.safe_load(path.read_text()) or {}
        tree.pop("defaults", None)
        keys |= _flat_keys(tree)
    return keys


def check_known_keys(cfg: DictConfig, conf_dir: str | Path | None = None) -> None:
    """Refuse a key no file of conf/ knows (`+foo=1`, `+train.sft.lrr=...`): a knob nothing reads is an error,
    not a silent no-op. Skipped where conf/ is not at hand (a params file read outside the repository)."""
    import difflib

    conf_dir = Path(conf_dir or workdir_root() / "conf")
    if not (conf_dir / "config.yaml").is_file():
        return
    known = known_keys(conf_dir)
    for key in sorted(_flat_keys(cfg)):
        if key in known or any(key.startswith(f"{o}.") for o in OPEN_KEYS):
            continue
        parent, _, leaf = key.rpartition(".")
        siblings = sorted({k.rpartition(".")[2] for k in known if k.rpartition(".")[0] == parent})
        near = difflib.get_close_matches(leaf, siblings, n=1)
        hint = f"; did you mean {(parent + '.' if parent else '') + near[0]!r}?" if near else \
            (f"; {parent or 'the top level'} holds {', '.join(siblings)}" if siblings else "")
        raise ConfigError(key, f"unknown key (no file of conf/ sets it, no node reads it){hint}")


def check_training_values(cfg: DictConfig) -> None:
    """train.seed, train.reward and train.sft typed and in range before any node runs (the reward's weights used to
    fail only in train_1, after the difficulty node had run)."""
    seed = OmegaConf.select(cfg, "train.seed")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise ConfigError("train.seed", f"expected an integer (or null: the global seed), got {seed!r}")
    reward = OmegaConf.select(cfg, "train.reward")
    if reward is not None:
        for key in ("accuracy_weight", "format_weight"):
            _positive(cfg, f"train.reward.{key}", allow_zero=True, kind=float)
        if float(reward.accuracy_weight) + float(reward.format_weight) <= 0:
            raise ConfigError("train.reward.accuracy_weight", "the two weights must have a positive sum")
        _positive(cfg, "train.reward.max_answer_chars")
        _positive(cfg, "train.reward.timeout_s", kind=float)
        if not isinstance(select(cfg, "train.reward.math_verify"), bool):
            raise ConfigError("train.reward.math_verify", f"expected true or false, got {reward.math_verify!r}")
    if OmegaConf.select(cfg, "train.sft") is not None:
        _positive(cfg, "train.sft.lr", kind=float)
        _positive(cfg, "train.sft.batch_size")
        _positive(cfg, "train.sft.warmup_steps", allow_zero=True)


def check_engine(cfg: DictConfig) -> None:
    """train.engine and what each engine cannot honour, refused before any node runs, naming the key and the
    engine. The lean engine is one process: several processes or GPUs (accelerate, DeepSpeed) are the trl
    engine's."""
    engine = OmegaConf.select(cfg, "train.engine")
    if engine is None:
        return
    check_choice("train.engine", engine, ENGINES)
    rollout = select(cfg, "train.rollout")
    check_choice("train.rollout", rollout, ROLLOUTS)
    per_device = OmegaConf.select(cfg, "train.trl.per_device_train_batch_size", default=_MISSING)
    if per_device is _MISSING:
        raise ConfigError("train.trl.per_device_train_batch_size", "missing (null: the whole mini-batch a process)")
    if per_device is not None:
        _positive(cfg, "train.trl.per_device_train_batch_size")
    memory = select(cfg, "train.trl.vllm_gpu_memory_utilization")
    if isinstance(memory, bool) or not isinstance(memory, int | float) or not 0 < memory <= 1:
        raise ConfigError("train.trl.vllm_gpu_memory_utilization", f"expected a fraction in (0, 1], got {memory!r}")
    launcher = OmegaConf.select(cfg, "train.launcher")
    if launcher is not None:
        check_choice("train.launcher.kind", select(cfg, "train.launcher.kind"), LAUNCHERS)
        _positive(cfg, "train.launcher.num_processes")
        _positive(cfg, "train.launcher.num_machines")
        if not isinstance(OmegaConf.select(cfg, "train.launcher.args"), ListConfig):
            raise ConfigError("train.launcher.args", "expected a list of accelerate launch flags")
        if launcher.kind == "accelerate":
            config_file = OmegaConf.select(cfg, "train.launcher.config_file")
            if config_file is not None and not Path(str(config_file)).is_file() and \
                    not (workdir_root() / str(config_file)).is_file():
                raise ConfigError("train.launcher.config_file", f"{config_file!r} is not a file")
    if select(cfg, "train.weights_dtype") == "bfloat16" and (launcher is None or launcher.kind == "python"):
        raise ConfigError("train.weights_dtype", "bfloat16 needs train.launcher.kind: accelerate with DeepSpeed's bf16 "
                                                 "mode (fp32 master weights); plain AdamW on bf16 weights rounds "
                                                 "small steps away")
    refusals = {
        "lean": [
            ("train.rollout", rollout != "hf", "the lean engine samples with its own decode loop; set hf"),
            ("grpo.ppo_epochs", select(cfg, "grpo.ppo_epochs") != 1,
             "the lean engine makes one pass over each rollout; set 1"),
            ("train.trl.per_device_train_batch_size", per_device is not None,
             "is the trl engine's micro-batch; the lean engine's is grpo.micro_batch_tokens; set null"),
            ("train.launcher.kind", launcher is not None and launcher.kind == "accelerate", LEAN_ONE_PROCESS),
        ],
        "trl": [
            ("train.completion_forward", select(cfg, "train.completion_forward") == "lean",
             "TRL scores completions with transformers' forward; set transformers"),
            ("train.compile", bool(select(cfg, "train.compile")), "compiles the lean engine's path only; set false"),
            ("grpo.micro_batch_tokens", bool(select(cfg, "grpo.micro_batch_tokens")),
             "TRL micro-batches by completions, not tokens: set train.trl.per_device_train_batch_size and 0 here"),
        ],
    }
    for key, refused, why in refusals[engine]:
        if refused:
            raise ConfigError(key, f"{why} (train.engine: {engine})")


def to_flat_dict(node: Any, prefix: str = "") -> dict[str, Any]:
    """{'a.b.c': value} for logging params to MLflow."""
    if isinstance(node, (DictConfig, ListConfig)):
        node = OmegaConf.to_container(node, resolve=True)
    out: dict[str, Any] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            out.update(to_flat_dict(v, f"{prefix}{k}."))
    elif isinstance(node, list) and any(isinstance(v, (dict, list)) for v in node):
        for i, v in enumerate(node):
            out.update(to_flat_dict(v, f"{prefix}{i}."))
    else:
        out[prefix.rstrip(".")] = node
    return out


def subtree(cfg: DictConfig, *keys: str) -> dict[str, Any]:
    """The plain-dict view of the given top-level keys (what a node declares as its params). A key set to
    null stays None (the paper profile's `world: null`); an absent key is an error naming it."""
    out = {}
    for k in keys:
        value = OmegaConf.select(cfg, k, throw_on_missing=False, default=_MISSING)
        if value is _MISSING:
            raise ConfigError(k, "missing")
        out[k] = OmegaConf.to_container(value, resolve=True) if isinstance(value, (DictConfig, ListConfig)) else value
    return out


def main(argv: list[str] | None = None) -> None:
    """`python -m capcurriculum.config [overrides...]` writes params.yaml as `dvc exp run` would."""
    import argparse

    ap = argparse.ArgumentParser(description=main.__doc__)
    ap.add_argument("overrides", nargs="*", help="Hydra overrides, e.g. profile=smoke")
    ap.add_argument("--out", default="params.yaml")
    args = ap.parse_args(argv)
    try:
        cfg = compose(args.overrides)
        validate(cfg)
    except ConfigError as e:  # the key and what is allowed, without a traceback through the checks
        sys.exit(f"config: {e}")
    Path(args.out).write_text(OmegaConf.to_yaml(cfg), encoding="utf-8")
    print(f"wrote {args.out} (profile {cfg.profile})")
    if args.overrides:  # dvc exp run composes conf/ afresh: these overrides do not carry over to it
        print(f"note: `dvc repro` reads {args.out} as written; `dvc exp run` composes conf/ again, so give it the "
              f"same overrides (dvc exp run {' '.join('-S ' + o for o in args.overrides)}) or it runs the "
              "default profile")


if __name__ == "__main__":
    main()
