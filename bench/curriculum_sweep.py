"""The miniature's science over training seeds: staged vs merged, the order, RL vs caption SFT.

    .venv/bin/python bench/curriculum_sweep.py --seeds 0 1 2 --jobs 2      # ~1 h on 2 cores

Outside the DAG, on the DAG's own tiny world, sets and base policy (data/): for every variant and
`train.seed`, the stages run with the library's `run_stage` exactly as the DAG's nodes do, then the final
model is evaluated on the tiny benchmarks (n items each, greedy) as `evaluate@*` does. The world and the
base models stay fixed, so the spread is the spread of RL training (sampling, data order), not of the
world: `dvc exp run --queue -S seed=0,1,2 ...` (README) covers that, at ~2.5 h a seed here.

Variants: staged (curriculum.order as configured, default perc -> text -> vis), perc_last
(text -> vis -> perc), sft_perc (the perception stage as caption SFT), merged (the three sets together,
tower frozen), unbalanced (staged with train.balance: none). Each job's results go to
<out>/<variant>_s<seed>/ and are reused when the sweep is re-run; the table goes to <out>/sweep.md.
Stage-internal before/after measurements use --stage-eval-n items (diagnostics only; the comparison is
the final evaluation).
"""

from __future__ import annotations

import argparse
import json
import statistics
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

VARIANTS = {
    "staged": [],
    "perc_last": ["curriculum.order=[text,vis,perc]"],
    "sft_perc": ["curriculum.method.perc=sft"],
    "merged": [],
    "unbalanced": ["train.balance=none"],
}
BENCHMARKS = ("tiny_perception", "tiny_text_math", "tiny_vis_math")


def run_job(variant: str, seed: int, args: dict) -> dict:
    import torch

    from capcurriculum.config import compose
    from capcurriculum.evaluate import run_evaluation
    from capcurriculum.runtime import setup_logging
    from capcurriculum.training.curriculum import SLOTS, run_stage, stage_spec

    setup_logging("WARNING")
    torch.set_num_threads(1)
    out = Path(args["out"]) / f"{variant}_s{seed}"
    if (out / "eval" / "summary.json").exists():
        return {"variant": variant, "seed": seed, "cached": True}
    cfg = compose([f"profile={args['profile']}", f"train.seed={seed}", f"train.eval.n={args['stage_eval_n']}",
                   f"train.eval.headroom_n={args['stage_eval_n']}",
                   "train.eval.group_size=2", *args["overrides"], *VARIANTS[variant]], config_dir=Path(args["root"]) / "conf")
    data = Path(args["data"])
    where = {"base_dir": data / "models/base/policy", "sets_dir": data / "sets", "raw_dir": data / "raw",
             "world_dir": data / "world", "difficulty_dir": data / "difficulty"}
    stages = ["merged"] if variant == "merged" else list(SLOTS)
    init, seconds = data / "models/base/policy", {}
    for node in stages:
        m = run_stage(cfg, stage_spec(cfg, node), init_dir=init, out_dir=out / node, resume_dir=out / f".resume_{node}",
                      **where)
        seconds[node] = m.get("train/seconds", 0.0)
        init = out / node
    settings = {**dict(cfg.evaluation), "n": args["n"]}
    run_evaluation(init, list(BENCHMARKS), out / "eval", settings=settings, raw_dir=data / "raw",
                   world_dir=data / "world")
    (out / "train_seconds.json").write_text(json.dumps(seconds))
    return {"variant": variant, "seed": seed, "cached": False}


def load(out: Path, variant: str, seed: int) -> dict | None:
    from capcurriculum.io import read_jsonl

    d = out / f"{variant}_s{seed}" / "eval"
    if not (d / "summary.json").exists():
        return None
    summary = json.loads((d / "summary.json").read_text())
    return {"summary": summary, "records": {b: read_jsonl(d / f"{b}.jsonl") for b in BENCHMARKS}}


def ms(xs: list[float], scale: float = 100.0) -> str:
    if not xs:
        return "–"
    if len(xs) == 1:
        return f"{scale * xs[0]:.1f}"
    return f"{scale * statistics.mean(xs):.1f} ± {scale * statistics.stdev(xs):.1f}"


def table(out: Path, variants: list[str], seeds: list[int], base_dir: Path | None) -> str:
    from capcurriculum.evaluation import science

    res = {(v, s): load(out, v, s) for v in variants for s in seeds}
    n = next((r["summary"]["tiny_perception"]["n"] for r in res.values() if r), 0)
    lines = [f"Final greedy accuracy (%), mean ± sd over train.seed {seeds}; n = {n} items per benchmark.", "",
             "| variant | seeds | perception | text math | visual math | Overall | mean tokens (vis) | vis-math perception errors (exact) |",
             "|---|---|---|---|---|---|---|---|"]
    rows = [("base", [None])] if base_dir else []
    rows += [(v, seeds) for v in variants]
    for v, ss in rows:
        runs = [json.loads((base_dir / "summary.json").read_text())] if v == "base" else \
            [res[(v, s)]["summary"] for s in ss if res[(v, s)]]
        if not runs:
            continue
        acc = {b: [r[b]["accuracy"] for r in runs] for b in BENCHMARKS}
        overall = [sum(r[b]["accuracy"] for b in BENCHMARKS) / len(BENCHMARKS) for r in runs]
        toks = [r["tiny_vis_math"]["mean_tokens"] for r in runs]
        perc_err = [r["tiny_vis_math"].get("attribution", {}).get("perception", 0) for r in runs]
        lines.append(f"| {v} | {len(runs)} | " + " | ".join(ms(acc[b]) for b in BENCHMARKS) +
                     f" | {ms(overall)} | {ms(toks, 1)} | {ms(perc_err, 1)} |")
    runs = {key: r["records"] for key, r in res.items() if r}
    lines += ["", "The paper's findings: treated − control paired on the same items per seed, then mean ± se over "
              "seeds (capcurriculum.evaluation.science; 'clear': |mean| > 2 se).", "",
              science.markdown(science.findings(runs, seeds)).rstrip("\n")]
    return "\n".join(lines) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    ap.add_argument("--variants", nargs="+", default=["staged", "merged", "perc_last", "sft_perc"],
                    choices=sorted(VARIANTS))
    ap.add_argument("--data", default="data", help="the DAG's outputs: world, sets, base policy")
    ap.add_argument("--profile", default="tiny")
    ap.add_argument("--n", type=int, default=400, help="items per benchmark in the final evaluation")
    ap.add_argument("--stage-eval-n", type=int, default=64)
    ap.add_argument("--jobs", type=int, default=2)
    ap.add_argument("--override", action="append", default=[], help="a Hydra override for every job")
    ap.add_argument("--out", default="bench/results/curriculum_sweep")
    a = ap.parse_args()
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    args = {"out": str(out), "data": a.data, "profile": a.profile, "n": a.n, "stage_eval_n": a.stage_eval_n,
            "overrides": a.override,
            "root": str(Path(__file__).resolve().parents[1])}
    jobs = [(v, s) for s in a.seeds for v in a.variants]
    with ProcessPoolExecutor(max_workers=a.jobs) as pool:
        for done in pool.map(run_job, *zip(*jobs), [args] * len(jobs)):
            print("done", done, flush=True)
    base = Path(a.data) / "eval" / "base"
    md = table(out, a.variants, a.seeds, base if (base / "summary.json").exists() else None)
    (out / "sweep.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
