"""A training node's switches, read from the config once: which forward the completion tokens take, whether it is
compiled, the precision the engine's forward passes run at, and whether the update checkpoints transformers'
decoder layers. The stage and its engine hold one `TrainSwitches` instead of handing four loose flags from call
to call, and a combination that cannot run is refused where it is built, naming its key."""

from __future__ import annotations

from dataclasses import dataclass

from omegaconf import DictConfig

from capcurriculum.config import (
    CHECKPOINTING_NEEDS_TRANSFORMERS,
    COMPILE_NEEDS_LEAN,
    COMPLETION_FORWARDS,
    PRECISIONS,
    ConfigError,
)
from capcurriculum.settings import read
from capcurriculum.training.precision import check_precision


@dataclass(frozen=True)
class TrainSwitches:
    """Each trades speed or memory and none changes the GRPO objective; bf16 changes the numbers by its rounding
    (docs/benchmarks.md)."""

    lean: bool = False  # train.completion_forward: lean; completion tokens (sampling, scoring) through models/lean.py
    compile: bool = False  # train.compile: the lean path under torch.compile (needs lean)
    precision: str = "fp32"  # train.precision (auto | fp32 | bf16); the engine resolves auto on its device
    gradient_checkpointing: bool = False  # train.gradient_checkpointing: transformers' decoder layers (not lean)

    def __post_init__(self) -> None:
        check_precision(self.precision, "train.precision")
        if self.compile and not self.lean:
            raise ConfigError("train.compile", COMPILE_NEEDS_LEAN)
        if self.gradient_checkpointing and self.lean:
            raise ConfigError("train.gradient_checkpointing", CHECKPOINTING_NEEDS_TRANSFORMERS)

    @classmethod
    def of(cls, cfg: DictConfig, model, precision: str | None = None) -> TrainSwitches:
        """The node's switches for `model`: the lean path runs SUPPORTED models only (another is a ConfigError).
        `precision`: train.precision as the node resolved it (stages/train.py); None: as configured."""
        from capcurriculum.models.lean import (  # transformers: seconds to import, only here
            SUPPORTED,
            supports,
        )

        lean = read.choice(cfg, "train.completion_forward", COMPLETION_FORWARDS) == "lean"
        if lean and not supports(model):
            raise ConfigError("train.completion_forward", f"lean runs {SUPPORTED} models only, not "
                                                          f"{model.config.model_type!r}; use transformers")
        return cls(lean=lean, compile=read.boolean(cfg, "train.compile"),
                   precision=precision or read.choice(cfg, "train.precision", PRECISIONS),
                   gradient_checkpointing=read.boolean(cfg, "train.gradient_checkpointing"))
