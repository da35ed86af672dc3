"""Our GRPO step on one process against data-parallel processes (`train.processes`), side by side in one run.

    .venv/bin/python bench/grpo_processes.py --model data/models/base/policy --mode text_math --prompts 128
    .venv/bin/python bench/grpo_processes.py --prompts 16 --steps 2      # no data: a built world and model

Each side is a fresh subprocess with the same model, prompts (the world's train split, in order), seed and
the params file's GRPO settings, precision, compile and attention: `--threads` threads in one process, then
`--processes` processes of threads / processes each under torchrun (what stages/train.py starts for
`train.processes`: each rolls out and updates on its share of every batch, gradients summed across them).
Each runs one warm-up step (compiling, when the params ask) and then --steps measured ones; the table gives
the medians. The vision tower and its mergers are frozen on both sides, as in the tiny profile.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

from grpo_step import WARMUP_STEPS, build_fixture, load_prompts, summarise  # noqa: E402


def worker(args) -> None:
    """One side: every process runs this; the main one writes the timings to --out."""
    import copy
    import dataclasses

    import torch
    from omegaconf import OmegaConf

    from capcurriculum.config import load_params
    from capcurriculum.models import load_model_and_processor
    from capcurriculum.models.attention import attention_implementation
    from capcurriculum.runtime import launched_accelerator, seed_everything
    from capcurriculum.training.grpo import GRPOTrainer
    from capcurriculum.training.grpo_config import GRPOSettings
    from capcurriculum.training.rewards import RewardConfig

    cfg = load_params(args.params)
    acc = launched_accelerator()
    world, rank = (acc.num_processes, acc.process_index) if acc else (1, 0)
    torch.set_num_threads(max(1, args.threads // world))
    seed_everything(args.seed + rank)
    settings = dataclasses.replace(GRPOSettings.from_dict(OmegaConf.to_container(cfg.grpo, resolve=True)),
                                   rollout_batch_size=args.prompts, update_batch_size=args.prompts)
    attn = attention_implementation(cfg.train.attn_implementation)
    model, processor = load_model_and_processor(args.model, attn_implementation=attn)
    ref = copy.deepcopy(model)  # the stage's start model, as training/curriculum.py makes it
    trainer = GRPOTrainer(model, processor, settings, RewardConfig(**OmegaConf.to_container(cfg.train.reward)),
                          ref_model=ref, vision_lr_scale=0.0, merger_lr_scale=0.0, accelerator=acc,
                          lean=cfg.train.completion_forward == "lean", precision=cfg.train.precision,
                          compile=bool(cfg.train.compile))
    prompts = load_prompts(args.raw, args.world, args.mode, args.prompts * (WARMUP_STEPS + args.steps))
    steps = []
    for k in range(WARMUP_STEPS + args.steps):
        t0 = time.perf_counter()
        row = trainer.step(prompts[k * args.prompts:(k + 1) * args.prompts][rank::world])
        if k >= WARMUP_STEPS:  # the rows are already means over the processes
            steps.append({"step_s": time.perf_counter() - t0, "rollout_s": row["time/rollout_s"],
                          "update_s": row["time/update_s"], "reward": row["reward"],
                          "response_length": row["response_length"]})
    if rank == 0:
        out = {**summarise(steps, args.prompts, settings.group_size), "processes": world,
               "threads_each": torch.get_num_threads(),
               "response_length": sum(s["response_length"] for s in steps) / len(steps)}
        Path(args.out).write_text(json.dumps(out))


def side(args, processes: int, out: Path) -> dict:
    own = [str(Path(__file__).resolve()), "--worker", "--out", str(out), "--model", str(args.model),
           "--raw", str(args.raw), "--world", str(args.world), "--mode", args.mode, "--prompts", str(args.prompts),
           "--steps", str(args.steps), "--threads", str(args.threads), "--params", args.params, "--seed", str(args.seed)]
    from capcurriculum.runtime import torchrun_command

    subprocess.run(torchrun_command(processes, own) if processes > 1 else [sys.executable, *own], check=True)
    return json.loads(out.read_text())


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a from_pretrained directory (default: build a tiny world and model)")
    ap.add_argument("--raw", type=Path, default=Path("data/raw"))
    ap.add_argument("--world", type=Path, default=Path("data/world"))
    ap.add_argument("--mode", default="text_math", choices=["text_math", "vis_math", "perc_image"])
    ap.add_argument("--prompts", type=int, default=128)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--threads", type=int, default=2, help="threads of the one process; each of N gets threads / N")
    ap.add_argument("--processes", type=int, default=2)
    ap.add_argument("--params", default="params.yaml")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", default=str(BENCH / "results" / "grpo_processes.json"))
    ap.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args)
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        if args.model is None:
            args.model, args.raw, args.world = build_fixture(Path(tmp), args.prompts * (WARMUP_STEPS + args.steps))
        sides = [side(args, 1, Path(tmp) / "one.json"), side(args, args.processes, Path(tmp) / "many.json")]
    print(f"\nGRPO step, {args.mode}, {args.prompts} prompts, medians of {args.steps} steps after a warm-up\n")
    print("| processes x threads | step s | rollout s | update s | prompts/s | completions/s | tokens a completion |")
    print("|---|---|---|---|---|---|---|")
    for r in sides:
        print(f"| {r['processes']} x {r['threads_each']} | {r['step_s']:.2f} | {r['rollout_s']:.2f} | "
              f"{r['update_s']:.2f} | {r['prompts_per_s']:.1f} | {r['completions_per_s']:.0f} | "
              f"{r['response_length']:.1f} |")
    print(f"\n{args.processes} processes / 1: {sides[0]['step_s'] / sides[1]['step_s']:.2f}x")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "sides": sides}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
