"""Answer-balanced prompt sampling (`train.balance: answer`).

A set whose answers are concentrated lets a policy earn reward without looking: answer the most
common label of each question type. The differential filter makes such sets — it keeps what the
filter models get wrong from the image, and their errors cluster on a few labels. Balancing draws,
inside each question type, every distinct answer equally often; the types keep their share.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Sequence

from capcurriculum.answers import normalize
from capcurriculum.training.batching import Item


def _group(it: Item) -> tuple[str, str]:
    # the question type where the data has one (perception), else the whole set of that mode
    return it.mode, str((it.example.get("meta") or {}).get("qtype") or "")


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
