"""The project's GRPO loop: rollout -> reward -> advantages -> clipped update, one screen a step.

    trainer = GRPOTrainer(model, processor, settings, reward_cfg, ref_model=ref, vision_lr_scale=0.1)
    history = trainer.train(stream, steps=100, on_log=..., checkpoint=...)

One step = one rollout of `rollout_batch_size` prompts x `group_size` completions, then
`rollout_batch_size / update_batch_size` optimizer steps (the paper: 512 prompts, 4 updates of 128).
A batch is split by prompt mode (image or text prompts cannot share a generate call), and the loss
is summed over those chunks with the whole mini-batch's token count as the denominator.
"""

from __future__ import annotations

import functools
import logging
import math
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from capcurriculum.config import ConfigError
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.rewards import RewardConfig, reward
from capcurriculum.sampling.rollout import Rollout, completion_logprobs, rollout
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo_loss import group_advantages, grpo_loss
from capcurriculum.training.precision import autocast, resolve_precision
from capcurriculum.training.pretrain import vision_param_groups
from capcurriculum.training.switches import TrainSwitches

log = logging.getLogger(__name__)


class PromptStream:
    """Prompts in a seeded order, reshuffled each epoch; `state()` / `load_state()` resume exactly.

    With `weights`, an epoch is len(items) seeded draws with replacement in proportion to them
    (train.balance) instead of a permutation; with shuffle off they come in the items' order (a
    difficulty order stays easy -> hard)."""

    def __init__(self, items: Sequence[Item], seed: int, shuffle: bool = True,
                 weights: Sequence[float] | None = None):
        if not items:
            raise ValueError("PromptStream: no prompts to train on")
        if weights is not None and len(weights) != len(items):
            raise ValueError(f"PromptStream: {len(weights)} weights for {len(items)} prompts")
        self.items, self.seed, self.shuffle = list(items), seed, shuffle
        self.weights = list(weights) if weights is not None else None
        self.epoch, self.pos = 0, 0
        self._order = self._permutation()

    def _permutation(self) -> list[int]:
        idx = list(range(len(self.items)))
        rng = random.Random(self.seed * 100_003 + self.epoch)
        if self.weights is not None:
            drawn = rng.choices(idx, weights=self.weights, k=len(idx))
            return drawn if self.shuffle else sorted(drawn)  # unshuffled: the draws in the items' order
        if self.shuffle:
            rng.shuffle(idx)
        return idx

    def next(self, n: int) -> list[Item]:
        out = []
        while len(out) < n:
            if self.pos == len(self._order):
                self.epoch, self.pos = self.epoch + 1, 0
                self._order = self._permutation()
            out.append(self.items[self._order[self.pos]])
            self.pos += 1
        return out

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = int(state["epoch"]), int(state["pos"])
        self._order = self._permutation()


