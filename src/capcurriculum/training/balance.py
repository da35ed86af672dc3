"""Answer-balanced prompt sampling (`train.balance: answer | question`).

A set whose answers are concentrated lets a policy earn reward without looking: answer the most
common label of each question type. The differential filter makes such sets — it keeps what the
filter models get wrong from the image, and their errors cluster on a few labels. Balancing draws,
inside each group, every distinct answer equally often; the groups keep their share. A group with a
single answer cannot be balanced (any draw of it pays that answer blind): its items are dropped,
counted and logged (`drop_single_answer_types`).

`answer` groups by question type. `question` groups by the question's own text: the filter's bias is
per question, not per type. Templated questions repeat across scenes, and the filter keeps a question
where the filter models' usual answer *to that question* is wrong, so the kept answers of "What shape
is the yellow object?" avoid that usual answer (tiny D_perc: a blind answer per question text earns 0.64
of its held-out items, 0.55 of its shape questions; docs/miniature.md, "What the miniature learns").
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Sequence

from capcurriculum.answers import normalize
from capcurriculum.sampling.batching import Item

log = logging.getLogger(__name__)


BY = ("answer", "question")


def _group(it: Item, by: str = "answer") -> tuple[str, str]:
    # the question type where the data has one (perception), else the whole set of that mode; under
    # `question` a typed item's group is its question text
    qtype = str((it.example.get("meta") or {}).get("qtype") or "")
    if by not in BY:
        raise ValueError(f"balance by {by!r}: expected one of {BY}")
    if by == "question" and qtype:
        return it.mode, f"{qtype}: {normalize(str(it.example.get('question', '')))}"
    return it.mode, qtype


def drop_single_answer_types(items: Sequence[Item], where: str, by: str = "answer") -> tuple[list[Item], int]:
    """Items whose group (question type, or question text under `by="question"`) has one distinct answer
    in the set: a blind constant answer earns them all, so they teach a prior, not seeing (the
    differential filter keeps such groups where the filter models err one way, e.g. every kept size
    question "small")."""
    keys = [_group(it, by) for it in items]
    answers: dict[tuple[str, str], set] = defaultdict(set)
    for it, key in zip(items, keys):
        answers[key].add(normalize(str(it.example["answer"])))
    single = {g: next(iter(a)) for g, a in answers.items() if g[1] and len(a) == 1}
    kept = [it for it, key in zip(items, keys) if key not in single]
    counts = Counter(key for key in keys if key in single)
    shown = sorted(single.items(), key=lambda kv: -counts[kv[0]])
    for (mode, group), answer in shown[:10]:
        log.warning("%s: all %d %s questions of %s answer %r; dropped (balance: %s cannot balance them)",
                    where, counts[(mode, group)], group, mode, answer, by)
    if len(shown) > 10:
        log.warning("%s: %d more single-answer groups dropped (%d items)", where, len(shown) - 10,
                    sum(counts[g] for g, _ in shown[10:]))
    return kept, len(items) - len(kept)


def answer_balance_weights(items: Sequence[Item], by: str = "answer") -> list[float]:
    """Per-item sampling weights: within a group (mode and question type, or question text under
    `by="question"`) each answer gets an equal share of the group's draws; a group's total weight is its
    size, so the mix of groups is unchanged. Items without a question type (math: the answer is
    computed, not a label) keep weight 1."""
    keys = [_group(it, by) for it in items]
    groups: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for it, key in zip(items, keys):
        groups[key][normalize(str(it.example["answer"]))] += 1
    weights = []
    for it, key in zip(items, keys):
        if not key[1]:
            weights.append(1.0)
            continue
        answers = groups[key]
        size = sum(answers.values())
        weights.append(size / (len(answers) * answers[normalize(str(it.example["answer"]))]))
    return weights


def constant_answer_reward(items: Sequence[Item], weights: Sequence[float] | None = None,
                           by: str = "answer") -> float:
    """The accuracy a blind policy earns on these draws by always giving each question type's (`by=
    "question"`: each question text's) most common answer: how much of the reward a set hands out
    without looking. A question text that occurs once is no prior (free-form questions, as the paper's
    LLM writes them, are all unique): its item counts under its type."""
    weights = list(weights) if weights is not None else [1.0] * len(items)
    keys = [_group(it, by) for it in items]
    seen = Counter(keys)
    mass: dict[tuple[str, str], Counter] = defaultdict(Counter)
    for it, key, w in zip(items, keys, weights, strict=True):
        mass[key if seen[key] > 1 else _group(it)][normalize(str(it.example["answer"]))] += w
    total = sum(weights)
    return sum(max(c.values()) for c in mass.values()) / total if total else 0.0
