"""Supervised pre-training of the tiny models on the world, so each starts partly able.

A nanoGPT-style loop: sample a mixed batch, forward, backward, clip, step, log. The vision tower
gets its own (lower) learning rate: at the text side's rate its random features, which already
separate colours, were destroyed in the feasibility run (DESIGN.md section 9).
"""

from __future__ import annotations

import logging
import math
import random
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from capcurriculum.sampling.batching import IGNORE, Item, encode_sft

log = logging.getLogger(__name__)


@dataclass
class PretrainConfig:
    steps: int
    batch_size: int
    lr: float
    vision_lr_scale: float = 0.1
    merger_lr_scale: float = 1.0   # the tower's mergers (into the language model's width); 0 freezes them
    warmup_steps: int = 100
    weight_decay: float = 0.01
    grad_clip: float = 1.0
    threads: int = 2
    mixture: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "warmup_steps", "threads"):
            if getattr(self, name) < (0 if name in ("steps", "warmup_steps") else 1):
                raise ValueError(f"pretrain.{name}: must be positive, got {getattr(self, name)}")
        if self.lr <= 0 or self.vision_lr_scale < 0 or self.merger_lr_scale < 0:
            raise ValueError("pretrain.lr must be > 0, pretrain.vision_lr_scale and pretrain.merger_lr_scale >= 0")
        if not self.mixture or any(w < 0 for w in self.mixture.values()) or sum(self.mixture.values()) <= 0:
            raise ValueError(f"pretrain.mixture: needs non-negative weights with a positive sum, got {self.mixture}")


class MixtureSampler:
    """Draws each batch element's pool by the mixture weights, then an item of that pool."""

    def __init__(self, pools: dict[str, list[Item]], weights: dict[str, float], seed: int):
        unknown = sorted(set(weights) - set(pools))
        if unknown:
            raise ValueError(f"pretrain.mixture: no data for {', '.join(unknown)} (have {', '.join(sorted(pools))})")
        self.names = [n for n, w in weights.items() if w > 0 and pools[n]]
        empty = [n for n, w in weights.items() if w > 0 and not pools[n]]
        if empty:
            raise ValueError(f"pretrain.mixture: pool(s) {', '.join(empty)} have weight but no items")
        self.pools, self.weights = pools, [weights[n] for n in self.names]
        self.rng = random.Random(seed)

    def batch(self, size: int) -> list[Item]:
        names = self.rng.choices(self.names, weights=self.weights, k=size)
        return [self.rng.choice(self.pools[n]) for n in names]


def vision_part(name: str) -> str | None:
    """Which part of the vision side a parameter belongs to: "merger", "tower" or None (the language model)."""
    if ".visual." not in f".{name}":
        return None
    return "merger" if "merger" in name else "tower"


def vision_param_groups(model, lr: float, vision_lr_scale: float, weight_decay: float,
                        merger_lr_scale: float = 1.0) -> list[dict]:
    """The language model at `lr`; the vision tower proper and its mergers each at their own scale of it
    (a scale of 0 freezes that part)."""
    parts: dict[str, list] = {"rest": [], "tower": [], "merger": []}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        parts[vision_part(name) or "rest"].append(p)
    groups = [{"params": parts["rest"], "lr": lr, "base_lr": lr, "weight_decay": weight_decay}]
    for part, scale in (("tower", vision_lr_scale), ("merger", merger_lr_scale)):
        if parts[part] and scale > 0:
            groups.append({"params": parts[part], "lr": lr * scale, "base_lr": lr * scale,
                           "weight_decay": weight_decay})
        else:
            for p in parts[part]:
                p.requires_grad_(False)
    return groups


def accumulate_grad(model, processor, items: list[Item]) -> torch.Tensor:
    """Backward the batch's mean response-token loss, one forward per prompt mode.

    Captions are ~5x longer than answers; padding a mixed batch to the longest item made a step
    ~4x slower, so each mode is its own sub-batch and the losses are token-weighted back together.
    """
    groups: dict[str, list[Item]] = {}
    for it in items:
        groups.setdefault(it.mode, []).append(it)
    encoded = [encode_sft(processor, group) for group in groups.values()]
    counts = [int((enc["labels"][:, 1:] != IGNORE).sum()) for enc in encoded]
    total = sum(counts)
    loss_sum = torch.zeros(())
    for enc, n in zip(encoded, counts):
        loss = model(**enc).loss * (n / total)  # model's loss: mean CE over this group's tokens
        loss.backward()
        loss_sum += loss.detach()
    return loss_sum


def lr_factor(step: int, warmup: int, total: int) -> float:
    if step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def pretrain(model, processor, sampler: MixtureSampler, cfg: PretrainConfig, *,
             on_log: Callable[[int, dict[str, float]], None] | None = None, log_every: int = 50,
             checkpoints: Iterable[int] = (), on_checkpoint: Callable[[int], None] | None = None) -> list[dict]:
    """`on_checkpoint(step)` after each step of `checkpoints` (steps counted from 1): the run's earlier models,
    saved without touching its random streams, so the final model is the same with or without them."""
    checkpoints = set(checkpoints)
    if checkpoints and (on_checkpoint is None or not all(1 <= s <= cfg.steps for s in checkpoints)):
        raise ValueError(f"pretrain checkpoints {sorted(checkpoints)}: need on_checkpoint and steps in 1..{cfg.steps}")
    torch.set_num_threads(cfg.threads)
    model.train()
    groups = vision_param_groups(model, cfg.lr, cfg.vision_lr_scale, cfg.weight_decay, cfg.merger_lr_scale)
    opt = torch.optim.AdamW(groups, betas=(0.9, 0.95))
    history, window, t0 = [], [], time.time()
    bar = tqdm(range(cfg.steps), desc="pretrain", unit="step", mininterval=2.0)
    for step in bar:
        for g in opt.param_groups:
            g["lr"] = g["base_lr"] * lr_factor(step, cfg.warmup_steps, cfg.steps)
        opt.zero_grad(set_to_none=True)
        loss = accumulate_grad(model, processor, sampler.batch(cfg.batch_size))
        grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        window.append(loss.item())
        if (step + 1) % log_every == 0 or step + 1 == cfg.steps:
            row = {"step": step + 1, "loss": sum(window) / len(window), "grad_norm": float(grad_norm),
                   "lr": opt.param_groups[0]["lr"], "elapsed_s": time.time() - t0}
            history.append(row)
            window.clear()
            bar.set_postfix(loss=f"{row['loss']:.3f}")
            if on_log:
                on_log(step + 1, row)
        if step + 1 in checkpoints:
            on_checkpoint(step + 1)
    model.eval()
    return history
