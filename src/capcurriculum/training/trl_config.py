"""GRPOSettings in TRL 1.16's terms: `to_trl_config` maps what TRL's `GRPOConfig` can express, and `TRL_GAPS`
lists, each checked in TRL's source, what it cannot. The trl engine (`training/trl_engine.py`, train.engine: trl)
closes every gap by an override of TRL's trainer that names it, so both engines compute the paper's update
(tests/training/test_trl_engine.py).

    trl_args = to_trl_config(settings, "out/", bf16=False, report_to="none")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from capcurriculum.settings.grpo import GRPOSettings

if TYPE_CHECKING:  # importing trl costs seconds; only to_trl_config needs it
    import trl


@dataclass(frozen=True)
class TRLGap:
    """One semantics of GRPOSettings that trl 1.16.0's GRPOConfig/GRPOTrainer cannot express."""

    setting: str  # the GRPOSettings field(s) concerned
    ours: str  # what the paper (EasyR1) does
    trl: str  # what TRL does instead
    source: str  # where in trl 1.16.0 (file:line of the installed package, checked by reading it)
    effect: str  # when the difference shows


TRL_GAPS: tuple[TRLGap, ...] = (
    TRLGap(
        setting="kl_clamp",
        ours="k3 on a log-ratio clamped to [-20, 20], then k3 clamped to [-kl_clamp, kl_clamp] = [-10, 10]",
        trl="per_token_kl = exp(ref - logp) - (ref - logp) - 1, with no clamp at all",
        source="trl/trainer/grpo_trainer.py:3100-3102 (_compute_loss)",
        effect="only tokens whose logprob moved far from the reference: k3 > 10 needs ref - logp > ~2.6 "
               "or < -11 nats; there TRL's KL keeps growing (and keeps its gradient) where ours is flat",
    ),
    TRLGap(
        setting="adv_eps",
        ours="advantage = (r - mean) / (std + 1e-6)",
        trl="advantage = (r - mean) / (std + 1e-4), the epsilon hard-coded (scale_rewards='group'); the std is "
            "unbiased like ours (nanstd's Bessel correction, trl/trainer/utils.py:1041-1043), and a constant "
            "group gives 0 in both",
        source="trl/trainer/grpo_trainer.py:2786-2787 (_generate_and_score_completions)",
        effect="advantages differ by a factor (std + 1e-6) / (std + 1e-4): 2e-4 relative at std 0.5, more "
               "for groups whose rewards nearly agree",
    ),
    TRLGap(
        setting="loss_agg_mode, update_batch_size",
        ours="token-mean over the whole mini-batch: each optimizer step divides by that mini-batch's own "
             "token count, all-reduced over devices (EasyR1 dp_actor.py update_policy)",
        trl="'bnpo' divides each micro-batch by its own (local) token count and then by the accumulation "
            "steps; 'dapo' divides by the generation batch's token count (gathered over processes) times "
            "gradient_accumulation_steps / steps_per_generation",
        source="trl/trainer/grpo_trainer.py:3158-3162 (bnpo), 3168-3174 (dapo); num_items_in_batch spans the "
               "generation batch: grpo_trainer.py:2498",
        effect="exact for 'bnpo' when one process holds the mini-batch in one micro-batch, and for 'dapo' when "
               "a rollout is a single optimizer step (to_trl_config picks the exact one when either holds). "
               "Otherwise 'dapo' divides each mini-batch by the rollout's mean mini-batch token count",
    ),
    TRLGap(
        setting="max_prompt_length",
        ours="prompts longer than max_prompt_length are dropped from the data (EasyR1 filter_overlong_prompts)",
        trl="GRPOConfig has max_completion_length but no prompt-length field; prompts are never cut",
        source="trl/trainer/grpo_config.py:494 (max_completion_length, the only length field); "
               "grpo_trainer.py:1684 (_tokenize_prompts, no truncation)",
        effect="filter long prompts when the data are built, before TRL sees them",
    ),
    TRLGap(
        setting="reference",
        ours="reference='base' anchors every stage to the pre-curriculum model",
        trl="the reference is loaded from the policy's own checkpoint path (so it is the stage's start model); "
            "GRPOTrainer takes no ref_model argument",
        source="trl/trainer/grpo_trainer.py:1003 (create_model_from_path(get_config_model_id(model.config))), "
               "__init__ signature at grpo_trainer.py:302-322",
        effect="reference='stage_start' matches when the trainer is given the stage's start checkpoint; "
               "'base' needs trainer.ref_model replaced after construction (to_trl_config refuses it)",
    ),
    TRLGap(
        setting="(log-ratio clamp)",
        ours="ratio = exp(clamp(logp - old_logp, -20, 20)); the PPO clip is applied to the log-ratio",
        trl="coef_1 = exp(logp - old_logp) unclamped, then clamp(coef_1, 1 - eps, 1 + eps_high)",
        source="trl/trainer/grpo_trainer.py:3095, 3113",
        effect="none inside |log-ratio| < 20 (clipping the log or the ratio is the same up to float rounding); "
               "beyond it TRL's ratio can overflow to inf",
    ),
)
"""What TRL 1.16's GRPOConfig cannot express (the trl engine closes each: training/trl_engine.py). Not a gap: the
dual clip. TRL's `delta` (INTELLECT-2's two-sided clip)
clamps the unclipped ratio from above, coef_1 = min(r, delta), before -min(coef_1 * A, coef_2 * A)
(trl/trainer/grpo_trainer.py:3115-3120). For A < 0 that is -A * max(min(r, delta), clip(r)), and EasyR1's
dual clip is -A * min(max(r, clip(r)), c): equal for every r (and with the same zero gradient past c) when
c = delta >= 1 + epsilon_high; for A > 0 delta never binds since clip(r) <= 1 + epsilon_high. So
to_trl_config sets delta = clip_ratio_dual. (TRL's clip-fraction metrics ignore delta, grpo_trainer.py:3274.)"""


