"""The GRPO semantics the paper trained with, stated once (DESIGN.md section 3).

The authors ran GRPO through EasyR1's example config. Every field below carries that value, why it is
there, and where it comes from: "paper" (the paper's text), or a path in EasyR1 (hiyouga/EasyR1,
`examples/config.yaml` and the defaults in `verl/workers/actor/config.py`). Our loss
(`capcurriculum.training.grpo_loss`) reads these settings directly; `training/trl_config.py` maps them onto
TRL's `GRPOConfig`. They live in the settings layer, below everything, because `config.py` checks params.yaml's
`grpo` section with them before any node runs.

    settings = GRPOSettings()                       # the paper's profile
    settings = GRPOSettings.from_dict(cfg.grpo)     # from params.yaml; unknown keys are refused
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

_EASYR1 = "EasyR1 examples/config.yaml"
_EASYR1_ACTOR = "EasyR1 verl/workers/actor/config.py (ActorConfig default)"

LR_SCHEDULERS = ("constant", "linear", "cosine")
KL_ESTIMATORS = ("low_var_kl",)
REFERENCES = ("stage_start", "base")
LOSS_AGG_MODES = ("token-mean",)


@dataclass
class GRPOSettings:
    # --- sampling (rollout) ---
    group_size: int = field(default=5, metadata={"help": (
        "Completions sampled per prompt (G). The group's mean reward is each completion's baseline, so at "
        f"least 2 are needed. Source: {_EASYR1}, worker.rollout.n: 5.")})
    temperature: float = field(default=1.0, metadata={"help": (
        "Sampling temperature. The loss scores tokens at the same temperature (EasyR1 divides the actor's "
        f"logits by it), so the old and new logprobs describe the sampler. Source: {_EASYR1}, "
        "worker.rollout.temperature: 1.0.")})
    top_p: float = field(default=1.0, metadata={"help": (
        "Nucleus sampling mass. 1.0 samples the full distribution, so the sampled tokens are on-policy for the "
        f"logprobs the loss uses. Source: {_EASYR1}, worker.rollout.top_p: 1.0.")})
    max_prompt_length: int = field(default=2048, metadata={"help": (
        "Longest prompt, in tokens. EasyR1 drops longer prompts from the data (data.filter_overlong_prompts) "
        f"rather than truncating them. Source: {_EASYR1}, data.max_prompt_length: 2048.")})
    max_response_length: int = field(default=2048, metadata={"help": (
        "Longest sampled response, in tokens; longer ones are cut. Source: "
        f"{_EASYR1}, data.max_response_length: 2048.")})

    # --- batches ---
    rollout_batch_size: int = field(default=512, metadata={"help": (
        "Prompts sampled per rollout (each gets group_size completions), i.e. per advantage computation. "
        f"Source: {_EASYR1}, data.rollout_batch_size: 512.")})
    update_batch_size: int = field(default=128, metadata={"help": (
        "Prompts per optimizer step (a mini-batch of update_batch_size * group_size completions), so one "
        "rollout gives rollout_batch_size / update_batch_size optimizer steps (4 in the paper). Source: "
        f"{_EASYR1}, worker.actor.global_batch_size: 128 (EasyR1 multiplies it by rollout.n).")})
    micro_batch_tokens: int = field(default=0, metadata={"help": (
        "Token budget of one forward/backward in the update (memory only: the loss and the step are the same). "
        "Each mini-batch is split into micro-batches of whole prompts (a prompt's G completions stay together: "
        "they share its prefix) whose padded tokens, prompt + G x completion a prompt, stay within it (one prompt "
        "at least); gradients accumulate, each micro-batch's loss divided by the whole mini-batch's token count, "
        "so their sum is the unsplit token mean. 0 runs each mini-batch whole. Source: verl's actor "
        "use_dynamic_bsz with ppo_max_token_len_per_gpu (a token budget per GPU; 16384 in verl's documented "
        "example); EasyR1 inherits it as dynamic batching. The lean engine's; the trl engine micro-batches by "
        "completions (train.trl.per_device_train_batch_size) and refuses a budget.")})
    ppo_epochs: int = field(default=1, metadata={"help": (
        "Passes over each rollout. 1 keeps the first mini-batch exactly on-policy (ratio 1) and the later ones "
        f"near it. The lean engine (training/grpo.py) makes one pass and refuses other values; the trl engine "
        f"honours it (TRL's num_iterations). Source: "
        f"{_EASYR1_ACTOR}, ppo_epochs: 1.")})

    # --- optimizer ---
    learning_rate: float = field(default=1e-6, metadata={"help": (
        f"AdamW learning rate. Source: paper; {_EASYR1}, worker.actor.optim.lr: 1.0e-6.")})
    lr_scheduler_type: str = field(default="constant", metadata={"help": (
        f"Learning-rate schedule, one of {LR_SCHEDULERS}. The paper keeps the rate constant. Source: "
        f"{_EASYR1}, worker.actor.optim (lr_warmup_ratio: 0.0, no decay). Both engines follow transformers' "
        "schedules of the same names.")})
    lr_warmup_ratio: float = field(default=0.0, metadata={"help": (
        "Fraction of the steps spent warming the rate up linearly from 0. Source: "
        f"{_EASYR1}, worker.actor.optim.lr_warmup_ratio: 0.0.")})
    weight_decay: float = field(default=1e-2, metadata={"help": (
        f"AdamW weight decay. Source: {_EASYR1}, worker.actor.optim.weight_decay: 1.0e-2.")})
    max_grad_norm: float = field(default=1.0, metadata={"help": (
        f"Global gradient-norm clip per optimizer step. Source: {_EASYR1}, worker.actor.max_grad_norm: 1.0.")})

    # --- KL to the reference ---
    kl_coef: float = field(default=1e-2, metadata={"help": (
        "Weight of the KL-to-reference term, added to the loss (not subtracted from the reward). 0 disables it "
        f"and the reference model is not needed. Source: {_EASYR1}, algorithm.use_kl_loss: true, "
        "algorithm.kl_coef: 1.0e-2.")})
    kl_estimator: str = field(default="low_var_kl", metadata={"help": (
        "Per-token KL estimator. 'low_var_kl' is Schulman's k3, exp(ref - logp) - (ref - logp) - 1: unbiased, "
        f"always >= 0 and low-variance. Source: {_EASYR1}, algorithm.kl_penalty: low_var_kl.")})
    kl_clamp: float = field(default=10.0, metadata={"help": (
        "k3 is clamped to [-kl_clamp, kl_clamp] per token (after the log-ratio is clamped to [-20, 20]), so a "
        "token far from the reference cannot dominate the loss; past the clamp it gets no KL gradient. Source: "
        "EasyR1 verl/trainer/core_algos.py, compute_kl (low_var_kl branch).")})
    reference: str = field(default="stage_start", metadata={"help": (
        "Which model the KL term pulls towards: 'stage_start', the checkpoint the stage starts from (the paper "
        "and EasyR1 use the run's initial model, and each curriculum stage is a run), or 'base', the model "
        "before any stage (a variant that anchors every stage to the same model). Source: paper; EasyR1's "
        "ref worker loads worker.actor.model.model_path.")})

    # --- clipped objective ---
    clip_ratio_low: float = field(default=0.2, metadata={"help": (
        "PPO's lower clip: the ratio's log is clamped at log(1 - clip_ratio_low). Source: "
        f"{_EASYR1_ACTOR}, clip_ratio_low: 0.2.")})
    clip_ratio_high: float = field(default=0.3, metadata={"help": (
        "PPO's upper clip (DAPO's clip-higher): log(1 + clip_ratio_high). Wider than the lower one, so "
        f"unlikely tokens with positive advantage can grow. Source: {_EASYR1_ACTOR}, clip_ratio_high: 0.3.")})
    clip_ratio_dual: float = field(default=3.0, metadata={"help": (
        "Dual-clip constant c (Ye et al. 2020): for negative advantages the per-token loss is capped at "
        "-c * A, so a token whose ratio has run far above 1 cannot produce an unbounded loss. Must be >= "
        f"1 + clip_ratio_high. Source: {_EASYR1_ACTOR}, clip_ratio_dual: 3.0.")})

    # --- advantages and aggregation ---
    adv_eps: float = field(default=1e-6, metadata={"help": (
        "Advantage = (r - group mean) / (group std + adv_eps), std unbiased (n - 1); a group whose rewards are "
        "all equal gets 0. Source: EasyR1 verl/trainer/core_algos.py, compute_grpo_outcome_advantage "
        "(eps=1e-6, torch.std).")})
    loss_agg_mode: str = field(default="token-mean", metadata={"help": (
        "How per-token losses become one number: 'token-mean' averages over every response token of the whole "
        "mini-batch (micro-batches are summed with the mini-batch's token count as denominator), so long "
        f"responses weigh by their length. Source: {_EASYR1_ACTOR}, loss_avg_mode: token; "
        "verl/workers/actor/dp_actor.py scales each micro-batch by its share of the all-reduced token count.")})

    def __post_init__(self) -> None:
        self._check_types()
        self._check_ranges()

    def _check_types(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if f.type == "int":
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"grpo.{f.name}: must be an integer, got {value!r} ({type(value).__name__})")
            elif f.type == "float":
                if isinstance(value, bool) or not isinstance(value, int | float):
                    hint = (" (YAML reads 1e-6 as a string: write 1.0e-6)"
                            if isinstance(value, str) else "")
                    raise ValueError(f"grpo.{f.name}: must be a number, got {value!r}{hint}")
                if not math.isfinite(value):
                    raise ValueError(f"grpo.{f.name}: must be finite, got {value!r}")
                setattr(self, f.name, float(value))
            elif not isinstance(value, str):
                raise ValueError(f"grpo.{f.name}: must be a string, got {value!r}")

    def _check_ranges(self) -> None:
        def need(ok: bool, name: str, why: str) -> None:
            if not ok:
                raise ValueError(f"grpo.{name}: {why}, got {getattr(self, name)!r}")

        need(self.group_size >= 2, "group_size",
             "GRPO's baseline is the group mean, so it needs >= 2 completions per prompt (paper: 5)")
        need(self.temperature > 0, "temperature", "must be > 0 (paper: 1.0)")
        need(0 < self.top_p <= 1, "top_p", "must be in (0, 1] (paper: 1.0)")
        for name in ("max_prompt_length", "max_response_length", "rollout_batch_size", "update_batch_size",
                     "ppo_epochs"):
            need(getattr(self, name) >= 1, name, "must be >= 1")
        need(self.micro_batch_tokens >= 0, "micro_batch_tokens", "must be >= 0 (0: each mini-batch whole)")
        need(self.rollout_batch_size % self.update_batch_size == 0, "rollout_batch_size",
             f"must be a multiple of grpo.update_batch_size ({self.update_batch_size}) so each rollout splits "
             "into equal mini-batches (paper: 512 = 4 x 128)")
        need(self.learning_rate > 0, "learning_rate", "must be > 0 (paper: 1.0e-6)")
        need(self.lr_scheduler_type in LR_SCHEDULERS, "lr_scheduler_type", f"must be one of {LR_SCHEDULERS}")
        need(0 <= self.lr_warmup_ratio < 1, "lr_warmup_ratio", "must be in [0, 1) (paper: 0.0)")
        need(self.weight_decay >= 0, "weight_decay", "must be >= 0 (paper: 1.0e-2)")
        need(self.max_grad_norm > 0, "max_grad_norm", "must be > 0 (paper: 1.0)")
        need(self.kl_coef >= 0, "kl_coef", "must be >= 0; 0 turns the KL term off (paper: 1.0e-2)")
        need(self.kl_estimator in KL_ESTIMATORS, "kl_estimator",
             f"only {KL_ESTIMATORS} (Schulman's k3, what the paper used) is implemented")
        need(self.kl_clamp > 0, "kl_clamp", "must be > 0 (EasyR1: 10.0)")
        need(self.reference in REFERENCES, "reference", f"must be one of {REFERENCES}")
        need(0 <= self.clip_ratio_low < 1, "clip_ratio_low",
             "must be in [0, 1): the ratio is clamped at log(1 - clip_ratio_low) (paper: 0.2)")
        need(self.clip_ratio_high >= 0, "clip_ratio_high", "must be >= 0 (paper: 0.3)")
        need(self.clip_ratio_dual >= 1 + self.clip_ratio_high, "clip_ratio_dual",
             f"must be >= 1 + grpo.clip_ratio_high (= {1 + self.clip_ratio_high:g}) so the dual clip only caps "
             "ratios beyond PPO's trust region (paper: 3.0)")
        need(self.adv_eps > 0, "adv_eps", "must be > 0 (EasyR1: 1e-6)")
        need(self.loss_agg_mode in LOSS_AGG_MODES, "loss_agg_mode",
             f"only {LOSS_AGG_MODES} (what the paper used) is implemented")

    # Batches in completions, and the optimizer steps one rollout gives.
    @property
    def completions_per_rollout(self) -> int:
        return self.rollout_batch_size * self.group_size

    @property
    def completions_per_update(self) -> int:
        return self.update_batch_size * self.group_size

    @property
    def updates_per_rollout(self) -> int:
        return self.rollout_batch_size // self.update_batch_size

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> GRPOSettings:
        """Build from a params mapping (dict or OmegaConf node); a key that is not a field is an error."""
        values = dict(values)
        known = [f.name for f in fields(cls)]
        unknown = sorted(set(values) - set(known))
        if unknown:
            raise ValueError(f"grpo: unknown key(s) {', '.join(unknown)}; the fields are {', '.join(known)}")
        return cls(**values)
