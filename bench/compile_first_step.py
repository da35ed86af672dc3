"""The first GRPO step of a node under torch.compile (`train.compile: true`): how long it takes with an empty
inductor cache (cold, the DAG's first GRPO node) and with a warm one (every later node), and how many of the
lean decoder's AOTAutograd graphs load from the cache. Three variants of `models/lean.py`'s compile settings:
`shipped`; `unmarked`, without autocast's enter/exit marked cacheable (AUTOCAST_CACHEABLE emptied: every
graph bypasses AOTAutograd's cache); `floats_dynamic`, with the modules' float attributes traced as symbolic
floats (DYNAMO_CONFIG's specialize_float off: dynamo restarts three of the four analyses).

    .venv/bin/python bench/compile_first_step.py                                   # untrained tiny model
    .venv/bin/python bench/compile_first_step.py --model data/models/base/policy --mode text_math
    .venv/bin/python bench/compile_first_step.py --prompts 8 --max-new-tokens 8 --warm-runs 1   # a quick look

Each run is a fresh process (dynamo's in-memory caches die with it) on our GRPOTrainer with the tiny
profile's step: lean path, bf16, compiled, tower and mergers frozen, G = 8 by default (--group-size; the tiny profile's G until 2026-12-07, 5 since). A variant has its own
TORCHINDUCTOR_CACHE_DIR: its first run fills it (cold), the next --warm-runs read it (warm). The variants'
runs alternate, so machine drift falls on all. Per run: the first step's seconds, the second step's (the
steady cost, for scale), AOTAutograd's cache counters (graphs, hit, miss, bypass; a restarted analysis
counts a miss and is never written) and the two steps' loss, reward, KL, grad norm and response length,
compared bit for bit across all runs (a compile setting must not change the numbers).
`bench/grpo_step.py --compile` measures the steady steps after a warm-up instead.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from grpo_step import build_fixture, load_prompts  # noqa: E402  (bench/ is not a package)

VARIANTS = ("shipped", "unmarked", "floats_dynamic")
LOG_KEYS = ("loss", "reward", "kl", "grad_norm", "response_length")
AOT_KEYS = ("total", "autograd_cache_hit", "autograd_cache_miss", "autograd_cache_bypass")


def worker(args) -> dict:
    """One fresh process: a trainer from --model, two steps, the timings and the cache counters."""
    import torch
    from torch._dynamo.utils import counters

    from capcurriculum.models import lean, load_model_and_processor
    from capcurriculum.models.attention import attention_implementation
    from capcurriculum.sampling.rewards import RewardConfig
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.grpo import GRPOTrainer
    from capcurriculum.training.switches import TrainSwitches

    torch.set_num_threads(args.threads)
    # both read when the compiled function is first built, below
    if args.variant == "unmarked":
        lean.AUTOCAST_CACHEABLE.clear()
    if args.variant == "floats_dynamic":
        lean.DYNAMO_CONFIG["specialize_float"] = False
    attn = attention_implementation("sdpa_gqa")
    policy, processor = load_model_and_processor(args.model, attn_implementation=attn)
    ref, _ = load_model_and_processor(args.model, attn_implementation=attn)
    settings = GRPOSettings(group_size=args.group_size, max_response_length=args.max_new_tokens,
                            rollout_batch_size=args.prompts, update_batch_size=args.prompts,
                            learning_rate=1e-4, kl_coef=0.01, temperature=1.0)
    trainer = GRPOTrainer(policy, processor, settings, RewardConfig(), ref_model=ref, vision_lr_scale=0.0,
                          merger_lr_scale=0.0,
                          switches=TrainSwitches(lean=True, precision="auto", compile=True))
    items = load_prompts(args.raw, args.world, args.mode, 2 * args.prompts)
    torch.manual_seed(args.seed)
    steps = []
    for k in range(2):
        t0 = time.perf_counter()
        row = trainer.step(items[k * args.prompts:(k + 1) * args.prompts])
        steps.append({"step_s": time.perf_counter() - t0, **{k: row[k] for k in LOG_KEYS if k in row}})
    aot = counters["aot_autograd"]
    return {"first_step_s": steps[0]["step_s"], "second_step_s": steps[1]["step_s"],
            "logs": [{k: s[k] for k in LOG_KEYS if k in s} for s in steps],
            "aot": {k: int(aot.get(k, 0)) for k in AOT_KEYS}, "threads": torch.get_num_threads()}


def run_one(args, variant: str, cache_dir: Path, model: Path, raw: Path, world: Path, out: Path) -> dict:
    env = {**os.environ, "TORCHINDUCTOR_CACHE_DIR": str(cache_dir)}
    command = [sys.executable, __file__, "--worker", "--variant", variant, "--model", str(model),
               "--raw", str(raw), "--world", str(world), "--out", str(out), "--mode", args.mode,
               "--prompts", str(args.prompts), "--group-size", str(args.group_size),
               "--max-new-tokens", str(args.max_new_tokens), "--threads", str(args.threads),
               "--seed", str(args.seed)]
    t0 = time.perf_counter()
    proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"{variant} run failed (exit {proc.returncode}):\n{proc.stderr[-4000:]}")
    return {**json.loads(out.read_text()), "process_s": time.perf_counter() - t0}


def table(runs: list[dict]) -> str:
    lines = ["| variant | cache | first step s | second step s | AOT graphs | hit | miss | bypass |",
             "|---|---|---|---|---|---|---|---|"]
    for r in runs:
        a = r["aot"]
        lines.append(f"| {r['variant']} | {r['cache']} | {r['first_step_s']:.1f} | {r['second_step_s']:.2f} | "
                     f"{a['total']} | {a['autograd_cache_hit']} | {a['autograd_cache_miss']} | "
                     f"{a['autograd_cache_bypass']} |")
    return "\n".join(lines)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a from_pretrained directory (default: an untrained tiny one)")
    ap.add_argument("--raw", type=Path, help="raw corpus dir (default data/raw with --model)")
    ap.add_argument("--world", type=Path, help="world sets dir (default data/world with --model)")
    ap.add_argument("--mode", choices=("vis_math", "text_math", "perc_image"), default="text_math")
    ap.add_argument("--prompts", type=int, default=128, help="prompts per step (the tiny profile's 128)")
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--warm-runs", type=int, default=2, help="warm runs per variant after its cold one")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/compile_first_step.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--variant", choices=VARIANTS, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        result = worker(args)
        args.out.write_text(json.dumps(result))
        return 0
    if args.prompts < 1 or args.group_size < 2 or args.max_new_tokens < 1 or args.warm_runs < 1:
        ap.error("need --prompts >= 1, --group-size >= 2, --max-new-tokens >= 1 and --warm-runs >= 1")

    import torch

    from capcurriculum.io import write_json

    runs: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="compile_first_step_") as tmp:
        tmp = Path(tmp)
        if args.model is None:
            model, raw, world = build_fixture(tmp / "fixture", 2 * args.prompts)
        else:
            model, raw, world = args.model, args.raw or Path("data/raw"), args.world or Path("data/world")
        for k in range(1 + args.warm_runs):
            for variant in VARIANTS:
                cache = "cold" if k == 0 else "warm"
                print(f"{variant}, {cache} cache ({k + 1}/{1 + args.warm_runs}) ...", flush=True)
                r = run_one(args, variant, tmp / f"inductor_{variant}", model, raw, world, tmp / "run.json")
                runs.append({"variant": variant, "cache": cache, **r})
                print(f"  first step {r['first_step_s']:.1f} s, AOT {r['aot']}", flush=True)

    def median_first(variant, cache):
        return statistics.median(r["first_step_s"] for r in runs if r["variant"] == variant and r["cache"] == cache)

    logs = {json.dumps(r["logs"], sort_keys=True) for r in runs}
    result = {
        "runs": runs,
        "warm_first_step_median_s": {v: median_first(v, "warm") for v in VARIANTS},
        "cold_first_step_s": {v: median_first(v, "cold") for v in VARIANTS},
        "logs_identical": len(logs) == 1,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__},
    }
    print(f"\nFirst GRPO step under torch.compile, {args.mode}: {args.prompts} prompts x {args.group_size}, "
          f"<= {args.max_new_tokens} new tokens, bf16, {args.threads} thread(s)\n")
    print(table(runs))
    warm = result["warm_first_step_median_s"]
    print(f"\nwarm first step (median of {args.warm_runs}): "
          + ", ".join(f"{v} {warm[v]:.1f} s" for v in VARIANTS)
          + f"; the two steps' loss, reward, KL, grad norm and length bit-identical in every run: {result['logs_identical']}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
