"""The `train` keys the train and difficulty nodes read: the engine and how it starts, how the model is loaded,
the held-out slices it measures on, the caption-SFT stage's optimiser and the process's threads. They sit beside
training/switches.py's TrainSwitches (the forward's switches, which need the loaded model to check) and
curriculum.stage_spec (a stage's sets, steps and data order); all are read once, checked before any node runs
(config.validate builds them). `train.reward` is sampling/rewards.py's RewardConfig, built from `reward`.

    train = TrainSettings.from_config(cfg)
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from typing import Any

from capcurriculum.settings.choices import (
    ATTN_IMPLEMENTATIONS, DIFFICULTY_ORDERS, ENGINES, LAUNCHERS, PRECISIONS, ROLLOUTS, WEIGHT_DTYPES, ConfigError)
from capcurriculum.settings import read


@dataclass(frozen=True)
class SFTSettings:
    """train.sft: the caption-SFT perception stage's optimiser (curriculum.method.perc: sft)."""
    lr: float
    batch_size: int
    warmup_steps: int


@dataclass(frozen=True)
class LauncherSettings:
    """train.launcher: how the DVC train nodes start stages/train.py (runtime.accelerate_command)."""
    # python: one process; accelerate: `accelerate launch` (the trl engine only), with DeepSpeed from config_file
    kind: str
    config_file: str | None
    num_processes: int
    num_machines: int
    # accelerate launch's own flags, passed on (e.g. --machine_rank 1 --main_process_ip 10.0.0.1 on a second node)
    args: tuple[str, ...]


@dataclass(frozen=True)
class TrainSettings:
    # The GRPO loop: 'lean' (training/grpo.py, one process, the CPU's) or 'trl' (TRL's GRPOTrainer: accelerate,
    # DeepSpeed, vLLM); everything around the loop is shared, so the two are compared on the same stage.
    engine: str
    # Attention kernel the policy is loaded with (models/attention.py); a speed choice, the same attention.
    attn_implementation: str
    # The weights' dtype as loaded: float32, or bfloat16 under DeepSpeed's bf16 mode (fp32 master weights).
    weights_dtype: str
    # train.eval.n: items per capability for the held-out greedy accuracy before and after a stage; None: the
    # whole test split.
    eval_n: int | None
    # train.eval.headroom_n, or eval_n where that is null: the slice headroom sampling, the stage's held-out set
    # and the caption-mode diagnostic use (sampled several times per item, so smaller than eval_n can be).
    headroom_n: int
    # train.eval.group_size / max_new_tokens: samples per item for headroom (pass@G), and the longest held-out answer.
    eval_group_size: int
    eval_max_new_tokens: int
    # train.reward as written; the stage builds sampling/rewards.py's RewardConfig from it (which checks it).
    reward: dict[str, Any]
    # auto | fp32 | bf16, as asked; training/precision.resolve_precision decides on the device.
    precision: str
    # none | easy_to_hard | pass_rate: the order of items within a stage; signal_only drops items the base never or
    # always solves (both read the `difficulty` node's pass rates where they need them).
    difficulty: str
    signal_only: bool
    sft: SFTSettings
    launcher: LauncherSettings
    # hf | vllm_colocate | vllm_server: the trl engine's sampler.
    rollout: str
    # The trl engine's completions a process scores in one forward/backward (None: its whole mini-batch), and vLLM's
    # share of GPU memory when colocated.
    per_device_train_batch_size: int | None
    vllm_gpu_memory_utilization: float
    # Steps between resumable points (.resume/<node>/); a set with fewer gradeable items fails; torch threads.
    checkpoint_every: int
    min_items: int
    threads: int

    @classmethod
    def from_config(cls, cfg: DictConfig) -> TrainSettings:
        """Each key required (null where the profile says so); a wrong value is a ConfigError naming it."""
        eval_n = read.integer(cfg, "train.eval.n", minimum=1, nullable=True, null_means="the whole test split")
        headroom_n = read.integer(cfg, "train.eval.headroom_n", minimum=1, nullable=True,
                                  null_means="train.eval.n's slice")
        if headroom_n is None and eval_n is None:
            raise ConfigError("train.eval.headroom_n", "required when train.eval.n is null (the whole test split)")
        return cls(engine=read.choice(cfg, "train.engine", ENGINES),
                   attn_implementation=read.choice(cfg, "train.attn_implementation", ATTN_IMPLEMENTATIONS),
                   weights_dtype=read.choice(cfg, "train.weights_dtype", WEIGHT_DTYPES),
                   eval_n=eval_n, headroom_n=headroom_n if headroom_n is not None else eval_n,
                   eval_group_size=read.integer(cfg, "train.eval.group_size", minimum=1),
                   eval_max_new_tokens=read.integer(cfg, "train.eval.max_new_tokens", minimum=1),
                   reward=read.mapping(cfg, "train.reward"),
                   precision=read.choice(cfg, "train.precision", PRECISIONS),
                   difficulty=read.choice(cfg, "train.difficulty", DIFFICULTY_ORDERS),
                   signal_only=read.boolean(cfg, "train.signal_only"),
                   sft=SFTSettings(lr=read.number(cfg, "train.sft.lr", minimum=0, exclusive_minimum=True),
                                   batch_size=read.integer(cfg, "train.sft.batch_size", minimum=1),
                                   warmup_steps=read.integer(cfg, "train.sft.warmup_steps", minimum=0)),
                   launcher=_launcher(cfg),
                   rollout=read.choice(cfg, "train.rollout", ROLLOUTS),
                   per_device_train_batch_size=read.integer(cfg, "train.trl.per_device_train_batch_size", minimum=1,
                                                            nullable=True, null_means="the whole mini-batch"),
                   vllm_gpu_memory_utilization=read.number(cfg, "train.trl.vllm_gpu_memory_utilization", minimum=0,
                                                           maximum=1, exclusive_minimum=True),
                   checkpoint_every=read.integer(cfg, "train.checkpoint_every", minimum=1),
                   min_items=read.integer(cfg, "train.min_items", minimum=0),
                   threads=read.integer(cfg, "train.threads", minimum=1))


def _launcher(cfg: DictConfig) -> LauncherSettings:
    args = read.present(cfg, "train.launcher.args")
    if not isinstance(args, list):
        raise ConfigError("train.launcher.args", f"expected a list of accelerate launch flags, got {args!r}")
    return LauncherSettings(kind=read.choice(cfg, "train.launcher.kind", LAUNCHERS),
                            config_file=read.string(cfg, "train.launcher.config_file", nullable=True),
                            num_processes=read.integer(cfg, "train.launcher.num_processes", minimum=1),
                            num_machines=read.integer(cfg, "train.launcher.num_machines", minimum=1),
                            args=tuple(str(a) for a in args))
