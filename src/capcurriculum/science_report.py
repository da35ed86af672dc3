"""The science report of a DVC sweep: the paper's findings over RL seeds, from `dvc exp run --queue` experiments.

    dvc exp run --queue -S merged.enabled=true -S 'train.seed=0,1,2' \\
        -S 'curriculum.order=[perc,text,vis],[text,vis,perc]' -S 'curriculum.method.perc=grpo,sft'
    dvc queue start -j 1
    python -m capcurriculum.science_report          # -> data/reports/science.md (+ .json, this part's seeds)
    python -m capcurriculum.science_report --parts docs/results/science/*.json   # with earlier parts' seeds

Each finished experiment is one RL seed of one variant, told apart by the three swept keys: staged
(perc -> text -> vis, GRPO perception; its `merged` model, where merged.enabled, is the merged baseline of the same
seed: DVC's run-cache trains it once a seed, whatever the order), perc_last
(text -> vis -> perc; its chain before perception, evaluate@before_perc, is reasoning_only: the transfer
control) and sft_perc (caption SFT for perception). Only experiments whose every other param equals
the workspace's are used, so a finding never mixes configurations; the others are listed with the key that
differs. Each variant's evaluation records are read from the DVC cache at the experiment's revision
(`dvc.api.open`), and evaluation/science.py pairs them item by item per seed and reports the mean ± se over
seeds with its direction against the paper's.
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import subprocess
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from capcurriculum.evaluation import science
from capcurriculum.io import write_json, write_text
from capcurriculum.tracking import log_report_run

log = logging.getLogger(__name__)

# What a sweep varies between the experiments one report compares; every other param must be the workspace's.
SWEPT = ("train.seed", "curriculum.order", "curriculum.method.perc")
# composed from the swept keys (each slot's set and method), or the DAG's shape (whether merged ran), not its settings
DERIVED = re.compile(r"curriculum\.s\d+\.(set|method)|merged\.enabled|dag\..*")
PAPER_ORDER, PERC_LAST = ["perc", "text", "vis"], ["text", "vis", "perc"]


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in tree.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


def experiments(repo: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The workspace's params and every experiment as {name, rev, timestamp, params, failed, state}, from `dvc exp
    show --json` (params.yaml's, flattened; state: DVC's executor state, e.g. queued, running, success)."""
    shown = json.loads(subprocess.run(["dvc", "exp", "show", "--json"], cwd=repo, check=True, capture_output=True,
                                      text=True).stdout)

    def params(data: Mapping[str, Any]) -> dict[str, Any]:
        return flatten(((data.get("params") or {}).get("params.yaml") or {}).get("data") or {})

    workspace = next(row for row in shown if row["rev"] == "workspace")
    found = []
    for row in shown:
        for exp in row.get("experiments") or []:
            state = (exp.get("executor") or {}).get("state") or "success"
            for rev in exp["revs"]:
                data = rev.get("data") or {}
                found.append({"name": rev.get("name") or rev["rev"][:7], "rev": rev["rev"],
                              "timestamp": data.get("timestamp") or "", "params": params(data),
                              "failed": rev.get("error") is not None or state == "failed", "state": state})
    return params(workspace.get("data") or {}), found


