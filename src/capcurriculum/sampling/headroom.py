"""RL headroom on a held-out slice: greedy pass@1, sampled pass@1 and pass@G.

If pass@G is far above greedy pass@1, sampling already finds answers the greedy policy misses: the
room GRPO can turn into greedy accuracy. If sampled pass@1 rises while greedy stays flat, the
sampler is only sharpening (DESIGN.md section 9). `greedy_mass` measures the sharpening itself, right
or wrong: the share of sampled completions that give the greedy completion's answer. A policy that only
lowers its own temperature raises it towards 1 and changes no greedy answer.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from tqdm.auto import tqdm

from capcurriculum.answers import committed_answer, normalize
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.capabilities import accuracy, generate, score
from capcurriculum.sampling.rewards import RewardConfig, reward
from capcurriculum.sampling.rollout import rollout


def answer_key(pred: str | None) -> str | None:
    """An extracted answer as compared across completions: normalised; None (no answer) stays None."""
    return None if pred is None else normalize(pred)


def greedy_mass(greedy_preds: Sequence[str | None], sampled_preds: Sequence[Sequence[str | None]]) -> float:
    """Mean over items of the share of sampled answers equal to the greedy answer (no answer = no answer)."""
    if len(greedy_preds) != len(sampled_preds) or not greedy_preds:
        raise ValueError(f"greedy_mass: {len(greedy_preds)} greedy answers for {len(sampled_preds)} sampled groups")
    return sum(sum(s == g for s in group) / len(group)
               for g, group in zip(greedy_preds, sampled_preds, strict=True)) / len(greedy_preds)


@torch.no_grad()
def sample_groups(model, processor, items: Sequence[Item], *, group_size: int, max_new_tokens: int,
                  temperature: float = 1.0, batch_size: int = 32, reward_cfg: RewardConfig | None = None,
                  desc: str = "sampled", lean: bool = False) -> tuple[list[list[float]], list[list[str | None]]]:
    """Per item, the accuracy reward and the answer (`answer_key`) of each of its `group_size` sampled
    completions (`lean`: decoded through models/lean.py)."""
    reward_cfg = reward_cfg or RewardConfig()
    sampled: list[list[float]] = []
    answers: list[list[str | None]] = []
    for i in tqdm(range(0, len(items), batch_size), desc=desc, unit="batch", leave=False):
        chunk = list(items[i:i + batch_size])
        ro = rollout(model, processor, chunk, group_size=group_size, max_new_tokens=max_new_tokens,
                     temperature=temperature, lean=lean)
        acc = [reward(t, ro.item_of(j).example["answer"], ro.item_of(j).example["answer_type"], reward_cfg)["accuracy"]
               for j, t in enumerate(ro.texts)]
        keys = [answer_key(committed_answer(t)) for t in ro.texts]  # the answer the reward graded
        sampled.extend(acc[k:k + group_size] for k in range(0, len(acc), group_size))
        answers.extend(keys[k:k + group_size] for k in range(0, len(keys), group_size))
    return sampled, answers


@torch.no_grad()
def headroom(model, processor, items: Sequence[Item], *, group_size: int, max_new_tokens: int,
             temperature: float = 1.0, batch_size: int = 32, reward_cfg: RewardConfig | None = None,
             greedy_rows: list[dict] | None = None, desc: str = "headroom",
             lean: bool = False) -> tuple[dict[str, float], list[dict]]:
    """`greedy_rows`: the scored greedy responses to `items` when the caller already has them."""
    reward_cfg = reward_cfg or RewardConfig()
    if greedy_rows is not None and [r["id"] for r in greedy_rows] != [it.example["id"] for it in items]:
        raise ValueError("headroom: greedy_rows must score exactly `items`, in order")
    rows = [dict(r) for r in greedy_rows] if greedy_rows is not None else score(
        items, generate(model, processor, items, max_new_tokens=max_new_tokens, desc=f"{desc} greedy",
                               lean=lean))
    greedy = [r["correct"] for r in rows]
    sampled, answers = sample_groups(model, processor, items, group_size=group_size, max_new_tokens=max_new_tokens,
                                     temperature=temperature, batch_size=batch_size, reward_cfg=reward_cfg,
                                     desc=f"{desc} sampled", lean=lean)
    for r, s, a in zip(rows, sampled, answers, strict=True):
        r["sampled_correct"], r["sampled_answers"] = s, a
    types = [(it.example.get("meta") or {}).get("qtype") for it in items]
    return summarize(greedy, sampled, [answer_key(r["pred"]) for r in rows], answers, group_size, types), rows


def summarize(greedy: list[bool], sampled: list[list[float]], greedy_keys: list[str | None],
              answers: list[list[str | None]], group_size: int, types: list[str | None]) -> dict[str, float]:
    """The slice's headroom, and each question type's as `<qtype>/<figure>` where the items have one (perception):
    a type whose answers cannot be guessed (world v2's identify) has a headroom of its own, which the mixed slice's
    figure blurs (bench/world_v2_gates.py, gate 2)."""
    out = _summary(greedy, sampled, greedy_keys, answers, group_size)
    for qtype in sorted({t for t in types if t}):
        at = [i for i, t in enumerate(types) if t == qtype]
        part = _summary([greedy[i] for i in at], [sampled[i] for i in at], [greedy_keys[i] for i in at],
                        [answers[i] for i in at], group_size)
        out.update({f"{qtype}/{k}": v for k, v in part.items()})
    return out


def _summary(greedy: list[bool], sampled: list[list[float]], greedy_keys: list[str | None],
             answers: list[list[str | None]], group_size: int) -> dict[str, float]:
    g = accuracy(greedy)
    p1 = accuracy([x for s in sampled for x in s])
    pg = accuracy([max(s) > 0 for s in sampled])
    return {"greedy_pass_at_1": g["acc"], "greedy_se": g["se"], "sampled_pass_at_1": p1["acc"],
            f"pass_at_{group_size}": pg["acc"], "greedy_mass": greedy_mass(greedy_keys, answers), "n": g["n"]}
