"""The GRPO reward's cost per step: plain numbers decided by value against math-verify for every wrong one.

    python bench/reward_grading.py [--prompts 128 --group-size 8 --steps 20 --accuracy 0.2]

A step's completions are drawn like a math stage's: a gold number per prompt, each completion right with
probability --accuracy, else a wrong number near it (so a group repeats answers, as sampled groups do,
and math-verify's memo hits as often as in training). Both sides grade the same completions, each with a
cold memo; the verdicts are compared one by one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path


def draw_steps(steps: int, prompts: int, group_size: int, accuracy: float, seed: int) -> list[list[tuple[str, str]]]:
    rng = random.Random(seed)
    out = []
    for _ in range(steps):
        batch = []
        for _ in range(prompts):
            gold = rng.randint(0, 99)
            for _ in range(group_size):
                pred = gold if rng.random() < accuracy else max(0, gold + rng.randint(-12, 12))
                batch.append((f"<think>{gold // 2} and {gold - gold // 2}</think> \\boxed{{{pred}}}", str(gold)))
        out.append(batch)
    return out


def grade_all(steps: list[list[tuple[str, str]]], shortcut: bool) -> tuple[float, list[float]]:
    from capcurriculum import answers
    from capcurriculum.sampling import rewards

    answers.math_verify_equal.cache_clear()
    original = answers.plain_decimal
    if not shortcut:  # the grade before the shortcut: every wrong number goes on to math-verify
        answers.plain_decimal = lambda answer: False
    try:
        t0 = time.perf_counter()
        verdicts = [rewards.reward(text, gold, "number")["accuracy"] for batch in steps for text, gold in batch]
        return (time.perf_counter() - t0) / len(steps), verdicts
    finally:
        answers.plain_decimal = original


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--accuracy", type=float, default=0.2, help="share of right completions (a math stage: 0.1-0.4)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/reward_grading.json"))
    args = ap.parse_args()

    from math_verify import parse  # imported before timing: its first import is not a grading cost

    parse("$1$")
    steps = draw_steps(args.steps, args.prompts, args.group_size, args.accuracy, args.seed)
    rows = []
    for rep in range(2):  # alternated, so neither side always runs on a warmer machine
        for shortcut in (False, True):
            seconds, verdicts = grade_all(steps, shortcut)
            rows.append({"side": "by value" if shortcut else "math-verify", "run": rep, "step_s": seconds,
                         "verdicts": verdicts})
    base = rows[0]["verdicts"]
    disagree = sum(a != b for r in rows for a, b in zip(base, r["verdicts"], strict=True))
    n = args.prompts * args.group_size
    print(f"\nreward grading, {args.steps} steps of {args.prompts} prompts x {args.group_size} "
          f"({n} completions, ~{args.accuracy:.0%} right); {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores\n")
    print("| plain numbers | run | ms per step | completions/s |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['side']} | {r['run']} | {r['step_s'] * 1000:.0f} | {n / r['step_s']:,.0f} |")
    slow = min(r["step_s"] for r in rows if r["side"] == "math-verify")
    fast = min(r["step_s"] for r in rows if r["side"] == "by value")
    print(f"\nbest of two: {slow / fast:.1f}x; verdicts that differ from the first run's: {disagree}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "differing_verdicts": disagree,
                                    "rows": [{k: v for k, v in r.items() if k != "verdicts"} for r in rows]},
                                   indent=2))


if __name__ == "__main__":
    main()
