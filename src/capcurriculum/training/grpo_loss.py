"""The GRPO objective the paper trained with (EasyR1's), as plain tensor functions.

    adv  = group_advantages(rewards, G, eps)                      # (r - mean) / (std + eps), per group
    loss, stats = grpo_loss(logp, old_logp, ref_logp, adv, mask, settings)

Per token, with log-ratio l = clamp(logp - old_logp, -20, 20):
    clipped = max(-A e^l, -A e^clamp(l, log(1 - eps_low), log(1 + eps_high)))   PPO, asymmetric
    pg      = min(clipped, -A c) if A < 0 else clipped                          dual clip
    k3      = clamp(e^d - d - 1, -kl_clamp, kl_clamp), d = clamp(ref - logp, -20, 20)
and the loss is the token mean of pg + kl_coef * k3 over every response token of the mini-batch.
"""

from __future__ import annotations

import math

import torch

from capcurriculum.settings.grpo import GRPOSettings


def group_advantages(rewards: torch.Tensor, group_size: int, eps: float = 1e-6) -> torch.Tensor:
    """Group-normalised advantages for rewards laid out as P consecutive groups of G."""
    r = rewards.float().view(-1, group_size)
    mean = r.mean(1, keepdim=True)
    std = r.std(1, keepdim=True, unbiased=True)
    return ((r - mean) / (std + eps)).view(-1)


def masked_mean(x: torch.Tensor, mask: torch.Tensor, denominator: float | None = None) -> torch.Tensor:
    return (x * mask).sum() / (denominator if denominator is not None else mask.sum().clamp(min=1))


def grpo_loss(logp: torch.Tensor, old_logp: torch.Tensor, ref_logp: torch.Tensor | None, adv: torch.Tensor,
              mask: torch.Tensor, s: GRPOSettings, n_tokens: float | None = None
              ) -> tuple[torch.Tensor, dict[str, float]]:
    """Token-mean GRPO loss over (N, C) per-token log-probs; `adv` is (N,), `mask` (N, C).

    `n_tokens` is the mini-batch's response-token count when this batch is one chunk of it (the chunks'
    losses then sum to the mini-batch's token mean); by default this batch's own count.
    """
    mask = mask.to(logp.dtype)
    A = adv.unsqueeze(1).to(logp.dtype)
    log_ratio = torch.clamp(logp - old_logp, -20.0, 20.0)
    ratio = torch.exp(log_ratio)
    clipped_ratio = torch.exp(torch.clamp(log_ratio, math.log(1 - s.clip_ratio_low), math.log(1 + s.clip_ratio_high)))
    pg_unclipped, pg_clip = -A * ratio, -A * clipped_ratio
    pg = torch.maximum(pg_unclipped, pg_clip)
    pg = torch.where(A < 0, torch.minimum(pg, -A * s.clip_ratio_dual), pg)
    loss = masked_mean(pg, mask, n_tokens)

    stats = {"pg_loss": loss.item(),
             "clip_frac": masked_mean((pg_clip > pg_unclipped).float(), mask).item(),
             "dual_clip_frac": masked_mean(((A < 0) & (pg_clip.clamp(min=pg_unclipped) > -A * s.clip_ratio_dual))
                                           .float(), mask).item(),
             "ratio_mean": masked_mean(ratio.detach(), mask).item()}
    if ref_logp is not None and s.kl_coef > 0:
        d = torch.clamp(ref_logp - logp, -20.0, 20.0)
        k3 = torch.clamp(torch.exp(d) - d - 1, -s.kl_clamp, s.kl_clamp)
        kl = masked_mean(k3, mask, n_tokens)
        loss = loss + s.kl_coef * kl
        stats["kl"] = kl.item()
    stats["loss"] = loss.item()
    return loss, stats
