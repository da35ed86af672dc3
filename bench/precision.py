"""float32 against bfloat16 on this processor: a GRPO step and a pre-training step, side by side in one run,
and what `train.precision: auto` picks here (training/precision.py).

    .venv/bin/python bench/precision.py                        # the tiny profile's shapes, ~5 min on a Zen 3
    .venv/bin/python bench/precision.py --prompts 32 --steps 2  # a smaller GRPO batch, ~1 min
    ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 .venv/bin/python bench/precision.py   # a native-bf16 CPU
                                                                # restricted to what an AVX2-only one runs

The GRPO step is the DAG's: params.yaml's `grpo` settings (the tiny profile's: 128 prompts x G = 5, 48 tokens; G = 8 before 2026-12-07), its policy's size
and image size, the lean completion path, two threads (train.threads), on an untrained policy that decodes
every completion to the token limit (ignore_eos: the same load at both precisions). The pre-training step
is `training/pretrain.py`'s loop at params.yaml's `base.pretrain.policy` batch, under the same autocast
the GRPO forward runs in (the base node itself always pre-trains in float32). Each precision runs one
warm-up step, then the steps are timed in alternation (fp32, bf16, fp32, ...), so a busy machine slows both
alike; the table gives medians and the bf16 / fp32 ratio (above 1: bf16 is slower). torch.compile is off
unless --compile (the first compiled step takes minutes; it speeds both precisions alike).
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch

from capcurriculum.config import load_params
from capcurriculum.io import write_json
from capcurriculum.models import (
    build_processor,
    build_tiny_model,
    save_pretrained_dir,
    tiny_config,
    train_tokenizer,
)
from capcurriculum.models.init import world_texts
from capcurriculum.models.loading import load_model_and_processor
from capcurriculum.runtime import machine_record
from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.sampling.world_data import WorldData
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo import GRPOTrainer
from capcurriculum.training.precision import CpuBf16, autocast, resolve_precision
from capcurriculum.training.pretrain import MixtureSampler, PretrainConfig, pretrain
from capcurriculum.training.switches import TrainSwitches
from capcurriculum.world.build import build_world
from capcurriculum.world.scene import WorldConfig

PRECISIONS = ("fp32", "bf16")


def fixture(root: Path, cfg) -> tuple[Path, WorldData]:
    """A small world at the profile's image size and an untrained policy of the profile's size."""
    world = WorldConfig(seed=0, image_size=int(cfg.world.image_size), grid=int(cfg.world.grid),
                        scenes={"pretrain": 40, "train": 40, "test": 0}, text_math={"pretrain": 80, "train": 80, "test": 0},
                        vis_math={"pretrain": 80, "train": 80, "test": 0}, perception_per_scene=3)
    build_world(world, root / "raw", root / "world", progress=False)
    processor = build_processor(train_tokenizer(world_texts(root / "raw", root / "world"),
                                                vocab_size=int(cfg.tokenizer.vocab_size)), image_size=world.image_size)
    size = dict(cfg.models.policy.size)
    model = build_tiny_model(tiny_config(processor.tokenizer, image_size=world.image_size, **size), seed=0)
    save_pretrained_dir(model, processor, root / "model")
    return root / "model", WorldData(root / "raw", root / "world")


def grpo_steppers(model_dir: Path, data: WorldData, settings: GRPOSettings, threads: int, compile: bool):
    """One trainer per precision, each from the same weights, and the prompts of each of its steps."""
    items = data.items("vis_math", "vis_math", "train")
    prompts = [items[i % len(items)] for i in range(settings.rollout_batch_size)]
    steppers = {}
    for precision in PRECISIONS:
        policy, processor = load_model_and_processor(model_dir)
        ref, _ = load_model_and_processor(model_dir)
        trainer = GRPOTrainer(policy, processor, settings, RewardConfig(), ref_model=ref, vision_lr_scale=0.0,
                              merger_lr_scale=0.0, ignore_eos=True,
                              switches=TrainSwitches(lean=True, precision=precision, compile=compile))
        steppers[precision] = lambda t=trainer: (torch.set_num_threads(threads), t.step(prompts))
    return steppers


def pretrain_steppers(model_dir: Path, data: WorldData, pcfg: dict, steps: int):
    """`steps` steps of the pre-training loop per call, at each precision, each from the same weights."""
    cfg = PretrainConfig(**{**pcfg, "steps": steps, "warmup_steps": 0})
    steppers = {}
    for precision in PRECISIONS:
        model, processor = load_model_and_processor(model_dir)
        sampler = MixtureSampler(data.pools("pretrain"), cfg.mixture, seed=0)

        def run(model=model, processor=processor, sampler=sampler, precision=precision):
            with autocast(precision):
                pretrain(model, processor, sampler, cfg, log_every=steps)
        steppers[precision] = run
    return steppers


def alternate(steppers: dict, repeats: int, label: str) -> dict[str, list[float]]:
    times: dict[str, list[float]] = {p: [] for p in steppers}
    for p, step in steppers.items():  # warm-up (and compile, with --compile)
        t0 = time.perf_counter()
        step()
        print(f"{label} {p}: warm-up {time.perf_counter() - t0:.1f} s", flush=True)
    for r in range(repeats):
        for p, step in steppers.items():
            t0 = time.perf_counter()
            step()
            times[p].append(time.perf_counter() - t0)
            print(f"{label} {p}: run {r + 1}/{repeats} {times[p][-1]:.2f} s", flush=True)
    return times


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--params", default="params.yaml", help="the profile whose shapes are measured")
    ap.add_argument("--prompts", type=int, help="GRPO prompts a step (default: grpo.rollout_batch_size)")
    ap.add_argument("--steps", type=int, default=3, help="timed GRPO steps per precision")
    ap.add_argument("--pretrain-steps", type=int, default=10, help="pre-training steps per timed call")
    ap.add_argument("--repeats", type=int, default=3, help="timed pre-training calls per precision")
    ap.add_argument("--threads", type=int, help="torch threads (default: train.threads)")
    ap.add_argument("--compile", action="store_true", help="train.compile on both GRPO sides")
    ap.add_argument("--out", default="bench/results/precision.json")
    a = ap.parse_args()
    cfg = load_params(a.params, validate_all=False)
    threads = a.threads or int(cfg.train.threads)
    torch.set_num_threads(threads)
    grpo = dict(cfg.grpo)
    if a.prompts:
        grpo.update(rollout_batch_size=a.prompts, update_batch_size=a.prompts)
    settings = GRPOSettings.from_dict(grpo)
    machine = machine_record()
    auto = resolve_precision("auto")
    print(f"{machine['cpu']}; ATen {machine['cpu_capability']}; caps {machine['cpu_isa_caps'] or 'none'}")
    print(f"train.precision auto -> {auto.precision}: {auto.reason}", flush=True)

    with tempfile.TemporaryDirectory() as tmp:
        model_dir, data = fixture(Path(tmp), cfg)
        pcfg = {**dict(cfg.base.pretrain.policy), "threads": threads}
        rows = {"pretrain step": alternate(pretrain_steppers(model_dir, data, pcfg, a.pretrain_steps), a.repeats,
                                           "pretrain"),
                "GRPO step": alternate(grpo_steppers(model_dir, data, settings, threads, a.compile), a.steps, "grpo")}
    medians = {name: {p: statistics.median(ts) / (a.pretrain_steps if name == "pretrain step" else 1)
                      for p, ts in times.items()} for name, times in rows.items()}
    lines = [f"Processor: {machine['cpu']}; ATen {machine['cpu_capability']}; "
             f"ISA caps: {machine['cpu_isa_caps'] or 'none'}; {threads} thread(s)",
             f"train.precision auto -> **{auto.precision}** ({auto.reason})", "",
             "| step | fp32 s | bf16 s | bf16 / fp32 | auto's s |", "|---|---|---|---|---|"]
    for name, m in medians.items():
        lines.append(f"| {name} | {m['fp32']:.3f} | {m['bf16']:.3f} | {m['bf16'] / m['fp32']:.2f} | "
                     f"{m[auto.precision]:.3f} |")
    print("\n".join(lines))
    write_json(a.out, {"command": " ".join(sys.argv), "machine": machine, "cpu_bf16": dataclasses.asdict(CpuBf16.probe()),
                       "auto": auto.record(), "grpo": {"prompts": settings.rollout_batch_size,
                                                       "group_size": settings.group_size,
                                                       "max_new_tokens": settings.max_response_length},
                       "seconds": rows, "median_s_per_step": medians})
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