@dataclass
class Chunk:
    """One generate call's worth of a mini-batch: prompts of one mode, with all the update needs."""

    ro: Rollout
    adv: torch.Tensor
    old_logp: torch.Tensor | None
    ref_logp: torch.Tensor | None

    def micro_batches(self, budget: int) -> list[Chunk]:
        """This chunk in micro-batches of whole prompts (a prompt's G completions share its prefix) whose padded
        tokens, prompt + G x completion a prompt, stay within `budget` (one prompt at least); 0: whole."""
        ro, G = self.ro, self.ro.group_size
        P, per_prompt = len(ro.items), ro.prompt_len + G * ro.completion_ids.shape[1]
        k = P if budget == 0 else max(1, budget // per_prompt)
        if k >= P:
            return [self]

        def rows(t: torch.Tensor | None, p: int) -> torch.Tensor | None:
            return None if t is None else t[p * G:(p + k) * G]

        return [Chunk(ro.prompts(p, min(p + k, P)), rows(self.adv, p), rows(self.old_logp, p), rows(self.ref_logp, p))
                for p in range(0, P, k)]


def schedule_factor(step: int, total: int, schedule: str, warmup_ratio: float) -> float:
    """grpo.lr_scheduler_type / lr_warmup_ratio: the learning rate's multiplier at optimizer step `step` (0-based)
    of `total`: a linear warm-up from 0 over the first ceil(total x warmup_ratio) steps, then constant, linear to
    0 or cosine to 0, as transformers' get_{constant,linear,cosine}_schedule_with_warmup (TRL's schedules)."""
    warmup = math.ceil(total * warmup_ratio)
    if step < warmup:
        return step / max(1, warmup)
    if schedule == "constant":
        return 1.0
    progress = (step - warmup) / max(1, total - warmup)
    if schedule == "linear":
        return max(0.0, 1.0 - progress)
    return max(0.0, 0.5 * (1.0 + math.cos(math.pi * progress)))


def reference_dtype(accelerator=None) -> torch.dtype:
    """The dtype the policy's weights compute in, so a KL reference the stage loads (the lean engine's, the trl
    engine's grpo.reference: base) can be loaded in it: DeepSpeed's bf16 / fp16 engine (the trl engine under
    accelerate) holds its weights in that dtype (its JSON's `bf16.enabled`, or "auto" filled from accelerate's
    mixed_precision); without DeepSpeed the weights stay float32 (autocast, if any, lowers the matmuls)."""
    ds = accelerator.state.deepspeed_plugin if accelerator is not None else None
    if ds is None:
        return torch.float32
    for key, dtype in (("bf16", torch.bfloat16), ("fp16", torch.float16)):
        enabled = (ds.deepspeed_config.get(key) or {}).get("enabled", False)
        if enabled is True or (enabled == "auto" and accelerator.mixed_precision == key):
            return dtype
    return torch.float32


def place_reference(ref, device: torch.device | str, dtype: torch.dtype):
    """The KL reference where the policy computes: on `device` in `dtype`, in eval mode, without gradients
    (it is only ever scored under no_grad; a float32 copy on the CPU beside a CUDA policy was issue 41's
    crash 2)."""
    return ref.to(device=device, dtype=dtype).eval().requires_grad_(False)


def stage_optimizer(model, settings: GRPOSettings, vision_lr_scale: float, merger_lr_scale: float,
                    optimizer_state: dict | None = None) -> torch.optim.AdamW:
    """A stage's AdamW, shared by both engines: the language model at grpo.learning_rate, the vision tower and
    its mergers at their scales of it (0 freezes them); a carried state (train.optimizer_state: carry) keeps its
    moments and takes this stage's rates."""
    groups = vision_param_groups(model, settings.learning_rate, vision_lr_scale, settings.weight_decay,
                                 merger_lr_scale)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.999))
    if optimizer_state is not None:
        opt.load_state_dict(optimizer_state)
        for g in opt.param_groups:  # carried moments, this stage's rates
            g["lr"] = g["base_lr"] = settings.learning_rate * (g["base_lr"] / opt.param_groups[0]["base_lr"])
    return opt


def by_mode(items: Sequence[Item]) -> list[list[Item]]:
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(it.mode, []).append(it)
    return list(groups.values())


