"""Answer extraction time against response length, the old scan beside the one-pass brace matcher.

    python bench/extraction.py [--max-kb 1024 --old-budget-s 20]

Each shape of response is grown from 1 KB to --max-kb (4x a row) and handed to `extract_boxed`: the
project's (`capcurriculum.answers`, one pass) and, for comparison only, the scan it replaced
(`old_extract_boxed` below, which scanned the rest of the text from every `\\boxed{`). Once the old
scan has taken more than --old-budget-s on one length, it is not run on longer ones (at 100 KB of
unclosed boxes it had not returned after 150 s). Every shape ends in `\\boxed{6}` or is built to have
no answer; both sides' answers are printed where they differ.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

_BOXED = "\\boxed{"


def old_extract_boxed(text: str) -> str | None:
    """THE REPLACED ALGORITHM, kept here for comparison only: quadratic in repeated or nested boxes."""
    start = text.rfind(_BOXED)
    while start != -1:
        depth, i = 1, start + len(_BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start + len(_BOXED): i - 1].strip()
        start = text.rfind(_BOXED, 0, start)
    return None


def shapes(n: int) -> dict[str, str]:
    """Responses of about n characters."""
    return {
        "repeated unclosed boxes": "<think>x</think> " + _BOXED * (n // 7),
        "nested boxes": "<think>x</think> " + _BOXED * (n // 8) + "6" + "}" * (n // 8),
        "prose, then a box": "<think>x</think> " + "so the answer is near " * (n // 22) + "\\boxed{6}",
        "think block, then a box": "<think>" + "count the circles. " * (n // 19) + "</think> \\boxed{6}",
        "LaTeX braces, then a box": "<think>x</think> " + "\\frac{1}{2} " * (n // 12) + "\\boxed{6}",
    }


def timed(fn, text: str) -> tuple[float, str | None]:
    t0 = time.perf_counter()
    out = fn(text)
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--max-kb", type=int, default=1024)
    ap.add_argument("--old-budget-s", type=float, default=20.0, help="stop running the old scan on a shape past this")
    ap.add_argument("--out", type=Path, default=Path("bench/results/extraction.json"))
    args = ap.parse_args()

    from capcurriculum.answers import extract_boxed
    from capcurriculum.runtime import machine_record

    sizes, kb = [], 1
    while kb <= args.max_kb:
        sizes.append(kb)
        kb *= 4
    rows, over_budget = [], set()
    for kb in sizes:
        for shape, text in shapes(kb * 1024).items():
            new_s, new = timed(extract_boxed, text)
            old_s, old = (None, None) if shape in over_budget else timed(old_extract_boxed, text)
            if old_s is not None and old_s > args.old_budget_s:
                over_budget.add(shape)
            rows.append({"shape": shape, "kb": kb, "chars": len(text), "old_s": old_s, "new_s": new_s,
                         "old_answer": None if old is None else old[:20], "new_answer": None if new is None else new[:20]})
    cpu = machine_record()["cpu"]
    print(f"\nextract_boxed against response length; {cpu}, {os.cpu_count()} cores\n")
    print("| shape | KB | old scan (s) | one pass (s) | old answer | new answer |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        old = "not run (over budget)" if r["old_s"] is None else f"{r['old_s']:.4f}"
        print(f"| {r['shape']} | {r['kb']:,} | {old} | {r['new_s']:.4f} | {r['old_answer']!s:.20} | "
              f"{r['new_answer']!s:.20} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "cpu": cpu, "rows": rows},
                                   indent=2))


if __name__ == "__main__":
    main()