# TRL fields set from the settings; passing one of these as an override would silently change the semantics.
_MAPPED = (
    "num_generations", "temperature", "top_p", "top_k", "max_completion_length", "learning_rate",
    "lr_scheduler_type", "warmup_steps", "weight_decay", "max_grad_norm", "beta", "epsilon", "epsilon_high",
    "delta", "loss_type", "scale_rewards", "importance_sampling_level", "num_iterations",
    "per_device_train_batch_size", "gradient_accumulation_steps", "steps_per_generation", "sync_ref_model",
    "mask_truncated_completions", "top_entropy_quantile", "entropy_coef", "use_bias_correction_kl",
    "multi_objective_aggregation",
)


def trl_batch_layout(settings: GRPOSettings, per_device_train_batch_size: int | None = None,
                     num_processes: int = 1) -> dict[str, Any]:
    """TRL's batch knobs for our batches, and the loss_type that normalises like EasyR1.

    TRL counts completions, EasyR1 prompts. One optimizer step takes per_device * processes * accumulation
    completions = update_batch_size * group_size; one generation feeds steps_per_generation micro-steps.
    """
    per_update = settings.completions_per_update
    if per_device_train_batch_size is None:
        if per_update % num_processes:
            raise ValueError(f"grpo.update_batch_size * group_size ({per_update}) does not split over "
                             f"{num_processes} processes; pass per_device_train_batch_size")
        per_device_train_batch_size = per_update // num_processes
    micro = per_device_train_batch_size * num_processes
    if per_device_train_batch_size < 1 or per_update % micro:
        raise ValueError(f"per_device_train_batch_size ({per_device_train_batch_size}) x {num_processes} "
                         f"process(es) must divide grpo.update_batch_size * group_size ({per_update})")
    accumulation = per_update // micro
    steps_per_generation = accumulation * settings.updates_per_rollout
    # See TRL_GAPS: 'dapo' is exact when a rollout is one optimizer step, 'bnpo' when one micro-batch on one
    # process is the whole mini-batch; otherwise 'dapo' (the rollout's mean mini-batch token count) is closest.
    if steps_per_generation != accumulation and accumulation == 1 and num_processes == 1:
        loss_type, exact = "bnpo", True
    else:
        loss_type, exact = "dapo", steps_per_generation == accumulation
    return {"per_device_train_batch_size": per_device_train_batch_size,
            "gradient_accumulation_steps": accumulation, "steps_per_generation": steps_per_generation,
            "loss_type": loss_type, "token_mean_exact": exact}


