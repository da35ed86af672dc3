"""Text prompts that begin alike, prefilled once for the tokens they share.

The filter's caption path asks every question of a scene after the same caption, so most of each
prompt's tokens are its neighbours' too, and a plain prefill runs them once a question (over half of the
caption path's time, by py-spy). Here consecutive prompts with a common token prefix form a run; each
run's prefix goes through the model once, its key/value cache is repeated for the run's prompts, and only
their own tails (the question) run against it. Every prompt keeps at least one token of its own, so the
logits that start decoding come from its last token, as in a plain prefill. Text prompts only.

The result is what `sampling.rollout.decode` takes as `prefilled`: the last logits, the cache, the
attention mask over prefix padding + prefix + tail padding + tail, and the rotary positions (each
prompt's tokens numbered 0.. as if it had been prefilled whole).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import DynamicCache

from capcurriculum.sampling.rollout import prompt_positions


def _common(a: Sequence[int], b: Sequence[int]) -> int:
    n = min(len(a), len(b))
    k = 0
    while k < n and a[k] == b[k]:
        k += 1
    return k


def shared_runs(ids: Sequence[Sequence[int]], min_shared: int) -> list[tuple[int, int, int]]:
    """(start, end, shared) for runs of consecutive prompts whose common prefix is `shared` >= `min_shared`
    tokens; a prompt sharing less with its predecessor starts a run of its own. `shared` always leaves each
    member at least one token (a lone prompt: all but its last)."""
    if not ids or any(len(x) == 0 for x in ids):
        raise ValueError("shared_runs: every prompt needs at least one token")
    runs, start, shared = [], 0, len(ids[0]) - 1
    for i in range(1, len(ids)):
        k = min(_common(ids[start], ids[i]), shared, len(ids[i]) - 1)
        if k >= min_shared:
            shared = k
            continue
        runs.append((start, i, shared))
        start, shared = i, len(ids[i]) - 1
    runs.append((start, len(ids), shared))
    return runs


def _left_pad(rows: list[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        if r:
            ids[i, width - len(r):] = torch.tensor(list(r), dtype=torch.long)
            mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def _positions(model, mask: torch.Tensor, offset: torch.Tensor) -> torch.Tensor:
    """(3, B, L) text positions as a plain prefill numbers them, continuing from `offset` (B,)."""
    return prompt_positions(model, {"attention_mask": mask}) + offset[None, :, None]


@torch.no_grad()
def prefill_shared(model, ids: Sequence[Sequence[int]], pad_id: int, min_shared: int = 16) -> tuple:
    """Prefill text prompts (token ids, unpadded, in batch order) sharing what consecutive ones share."""
    device = model.device
    runs = shared_runs(ids, min_shared)
    run_of = torch.tensor([r for r, (a, b, _) in enumerate(runs) for _ in range(a, b)], device=device)
    prefix_ids, prefix_mask = _left_pad([ids[a][:k] for a, _, k in runs], pad_id, device)
    prefix_pos = _positions(model, prefix_mask, torch.zeros(len(runs), dtype=torch.long, device=device))
    cache = DynamicCache()
    if prefix_ids.shape[1]:
        model(input_ids=prefix_ids, attention_mask=prefix_mask, position_ids=prefix_pos, past_key_values=cache,
              use_cache=True, logits_to_keep=1)
        cache.batch_select_indices(run_of)
    shared = torch.tensor([k for _, _, k in runs], device=device)[run_of]
    tails = [row[k:] for row, k in zip(ids, shared.tolist())]
    tail_ids, tail_mask = _left_pad(tails, pad_id, device)
    mask = torch.cat([prefix_mask[run_of], tail_mask], dim=1)
    tail_pos = _positions(model, tail_mask, shared)
    out = model(input_ids=tail_ids, attention_mask=mask, position_ids=tail_pos, past_key_values=cache,
                use_cache=True, logits_to_keep=1)
    positions = torch.cat([prefix_pos[:, run_of], tail_pos], dim=2)
    return out.logits[:, -1], cache, mask, positions