class GRPOTrainer:
    """The lean engine: one process, the model's own device (the CPU it is measured on). Several processes or
    GPUs (accelerate, DeepSpeed) are the trl engine's (training/trl_engine.py, train.engine: trl)."""

    def __init__(self, model, processor, settings: GRPOSettings, reward_cfg: RewardConfig, *, ref_model=None,
                 vision_lr_scale: float = 0.1, merger_lr_scale: float = 1.0, optimizer_state: dict | None = None,
                 reward_fn: Callable[[str, Item], dict[str, float]] | None = None, ignore_eos: bool = False,
                 switches: TrainSwitches = TrainSwitches()):
        """`reward_fn(text, item)` -> {"reward", "accuracy", "format"}: the paper's reward by default.
        `ignore_eos`: fixed-length completions (benchmarks). `switches` (training/switches.py): `lean`, completion
        tokens (sampling and scoring) through models/lean.py, under torch.compile with `compile`; `precision`,
        bf16 runs rollouts and the update's forward under autocast (training/precision.py), the weights and
        optimizer stay float32, auto is bf16 where the device computes it natively (`self.precision_choice` says
        which and why); `gradient_checkpointing`, the update recomputes each decoder layer's activations in the
        backward (transformers' checkpointing; its layers drop the key/value cache, so the update scores whole
        sequences; not the lean path, which does not call them)."""
        self.model, self.processor, self.s, self.reward_cfg = model, processor, settings, reward_cfg
        self.reward_fn = reward_fn or (lambda text, it: reward(text, it.example["answer"], it.example["answer_type"],
                                                               reward_cfg))
        self.ignore_eos, self.switches = ignore_eos, switches
        self.precision_choice = resolve_precision(switches.precision, model.device)
        self.precision = self.precision_choice.precision
        if switches.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.ref_model = ref_model if settings.kl_coef > 0 else None
        self.opt = stage_optimizer(model, settings, vision_lr_scale, merger_lr_scale, optimizer_state)
        if settings.ppo_epochs != 1:
            raise ConfigError("grpo.ppo_epochs", f"the lean engine makes one pass over each rollout; got "
                                                 f"{settings.ppo_epochs}, set 1")
        self.scheduled = settings.lr_scheduler_type != "constant" or settings.lr_warmup_ratio > 0
        self.total_steps = None  # GRPO steps of the stage, set by train(): the schedule's length
        if self.ref_model is not None:  # beside the policy, in the dtype its weights compute in
            policy_dtype = next(p.dtype for p in model.parameters() if p.is_floating_point())
            self.ref_model = place_reference(self.ref_model, model.device, policy_dtype)
        self.step_count = 0

    # --- one step -------------------------------------------------------------------------------------
    def step(self, prompts: list[Item]) -> dict[str, float]:
        s, t0 = self.s, time.time()
        self.model.eval()
        per = s.update_batch_size
        minibatches = [prompts[i:i + per] for i in range(0, len(prompts), per)]
        with autocast(self.precision, self.model.device):
            chunks = [[self._rollout(part) for part in by_mode(mb)] for mb in minibatches]
        t_rollout = time.time() - t0

        stats, grad_norm = self.update(chunks)
        self.step_count += 1

        rewards = torch.cat([c.ro.rewards for mb in chunks for c in mb])
        lengths = torch.cat([c.ro.completion_mask.sum(1) for mb in chunks for c in mb]).float()
        group_std = rewards[:, 0].view(-1, s.group_size).std(1)  # each prompt's G samples (group_size >= 2)
        out = {k: sum(st[k] for st in stats) for k in ("pg_loss", "loss", "kl") if k in stats[0]}
        out.update({k: sum(st[k] for st in stats) / len(stats) for k in ("clip_frac", "dual_clip_frac", "ratio_mean")})
        out.update({"reward": rewards[:, 0].mean().item(), "reward/accuracy": rewards[:, 1].mean().item(),
                    "reward/format": rewards[:, 2].mean().item(), "response_length": lengths.mean().item(),
                    # within groups: the mean std, and the share of groups whose rewards are all equal (no GRPO
                    # signal; TRL's frac_reward_zero_std)
                    "reward/group_std": group_std.mean().item(),
                    "reward/zero_std_frac": (group_std == 0).float().mean().item(),
                    "grad_norm": float(grad_norm if grad_norm is not None else "nan"),
                    "lr": self.opt.param_groups[0]["lr"],
                    "time/rollout_s": t_rollout, "time/update_s": time.time() - t0 - t_rollout,
                    "prompts_per_s": len(prompts) / (time.time() - t0)})
        return out

    def update(self, minibatches: list[list[Chunk]]) -> tuple[list[dict[str, float]], torch.Tensor]:
        """One optimizer step per mini-batch of rolled-out chunks: the loss of each chunk with the mini-batch's
        token count as denominator."""
        s = self.s
        self.model.train()
        stats: list[dict[str, float]] = []
        for j, mb in enumerate(minibatches):
            if self.scheduled:
                self._schedule(self.step_count * len(minibatches) + j, len(minibatches))
            n_tokens = sum(int(c.ro.completion_mask.sum()) for c in mb)
            self.opt.zero_grad(set_to_none=True)
            for c in (part for chunk in mb for part in chunk.micro_batches(s.micro_batch_tokens)):
                with autocast(self.precision, self.model.device):
                    logp = completion_logprobs(self.model, c.ro, s.temperature, lean=self.switches.lean,
                                               compile=self.switches.compile)            # (n, C)
                old = c.old_logp if c.old_logp is not None else logp.detach()
                # each micro-batch's token sum over the whole mini-batch's count: the sum is its token mean
                loss, st = grpo_loss(logp, old, c.ref_logp, c.adv, c.ro.completion_mask, s, n_tokens=n_tokens)
                stats.append(st)
                loss.backward()  # micro-batch by micro-batch: only one's activations alive at a time
            grad_norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), s.max_grad_norm)
            self.opt.step()
        return stats, grad_norm

    def _schedule(self, index: int, per_step: int) -> None:
        """The rate of optimizer step `index` (of the stage's total_steps x per_step), from the index alone, so a
        resumed stage continues the schedule exactly."""
        if self.total_steps is None:
            raise ValueError("a learning-rate schedule needs the stage's length: run GRPOTrainer.train")
        f = schedule_factor(index, self.total_steps * per_step, self.s.lr_scheduler_type, self.s.lr_warmup_ratio)
        for g in self.opt.param_groups:
            g["lr"] = g["base_lr"] * f

    @torch.no_grad()
    def _rollout(self, items: list[Item]) -> Chunk:
        s = self.s
        ro = rollout(self.model, self.processor, items, group_size=s.group_size, ignore_eos=self.ignore_eos,
                     max_new_tokens=s.max_response_length, temperature=s.temperature, top_p=s.top_p,
                     lean=self.switches.lean, compile=self.switches.compile)
        scores = [self.reward_fn(text, ro.item_of(i)) for i, text in enumerate(ro.texts)]
        ro.rewards = torch.tensor([[r["reward"], r["accuracy"], r["format"]] for r in scores])
        adv = group_advantages(ro.rewards[:, 0], s.group_size, s.adv_eps).to(self.model.device)
        # With one update per rollout the first (only) mini-batch is on-policy: old = current, no extra pass.
        score = functools.partial(completion_logprobs, ro=ro, temperature=s.temperature, lean=self.switches.lean,
                                  compile=self.switches.compile)
        old = score(self.model) if s.updates_per_rollout > 1 or s.ppo_epochs > 1 else None
        ref = score(self.ref_model) if self.ref_model is not None else None
        return Chunk(ro, adv, old, ref)

    # --- the loop -------------------------------------------------------------------------------------
    def train(self, stream: PromptStream, steps: int, *, on_log: Callable[[int, dict], None] | None = None,
              checkpoint: Callable[[int], None] | None = None, checkpoint_every: int = 0,
              progress: bool = True, restore: Callable[[], None] | None = None) -> list[dict[str, float]]:
        """`restore()`: loads a resumable point into the model and optimizer once the engine is ready (here, at
        once; the trl engine, once TRL has prepared them)."""
        from tqdm.auto import tqdm

        if restore is not None:
            restore()
        history: list[dict[str, float]] = []
        self.total_steps = steps
        bar = tqdm(range(self.step_count, steps), desc="grpo", unit="step", disable=not progress, mininterval=2.0,
                   initial=self.step_count, total=steps)
        for _ in bar:
            row = self.step(stream.next(self.s.rollout_batch_size))
            history.append(row)
            bar.set_postfix(reward=f"{row['reward']:.3f}", acc=f"{row['reward/accuracy']:.3f}")
            if on_log:
                on_log(self.step_count, row)
            if checkpoint and checkpoint_every and self.step_count % checkpoint_every == 0 and self.step_count < steps:
                checkpoint(self.step_count)
        self.model.eval()
        return history
