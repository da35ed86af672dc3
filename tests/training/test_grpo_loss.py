"""The GRPO loss against an independent, per-token scalar computation of the paper's formula."""

import math

import pytest
import torch

from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo_loss import group_advantages, grpo_loss


def _reference(logp, old, ref, adv, mask, s):
    """The EasyR1 formula written token by token with Python floats."""
    lo, hi = math.log(1 - s.clip_ratio_low), math.log(1 + s.clip_ratio_high)
    pg_sum = kl_sum = 0.0
    n = 0
    for i in range(len(logp)):
        a = adv[i]
        for t in range(len(logp[i])):
            if not mask[i][t]:
                continue
            n += 1
            lr = min(max(logp[i][t] - old[i][t], -20), 20)
            unclipped = -a * math.exp(lr)
            clipped = -a * math.exp(min(max(lr, lo), hi))
            pg = max(unclipped, clipped)
            if a < 0:
                pg = min(pg, -a * s.clip_ratio_dual)
            pg_sum += pg
            d = min(max(ref[i][t] - logp[i][t], -20), 20)
            kl_sum += min(max(math.exp(d) - d - 1, -s.kl_clamp), s.kl_clamp)
    return pg_sum / n + s.kl_coef * kl_sum / n


def test_loss_matches_the_formula_on_a_hand_made_batch():
    s = GRPOSettings(kl_coef=0.05)
    # Ratios inside and outside both clips, one beyond the dual clip (A < 0, ratio e^1.5 > 3), a masked token.
    old = [[-1.0, -2.0, -0.5, -3.0], [-0.7, -1.1, -2.5, -0.2], [-1.0, -1.0, -1.0, -1.0]]
    logp = [[-0.9, -2.6, -0.1, -3.0], [-0.7 + 1.5, -1.0, -2.0, -0.25], [-1.2, -0.5, -4.0, -1.0]]
    ref = [[-1.1, -1.9, -0.4, -2.0], [-0.6, -1.3, -2.4, -0.1], [-1.0, -0.8, -1.5, -12.0]]
    mask = [[1, 1, 1, 0], [1, 1, 1, 1], [1, 1, 1, 1]]
    adv = [0.8, -1.3, 0.0]
    loss, stats = grpo_loss(torch.tensor(logp), torch.tensor(old), torch.tensor(ref), torch.tensor(adv),
                            torch.tensor(mask), s)
    assert loss.item() == pytest.approx(_reference(logp, old, ref, adv, mask, s), rel=1e-6)
    assert 0 < stats["clip_frac"] < 1 and stats["dual_clip_frac"] > 0


def test_chunks_sum_to_the_mini_batch_token_mean():
    s = GRPOSettings()
    g = torch.Generator().manual_seed(0)
    logp, old, ref = (torch.randn(6, 5, generator=g) * 0.3 - 1 for _ in range(3))
    adv = torch.randn(6, generator=g)
    mask = (torch.rand(6, 5, generator=g) > 0.3).long()
    whole, _ = grpo_loss(logp, old, ref, adv, mask, s)
    n = float(mask.sum())
    parts = sum(grpo_loss(logp[a:b], old[a:b], ref[a:b], adv[a:b], mask[a:b], s, n_tokens=n)[0]
                for a, b in ((0, 2), (2, 6)))
    assert parts.item() == pytest.approx(whole.item(), rel=1e-6)


def test_gradient_at_ratio_one_is_the_advantage_weighted_score():
    # On-policy (old = logp) and no KL, d loss / d logp_t = -A / n_tokens for every unmasked token.
    s = GRPOSettings(kl_coef=0.0)
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.3]], requires_grad=True)
    mask = torch.tensor([[1, 1], [1, 0]])
    loss, _ = grpo_loss(logp, logp.detach(), None, torch.tensor([2.0, -1.0]), mask, s)
    loss.backward()
    torch.testing.assert_close(logp.grad, torch.tensor([[-2 / 3, -2 / 3], [1 / 3, 0.0]]))


def test_group_advantages_are_normalised_per_group_and_zero_for_constant_groups():
    r = torch.tensor([1.0, 0.0, 0.0, 1.0, 0.5, 0.5, 0.5, 0.5])
    adv = group_advantages(r, 4, eps=1e-6)
    std = torch.tensor([1.0, 0.0, 0.0, 1.0]).std(unbiased=True)
    torch.testing.assert_close(adv[:4], (torch.tensor([1.0, 0.0, 0.0, 1.0]) - 0.5) / (std + 1e-6))
    assert torch.all(adv[4:] == 0)
