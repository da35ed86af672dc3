"""Blind baselines from the data: what a policy that never looks at the image scores, per question type.

The first world's perception "headroom" turned out to be its guessing ceiling (issue 37: a guesser drawing
from each type's answers reached pass@8 0.91, the base 0.92). The guesser here draws each of its k samples
from the question type's answer distribution over the training questions, independently of the question;
on an item whose gold has probability p under that distribution it is right at least once in k draws with
probability 1 - (1 - p)^k. The expectation is exact (no sampling), so the figures are the data's, not a seed's.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..answers import is_correct, normalize

ALL = "all"  # the row that pools every question type, each item weighted once


def answer_distributions(train: Iterable[Mapping[str, Any]]) -> dict[str, Counter]:
    """Per question type (`meta.qtype`), how often each normalised answer occurs."""
    out: dict[str, Counter] = defaultdict(Counter)
    for ex in train:
        out[(ex.get("meta") or {}).get("qtype", "")][normalize(str(ex["answer"]))] += 1
    return dict(out)


def blind_guesser(train: Sequence[Mapping[str, Any]], held_out: Sequence[Mapping[str, Any]],
                  ks: Sequence[int] = (1, 8)) -> dict[str, dict[str, float]]:
    """Per question type and over all (ALL): n, the number of distinct training answers, and the expected
    pass@k of the type's guesser on `held_out`, for each k in `ks`. A held-out type with no training answers
    is never guessed right. Draws are graded by `answers.is_correct`, the project's matcher without math-verify
    (a drawn answer is a stored gold, never LaTeX)."""
    dists = answer_distributions(train)
    hit: dict[tuple[str, str, str], float] = {}  # (qtype, gold, answer_type) -> a draw's chance to be right
    per_type: dict[str, list[float]] = defaultdict(list)
    for ex in held_out:
        qtype = (ex.get("meta") or {}).get("qtype", "")
        key = (qtype, str(ex["answer"]), ex["answer_type"])
        if key not in hit:
            dist = dists.get(qtype, Counter())
            total = sum(dist.values())
            right = sum(n for answer, n in dist.items() if is_correct(answer, key[1], key[2]))
            hit[key] = right / total if total else 0.0
        per_type[qtype].append(hit[key])
    per_type[ALL] = [p for qtype in list(per_type) for p in per_type[qtype]]
    out = {}
    for qtype, ps in per_type.items():
        answers = sum(len(d) for d in dists.values()) if qtype == ALL else len(dists.get(qtype, ()))
        row: dict[str, float] = {"n": len(ps), "answers": answers}
        for k in ks:
            row[f"pass_at_{k}"] = sum(1 - (1 - p) ** k for p in ps) / len(ps) if ps else float("nan")
        out[qtype] = row
    return out