def to_trl_config(settings: GRPOSettings, output_dir: str, *, per_device_train_batch_size: int | None = None,
                  num_processes: int = 1, **overrides: Any) -> trl.GRPOConfig:
    """A `trl.GRPOConfig` (TRL 1.16) with every semantics of `settings` that TRL can express.

    settings -> TRL: group_size -> num_generations; kl_coef -> beta (TRL's KL is k3 in the loss, unclamped);
    clip_ratio_low/high -> epsilon/epsilon_high; clip_ratio_dual -> delta (equal to the dual clip, see
    TRL_GAPS' docstring); advantages -> scale_rewards='group'; token-mean -> loss_type 'bnpo' or 'dapo'
    (trl_batch_layout); ppo_epochs -> num_iterations; max_response_length -> max_completion_length; the
    optimizer fields one to one, lr_warmup_ratio -> warmup_steps (a float < 1 is a ratio in transformers 5).
    The rest of TRL's loss options are pinned off. What cannot be expressed is in TRL_GAPS.

    `overrides` are other GRPOConfig fields (bf16, report_to, logging_steps, ...); overriding a field that
    comes from the settings is refused, change the settings instead.
    """
    if settings.reference != "stage_start":
        raise ValueError("grpo.reference: TRL 1.16 always loads its reference from the policy's own checkpoint "
                         "(trl/trainer/grpo_trainer.py:1003), so reference='base' has no GRPOConfig form; use "
                         "reference='stage_start' with TRL, or our own loop for 'base'")
    clashing = sorted(set(overrides) & set(_MAPPED))
    if clashing:
        raise ValueError(f"to_trl_config: {', '.join(clashing)} come(s) from GRPOSettings; set the settings "
                         "field instead of overriding the TRL one")
    from trl import GRPOConfig

    layout = trl_batch_layout(settings, per_device_train_batch_size, num_processes)
    scheduler = settings.lr_scheduler_type
    if scheduler == "constant" and settings.lr_warmup_ratio > 0:
        scheduler = "constant_with_warmup"
    return GRPOConfig(
        output_dir=str(output_dir),
        # sampling
        num_generations=settings.group_size,
        temperature=settings.temperature,
        top_p=settings.top_p,
        top_k=0,  # off, as EasyR1's rollout.top_k=-1
        max_completion_length=settings.max_response_length,
        # batches
        per_device_train_batch_size=layout["per_device_train_batch_size"],
        gradient_accumulation_steps=layout["gradient_accumulation_steps"],
        steps_per_generation=layout["steps_per_generation"],
        num_iterations=settings.ppo_epochs,
        # optimizer
        learning_rate=settings.learning_rate,
        lr_scheduler_type=scheduler,
        warmup_steps=settings.lr_warmup_ratio,
        weight_decay=settings.weight_decay,
        max_grad_norm=settings.max_grad_norm,
        # objective
        beta=settings.kl_coef,
        epsilon=settings.clip_ratio_low,
        epsilon_high=settings.clip_ratio_high,
        delta=settings.clip_ratio_dual,
        loss_type=layout["loss_type"],
        scale_rewards="group",
        multi_objective_aggregation="sum_then_normalize",
        importance_sampling_level="token",
        # TRL extras the paper does not use
        sync_ref_model=False,
        mask_truncated_completions=False,
        top_entropy_quantile=1.0,
        entropy_coef=0.0,
        use_bias_correction_kl=False,
        **overrides,
    )
