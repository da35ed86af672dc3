"""Answer-balanced prompt sampling (`train.balance: answer`).

A set whose answers are concentrated lets a policy earn reward without looking: answer the most
common label of each question type. The differential filter makes such sets — it keeps what the
filter models get wrong from the image, and their errors cluster on a few labels. Balancing draws,
inside each question type, every distinct answer equally often; the types keep their share. A type
with a single answer cannot be balanced (any draw of it pays that answer blind): its items are dropped,
counted and logged (`drop_single_answer_types`).
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from capcurriculum.answers import normalize
from capcurriculum.training.batching import Item

log = logging.getLogger(__name__)


def _group(it: Item) -> tuple[str, str]:
    # the question type where the data has one (perception), else the whole set of that mode
    return it.mode, str((it.example.get("meta") or {}).get("qtype") or "")


def drop_single_answer_types(items: Sequence[Item], where: str) -> tuple[list[Item], int]:
    """Items whose question type has one distinct answer in the set: a blind constant answer earns them
    all, so under `balance: answer` they teach a prior, not seeing (the differential filter keeps such
    types where the filter models err one way, e.g. every kept size question "small")."""
    answers: dict[tuple[str, str], set] = defaultdict(set)
    for it in items:
        answers[_group(it)].add(normalize(str(it.example["answer"])))
    single = {g: next(iter(a)) for g, a in answers.items() if g[1] and len(a) == 1}
    kept = [it for it in items if _group(it) not in single]
    for (mode, qtype), answer in sorted(single.items()):
        n = sum(_group(it) == (mode, qtype) for it in items)
        log.warning("%s: all %d %s questions of %s answer %r; dropped (balance: answer cannot balance them)",
                    where, n, qtype, mode, answer)
    return kept, len(items) - len(kept)


def answer_balance_weights(items: Sequence[Item]) -> list[float]:
    """Per-item sampling weights: within a (mode, question type) group each answer gets an equal
    share of the group's draws; a group's total weight is its size, so the type mix is unchanged.
    Items without a question type (math: the answer is computed, not a label) keep weight 1."""
    groups: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for it in items:
        groups[_group(it)][normalize(str(it.example["answer"]))] += 1
    weights = []
    for it in items:
        if not _group(it)[1]:
            weights.append(1.0)
            continue
        answers = groups[_group(it)]
        size = sum(answers.values())
        weights.append(size / (len(answers) * answers[normalize(str(it.example["answer"]))]))
    return weights


def constant_answer_reward(items: Sequence[Item], weights: Sequence[float] | None = None) -> float:
    """The accuracy a blind policy earns on these draws by always giving each question type's most
    common answer: how much of the reward a set hands out without looking."""
    weights = list(weights) if weights is not None else [1.0] * len(items)
    mass: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for it, w in zip(items, weights, strict=True):
        mass[_group(it)][normalize(str(it.example["answer"]))] += w
    total = sum(weights)
    return sum(max(c.values()) for c in mass.values()) / total if total else 0.0