def variants(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(variant, the model whose records stand for it) that an experiment with these params provides."""
    order, method = list(params["curriculum.order"]), params["curriculum.method.perc"]
    if order == PAPER_ORDER and method == "grpo":
        # an experiment from before merged.enabled existed always ran the merged baseline
        merged = params["merged.enabled"] if "merged.enabled" in params else True
        return [("staged", "staged")] + ([("merged", "merged")] if merged else [])
    if order == PERC_LAST and method == "grpo":
        # its chain before the perception stage (text -> vis) is the reasoning-only control, where it was evaluated
        return [("perc_last", "staged")] + ([("reasoning_only", "before_perc")]
                                            if "dag.evaluate.before_perc" in params else [])
    if order == PAPER_ORDER and method == "sft":
        return [("sft_perc", "staged")]
    return []


def plan(reference: Mapping[str, Any], found: Sequence[Mapping[str, Any]]
         ) -> tuple[dict[tuple[str, int], dict[str, Any]], list[tuple[str, str]]]:
    """(variant, seed) -> the experiment (and model) that provides it, and the experiments left out with why. Of two
    experiments giving the same variant and seed, the newer is used."""
    chosen: dict[tuple[str, int], dict[str, Any]] = {}
    skipped: list[tuple[str, str]] = []
    for exp in sorted(found, key=lambda e: e["timestamp"]):
        if exp["failed"]:
            skipped.append((exp["name"], "failed"))
            continue
        if exp.get("state", "success") in ("queued", "running"):  # its records are not in the cache yet
            skipped.append((exp["name"], f"{exp['state']}, not finished"))
            continue
        other = sorted(k for k in set(reference) | set(exp["params"])
                       if k not in SWEPT and not DERIVED.fullmatch(k) and reference.get(k) != exp["params"].get(k))
        if other:
            skipped.append((exp["name"], f"{other[0]} is {exp['params'].get(other[0])!r}, the workspace's "
                                         f"{reference.get(other[0])!r}" + (f" (+{len(other) - 1} more)" if len(other) > 1 else "")))
            continue
        provided = variants(exp["params"])
        if not provided:
            skipped.append((exp["name"], f"not a variant of the report (order {exp['params']['curriculum.order']}, "
                                         f"perception {exp['params']['curriculum.method.perc']})"))
        seed = int(exp["params"]["train.seed"])
        for old in sorted({chosen[(v, seed)]["name"] for v, _ in provided if (v, seed) in chosen}):
            skipped.append((old, f"seed {seed} of its variant run again in the newer {exp['name']}"))
        for variant, model in provided:
            chosen[(variant, seed)] = {**exp, "model": model}
    return chosen, skipped


def dvc_records(repo: Path) -> Callable[[str, str, str], list[dict]]:
    """Reads `data/eval/<model>/<benchmark>.jsonl` at an experiment's revision from the DVC cache."""
    import dvc.api

    def read(rev: str, model: str, benchmark: str) -> list[dict]:
        with dvc.api.open(f"data/eval/{model}/{benchmark}.jsonl", rev=rev, repo=str(repo)) as f:
            return [json.loads(line) for line in f if line.strip()]
    return read


def compared(params: Mapping[str, Any]) -> dict[str, Any]:
    """The params one report's experiments must share: all but the swept and the derived."""
    return {k: v for k, v in params.items() if k not in SWEPT and not DERIVED.fullmatch(k)}


def load_part(path: Path, reference: Mapping[str, Any]) -> dict[str, dict[str, dict[int, dict[str, Any]]]]:
    """An earlier part's per-seed differences and variant figures (its `science.json`), as {"per_seed": finding ->
    seed -> difference, "figures": variant -> seed -> figures}; refused with the key that differs where it ran
    another configuration than the workspace's."""
    try:
        part = json.loads(path.read_text())
        theirs, per_seed, figures = part["compared"], part["per_seed"], part["figures"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise SystemExit(f"{path}: not a science report's part ({type(e).__name__}: {e})") from e
    ours = compared(reference)
    other = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    if other:
        raise SystemExit(f"{path}: its experiments ran {other[0]}={theirs.get(other[0])!r}, the workspace has "
                         f"{ours.get(other[0])!r}" + (f" (+{len(other) - 1} more keys differ)" if len(other) > 1 else "")
                         + ": a finding never mixes configurations")
    return {"per_seed": {key: {int(seed): d for seed, d in seeds.items()} for key, seeds in per_seed.items()},
            "figures": {v: {int(seed): f for seed, f in seeds.items()} for v, seeds in figures.items()}}


def _join(own: Mapping[str, Mapping[int, Any]], parts: Mapping[str, Mapping[str, Mapping[int, Any]]],
          what: str) -> dict[str, dict[int, Any]]:
    """This workspace's seeds, then each part's seeds it lacks; a seed in two parts is refused."""
    joined: dict[str, dict[int, Any]] = {k: dict(v) for k, v in own.items()}
    seen: dict[tuple[str, int], str] = {}
    for name, part in parts.items():
        for key, per_seed in part[what].items():
            for seed, value in per_seed.items():
                if (key, seed) in seen:
                    raise SystemExit(f"{name}: seed {seed} of {key} is also in {seen[(key, seed)]}; keep one")
                seen[(key, seed)] = name
                joined.setdefault(key, {}).setdefault(seed, value)
    return joined


def report(reference: Mapping[str, Any], found: Sequence[Mapping[str, Any]],
           read: Callable[[str, str, str], list[dict]],
           parts: Mapping[str, Mapping[str, Mapping[str, Mapping[int, Any]]]] | None = None,
           ) -> tuple[str, dict[str, float], dict[str, Any]]:
    """The report's Markdown, its figures as metrics (`<finding>/mean`, `/se`, `/seeds`) for MLflow, and the part
    this workspace's experiments make (`science.json`: the compared params and each finding's per-seed
    differences and variant figures), which a later part reads back with `--parts`. `parts`: file -> load_part's.
    The figures' base row is the newest experiment's evaluate@base (the base is the same in every one)."""
    chosen, skipped = plan(reference, found)
    needed = {b for f in science.FINDINGS for b in f.benchmarks}

    def benchmarks(exp: Mapping[str, Any]) -> list[str]:  # the findings' and the figures' that the experiment ran
        ran = exp["params"].get("evaluation.benchmarks") or sorted(needed)
        return sorted(needed | {b for b, _ in science.FIGURES if b in ran})

    runs = {key: {b: read(exp["rev"], exp["model"], b) for b in benchmarks(exp)} for key, exp in chosen.items()}
    seeds = sorted({seed for _, seed in chosen})
    own = science.findings(runs, seeds)
    own_figures: dict[str, dict[int, dict[str, float]]] = {}
    for (variant, seed), records in sorted(runs.items()):
        own_figures.setdefault(variant, {})[seed] = science.variant_figures(records)
    parts = parts or {}
    earlier = _join({}, parts, "per_seed")
    figures = _join(own_figures, parts, "figures")
    rows = science.findings(runs, seeds, earlier=earlier)
    newest = max(chosen.values(), key=lambda e: e["timestamp"], default=None)
    base = ({"base (no RL)": {0: science.variant_figures({b: read(newest["rev"], "base", b)
                                                          for b in benchmarks(newest)})}} if newest else {})
    metrics = {f"{r['finding'].key}/{k}": float(r[v]) for r in rows
               for k, v in (("mean", "mean"), ("se", "se"), ("seeds", "k")) if r[v] is not None}
    all_seeds = sorted({s for r in rows for s, _ in r["per_seed"]})
    from_parts = ", ".join(f"{name} ({', '.join(map(str, sorted({s for p in part['per_seed'].values() for s in p})))})"
                           for name, part in parts.items())
    lines = ["# The paper's findings over RL seeds (a DVC sweep)", "",
             f"Experiments whose params equal the workspace's but for {', '.join(SWEPT)}; treated − control paired "
             f"on the same items per seed, then mean ± se over the seeds (capcurriculum.evaluation.science; 'clear': "
             f"|mean| > {science.CLEAR_SE:g} se). Seeds: {', '.join(map(str, all_seeds)) or 'none'}"
             + (f"; this workspace's experiments: {', '.join(map(str, seeds)) or 'none'}, earlier parts': "
                f"{from_parts}" if parts else "") + ".", "",
             science.markdown(rows).rstrip("\n"), "",
             "Each variant's own figures, mean ± se over its seeds (accuracy and shares in %; the shuffled-images "
             "column is the blind-policy check: a policy that reads the image scores far lower there):", "",
             science.variant_table({**base, **dict(sorted(figures.items()))}, unseeded=list(base)).rstrip("\n"), "",
             "| variant | seed | experiment |", "|---|---|---|"]
    lines += [f"| {v} | {s} | {exp['name']} ({exp['rev'][:7]}, model {exp['model']}) |"
              for (v, s), exp in sorted(chosen.items())]
    if skipped:
        lines += ["", "Left out:", ""] + [f"- {name}: {why}" for name, why in skipped]
    part = {"compared": compared(reference),
            "experiments": {f"{v}/{s}": exp["rev"] for (v, s), exp in sorted(chosen.items())},
            "per_seed": {r["finding"].key: {str(s): d for s, d in r["per_seed"]} for r in own},
            "figures": {v: {str(s): f for s, f in per.items()} for v, per in own_figures.items()}}
    return "\n".join(lines) + "\n", metrics, part


def main(argv: Sequence[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repo", default=".", help="the DVC repository whose experiments are read")
    ap.add_argument("--out", default="data/reports/science.md",
                    help="the report; its part (this workspace's per-seed differences) is written beside it as .json")
    ap.add_argument("--parts", nargs="*", default=[], type=Path,
                    help="earlier parts' science.json (a sweep run a seed a part, in other workspaces or sessions): "
                         "their seeds join this workspace's; each must have run the workspace's configuration")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    repo = Path(a.repo).resolve()
    reference, found = experiments(repo)
    parts = {str(p): load_part(p, reference) for p in a.parts}
    text, metrics, part = report(reference, found, dvc_records(repo), parts)
    out = repo / a.out if not Path(a.out).is_absolute() else Path(a.out)
    write_text(out, text)
    write_json(out.with_suffix(".json"), part)
    run_id = log_report_run(str(reference["tracking.experiment"]), "science_report", metrics,
                            [out, out.with_suffix(".json")],
                            {"report.experiments": str(len(found)), "report.parts": str(len(parts))})
    log.info("science report: %s (%d experiments read; MLflow run %s)", out, len(found), run_id)


if __name__ == "__main__":
    main()
