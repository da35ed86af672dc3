"""The miniature's science report: for each of the paper's findings, the paired difference between two
variants on the same items, per RL seed, then its mean and standard error over the seeds, and whether its
direction is the paper's.

A finding compares a `treated` variant with a `control` one (e.g. staged vs merged) on one quantity over
the same evaluation items: accuracy (mean of per-benchmark paired deltas, as Overall's delta), response
length (tokens, paired per item) or perception errors (count, exact attribution). Per seed the paired
difference has its own se; across seeds the spread that matters is the seeds' (RL's randomness), so the
headline is mean ± se of the per-seed differences (sd / sqrt(k)). "clear" needs k >= 2 and
|mean| > 2 se: the criterion written before the runs (docs/miniature.md), never tuned afterwards.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from capcurriculum.sampling.paired import mean_delta, paired_delta

CLEAR_SE = 2.0  # |mean| must exceed this many standard errors over seeds


@dataclass(frozen=True)
class Finding:
    key: str
    claim: str                 # the paper's claim in a few words
    treated: str               # the variant the claim favours
    control: str
    quantity: str              # "accuracy" | "tokens" | "perception_errors"
    benchmarks: tuple[str, ...]
    paper_sign: int            # +1: treated − control > 0 in the paper; −1: < 0
    paper: str                 # the paper's figure, for the reader

    def __post_init__(self) -> None:
        if self.quantity not in ("accuracy", "tokens", "perception_errors"):
            raise ValueError(f"finding {self.key}: unknown quantity {self.quantity!r}")
        if self.paper_sign not in (1, -1):
            raise ValueError(f"finding {self.key}: paper_sign must be +1 or -1")


ALL = ("tiny_perception", "tiny_text_math", "tiny_vis_math")
VIS = ("tiny_vis_math",)
FINDINGS = (
    Finding("staged_vs_merged", "staged beats merged", "staged", "merged", "accuracy", ALL, +1,
            "Qwen3-VL-8B staged above the merged baseline on visual math and perception"),
    Finding("perc_first_vs_last", "perception first beats perception last", "staged", "perc_last", "accuracy", VIS,
            +1, "Qwen2.5-VL-7B visual math 42.3 (perc first) vs 37.7 (perc last)"),
    Finding("transfer", "perception first helps visual math (vs reasoning-only RL)", "staged", "reasoning_only",
            "accuracy", VIS, +1, "reasoning-only RL pays a perception tax; adding perception data recovers it"),
    Finding("perception_tax", "reasoning-only RL costs perception", "staged", "reasoning_only", "accuracy",
            ("tiny_perception",), +1, "reasoning-only RL: MMStar −1.6 (7B); with perception data RWQA +3.0"),
    Finding("rl_vs_sft_perception", "RL beats caption SFT for perception", "staged", "sft_perc", "accuracy", VIS, +1,
            "caption SFT: WeMath −1.6 (8B), −8.1 (7B)"),
    Finding("shorter_reasoning", "staged answers are shorter than merged", "staged", "merged", "tokens", VIS, -1,
            "stage 3: 445 vs 562 tokens (−20.8%)"),
    Finding("fewer_perception_errors", "staged makes fewer perception errors", "staged", "merged",
            "perception_errors", VIS, -1, "judge-labelled perception errors 781 vs 805"),
)

Records = Mapping[str, Sequence[Mapping[str, Any]]]  # benchmark -> evaluation records (evaluator's format)


def _aligned(a: Sequence[Mapping[str, Any]], b: Sequence[Mapping[str, Any]], where: str):
    if [r["id"] for r in a] != [r["id"] for r in b]:
        raise ValueError(f"{where}: the two variants were not evaluated on the same items in the same order")
    return a, b


def seed_difference(finding: Finding, treated: Records, control: Records) -> dict[str, float]:
    """treated − control on one seed: {"delta", "se"} (se None for counts)."""
    if finding.quantity == "accuracy":
        deltas = []
        for b in finding.benchmarks:
            t, c = _aligned(treated[b], control[b], f"{finding.key}/{b}")
            deltas.append(paired_delta([bool(r["correct"]) for r in c], [bool(r["correct"]) for r in t]))
        return mean_delta(deltas)
    if finding.quantity == "tokens":
        t = [r for b in finding.benchmarks for r in treated[b]]
        c = [r for b in finding.benchmarks for r in control[b]]
        t, c = _aligned(t, c, finding.key)
        return paired_delta([r["n_tokens"] for r in c], [r["n_tokens"] for r in t])

    def errors(records: Records) -> int:
        return sum((r.get("attribution") or {}).get("label") == "perception" for b in finding.benchmarks
                   for r in records[b])
    return {"delta": float(errors(treated) - errors(control)), "se": None}


def over_seeds(per_seed: Sequence[float]) -> dict[str, Any]:
    """Mean and standard error of the per-seed differences (se None with one seed)."""
    k = len(per_seed)
    if not k:
        return {"k": 0, "mean": None, "se": None}
    se = statistics.stdev(per_seed) / math.sqrt(k) if k > 1 else None
    return {"k": k, "mean": statistics.fmean(per_seed), "se": se}


def verdict(finding: Finding, summary: Mapping[str, Any]) -> str:
    """'as the paper' / 'against the paper', 'clear' when |mean| > CLEAR_SE se over >= 2 seeds, else 'unclear'."""
    mean, se = summary["mean"], summary["se"]
    if mean is None:
        return "not run"
    if mean == 0:
        return "no difference"
    side = "as the paper" if (mean > 0) == (finding.paper_sign > 0) else "against the paper"
    clear = se is not None and abs(mean) > CLEAR_SE * se
    return f"{side}, {'clear' if clear else 'within noise'}"


def findings(runs: Mapping[tuple[str, int], Records], seeds: Sequence[int],
             chosen: Sequence[Finding] = FINDINGS,
             earlier: Mapping[str, Mapping[int, Mapping[str, Any]]] | None = None) -> list[dict[str, Any]]:
    """One row per finding whose two variants ran: per-seed differences, their mean ± se, the verdict.
    `runs`: (variant, seed) -> that run's records by benchmark. `earlier`: finding key -> seed -> {"delta", "se"},
    the per-seed differences of earlier parts of a sweep (science_report's parts), used for the seeds `runs` lacks."""
    rows = []
    for f in chosen:
        per = [(s, seed_difference(f, runs[(f.treated, s)], runs[(f.control, s)])) for s in seeds
               if (f.treated, s) in runs and (f.control, s) in runs]
        done = {s for s, _ in per}
        per = sorted(per + [(int(s), dict(d)) for s, d in ((earlier or {}).get(f.key) or {}).items()
                            if int(s) not in done], key=lambda sd: sd[0])
        if not per:
            continue
        summary = over_seeds([d["delta"] for _, d in per])
        rows.append({"finding": f, "per_seed": per, **summary, "verdict": verdict(f, summary)})
    return rows


FIGURES = (  # a variant's own figures, per seed (variant_figures), averaged over seeds in the report's second table
    ("tiny_perception", "perception"), ("tiny_text_math", "text math"), ("tiny_vis_math", "visual math"),
    ("tiny_vis_math_shuffled", "visual math, shuffled images"))


def variant_figures(records: Records) -> dict[str, float]:
    """One run's own figures: accuracy per benchmark it has (the blind-policy check among them), mean response
    tokens on visual math, and the perception share of its wrong visual-math answers that the attribution
    labelled (the paper's 86.9%)."""
    out = {b: sum(bool(r["correct"]) for r in records[b]) / len(records[b]) for b, _ in FIGURES if records.get(b)}
    vis = records.get("tiny_vis_math") or []
    if vis:
        out["tokens"] = sum(r["n_tokens"] for r in vis) / len(vis)
        labels = [(r.get("attribution") or {}).get("label") for r in vis if not r["correct"]]
        labelled = [lab for lab in labels if lab in ("perception", "reasoning")]
        if labelled:
            out["perception_share"] = labelled.count("perception") / len(labelled)
    return out


def variant_table(figures: Mapping[str, Mapping[int, Mapping[str, float]]], unseeded: Sequence[str] = ()) -> str:
    """variant -> seed -> variant_figures: mean ± se over seeds (accuracies and shares in %), the seeds named
    ("–" for the `unseeded` rows, e.g. the base, which no RL seed made)."""
    columns = [*FIGURES, ("tokens", "tokens (visual math)"), ("perception_share", "perception share of vis-math errors")]
    present = [(k, name) for k, name in columns if any(k in f for seeds in figures.values() for f in seeds.values())]
    lines = ["| variant | seeds | " + " | ".join(name for _, name in present) + " |",
             "|---|---|" + "---|" * len(present)]
    for variant, seeds in figures.items():
        cells = []
        for k, _ in present:
            summary = over_seeds([f[k] for f in seeds.values() if k in f])
            scale = 1.0 if k == "tokens" else 100.0
            cells.append("–" if summary["mean"] is None else f"{scale * summary['mean']:.1f}"
                         + (f" ± {scale * summary['se']:.1f}" if summary["se"] is not None else ""))
        named = "–" if variant in unseeded else ", ".join(map(str, sorted(seeds)))
        lines.append(f"| {variant} | {named} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown(rows: Sequence[Mapping[str, Any]]) -> str:
    """The report's table: accuracy in points, tokens and error counts as they are."""
    def fmt(x: float | None, scale: float, signed: bool = True) -> str:
        if x is None:
            return "–"
        return f"{scale * x:+.1f}" if signed else f"{scale * x:.1f}"

    lines = ["| paper's finding | treated − control | quantity | per seed | mean ± se over seeds | paper | verdict |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        f: Finding = r["finding"]
        scale = 100.0 if f.quantity == "accuracy" else 1.0
        unit = {"accuracy": "accuracy (points)", "tokens": "response tokens", "perception_errors": "perception errors"}
        per = ", ".join(f"s{s}: " + fmt(d["delta"], scale)
                        + (f" ± {fmt(d['se'], scale, False)}" if d.get("se") is not None else "")
                        for s, d in r["per_seed"])
        spread = fmt(r["mean"], scale) + (f" ± {fmt(r['se'], scale, False)}" if r["se"] is not None else " (one seed)")
        lines.append(f"| {f.claim} | {f.treated} − {f.control} | {unit[f.quantity]} on {', '.join(f.benchmarks)} | "
                     f"{per} | {spread} | {f.paper} | {r['verdict']} |")
    return "\n".join(lines) + "\n"
