"""The `train` keys a stage reads to set itself up: the engine, how the model is loaded, and the held-out slices
it measures on. They sit beside training/switches.py's TrainSwitches (the forward's switches, which need the loaded
model to check) and are read once, checked before any node runs (config.validate builds them).

    train = TrainSettings.from_config(cfg)
"""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from capcurriculum.settings.choices import ATTN_IMPLEMENTATIONS, ENGINES, WEIGHT_DTYPES, ConfigError
from capcurriculum.settings import read


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
                   eval_n=eval_n, headroom_n=headroom_n if headroom_n is not None else eval_n)
