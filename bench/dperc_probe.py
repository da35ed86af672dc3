"""Is D_perc's composition what holds the perception stage back? Train stage 1 on a variant of D_perc.

    .venv/bin/python bench/dperc_probe.py --workspace . --keep image_wrong:filter_small   # ~8 min on 2 cores

Learning, not speed. It reads a DAG workspace's `params.yaml`, base policy, candidates
(`data/perception/qa/candidates.jsonl`) and filter verdicts (`data/perception/filter/filter_verdicts.jsonl`),
builds a variant D_perc in a temporary directory, split by scene as `perc_filter` splits, and runs the
workspace's train_1 recipe (`run_stage`, the same settings, balance and evaluation) on it:

- `--keep kept` (default): the filter's own verdicts, the D_perc the DAG trains on (the control);
- `--keep kept:<model>[,<model>]`: what those models kept (image wrong, caption right), e.g. filter_small alone;
- `--keep image_wrong:<model>[,<model>]`: every candidate each named model answered wrong from the image,
  whatever it answered from the caption: D_perc as if the filters read every caption right. With
  `perception.filter.cascade: true` only the first model was asked about every candidate.

It prints the variant's composition by question type, then the stage's paired Δ ± se on the held-out
capabilities (`train.eval.n`: the whole test split by default) and its reward's first and last tenth, and writes them as JSON (--out).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import json
import tempfile
from pathlib import Path

from capcurriculum.config import load_params
from capcurriculum.io import read_jsonl, write_json, write_jsonl
from capcurriculum.perception.filter import split_kept
from capcurriculum.training.curriculum import run_stage, stage_spec


def variant(workspace: Path, keep: str, filter_models: list[str]) -> list[dict]:
    """The candidates the rule keeps, in the candidates' order. A verdict row is one model's: `kept` is the
    intersection of the keeps over `filter_models`, as `perc_filter` keeps; `kept:<models>` over those."""
    rows = read_jsonl(workspace / "data/perception/filter/filter_verdicts.jsonl")
    if keep == "kept" or keep.startswith("kept:"):
        models, passes = keep.split(":", 1)[1].split(",") if ":" in keep else filter_models, lambda r: r["keep"]
    elif keep.startswith("image_wrong:"):
        models, passes = keep.split(":", 1)[1].split(","), lambda r: r["image_correct"] is False and not r["image_skipped"]
    else:
        raise SystemExit(f"--keep: expected `kept[:<model>,...]` or `image_wrong:<model>[,<model>]`, got {keep!r}")
    ids = collections.defaultdict(set)
    for r in rows:
        if r["model"] in models and passes(r):
            ids[r["model"]].add(r["id"])
    missing = [m for m in models if m not in ids]
    if missing:
        raise SystemExit(f"--keep {keep}: no such verdicts of {', '.join(missing)} in filter_verdicts.jsonl")
    both = set.intersection(*ids.values())
    return [c for c in read_jsonl(workspace / "data/perception/qa/candidates.jsonl") if c["id"] in both]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", default=".", help="a DAG workspace after `perc_filter` and `base@policy`")
    ap.add_argument("--keep", default="kept")
    ap.add_argument("--steps", type=int, default=None, help="GRPO steps (default: the perc slot's)")
    ap.add_argument("--out", default="bench/results/dperc_probe.json")
    args = ap.parse_args()
    ws = Path(args.workspace)
    cfg = load_params(ws / "params.yaml")
    slot = f"train_{list(cfg.curriculum.order).index('perc') + 1}"
    spec = stage_spec(cfg, slot)
    if args.steps:
        spec = dataclasses.replace(spec, steps=args.steps)
    kept = variant(ws, args.keep, list(cfg.perception.filter.models))
    with tempfile.TemporaryDirectory() as tmp:
        splits = split_kept(kept, list(cfg.perception.filter.split), seed=cfg.seed)
        composition = {}
        for name, rows in splits.items():
            write_jsonl(Path(tmp) / "sets/perc" / f"perc_{name}.jsonl", rows)
            composition[name] = dict(collections.Counter(r["meta"]["qtype"] for r in rows).most_common())
            print(f"{args.keep} {name}: {len(rows)} items {composition[name]}")
        metrics = run_stage(cfg, spec, init_dir=ws / "data/models/base/policy", base_dir=ws / "data/models/base/policy",
                            sets_dir=Path(tmp) / "sets", raw_dir=ws / "data/raw", world_dir=ws / "data/world",
                            out_dir=Path(tmp) / "model", resume_dir=Path(tmp) / "resume")
    print(f"\n{args.keep}, {spec.steps} steps\n")
    print("| capability | n | before | Δ ± se |\n|---|---|---|---|")
    for cap in ("perc_image", "text_math", "vis_math", "set/perc"):
        n = metrics.get(f"before/{cap}/n", metrics.get(f"{cap}/n"))
        print(f"| {cap} | {n} | {metrics[f'before/{cap}/acc']:.3f} | {metrics[f'delta/{cap}']:+.3f} ± "
              f"{metrics[f'delta/{cap}/se']:.3f} |")
    print(f"\nreward {metrics['reward/first_tenth']:.3f} -> {metrics['reward/last_tenth']:.3f}; blind answer per "
          f"question text {metrics['data/question_prior_reward']:.3f}")
    write_json(args.out, {"keep": args.keep, "steps": spec.steps, "composition": composition,
                          "metrics": metrics, "args": vars(args)})
    print(json.dumps({"out": args.out}))


if __name__ == "__main__":
    main()
