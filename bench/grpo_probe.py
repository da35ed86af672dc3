"""Does GRPO lift one capability of a tiny base? Greedy accuracy and RL headroom before and after K steps.

    .venv/bin/python bench/grpo_probe.py --name text_math --steps 40 --lr 1e-4      # ~10 min on 2 cores

A quick probe outside the DAG (no sets, no DVC): it trains the base policy with the project's GRPO loop on
the world's `train` split of one capability and measures the held-out `test` split (n items) before and
after: greedy pass@1 with the paired difference and its standard error, sampled pass@1 and pass@G, the
greedy mass (the share of sampled answers equal to the greedy one) and the share of items whose greedy
answer changed. Sharpening raises the mass and changes few greedy answers; learning changes them.

`--method sft` is the supervised control: the same base, split, prompts per step and steps, but each
prompt's gold trace and answer as the target (the pre-training loop). Its rate starts at --lr and decays
(the pre-training loop's cosine) to 0.1x, where GRPO's stays at --lr: the control gets less step size,
not more. It tells a budget too small to move a capability apart from a reward signal that cannot move it.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time

import torch

from capcurriculum.io import write_json
from capcurriculum.models.loading import load_model_and_processor
from capcurriculum.sampling.capabilities import generate, score
from capcurriculum.sampling.headroom import answer_key, headroom
from capcurriculum.sampling.paired import paired_delta
from capcurriculum.sampling.rewards import RewardConfig
from capcurriculum.sampling.world_data import CAPABILITIES, WorldData
from capcurriculum.settings.grpo import GRPOSettings
from capcurriculum.training.grpo import GRPOTrainer, PromptStream
from capcurriculum.training.pretrain import MixtureSampler, PretrainConfig, pretrain
from capcurriculum.training.switches import TrainSwitches

WORLD_SETS = {mode: name for name, mode in CAPABILITIES.values() if mode != "perc_caption"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--name", choices=sorted(WORLD_SETS), default="text_math")
    ap.add_argument("--model", default="data/models/base/policy")
    ap.add_argument("--raw", default="data/raw")
    ap.add_argument("--world", default="data/world")
    ap.add_argument("--method", choices=["grpo", "sft"], default="grpo",
                    help="sft: the supervised control (gold traces, same prompts per step, steps and rate)")
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--lr", type=float, default=1e-4)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group-size", type=int, default=8)
    ap.add_argument("--kl", type=float, default=0.01)
    ap.add_argument("--temperature", type=float, default=1.0, help="the rollouts' sampling temperature")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--vision-lr-scale", type=float, default=0.1)
    ap.add_argument("--merger-lr-scale", type=float, default=1.0, help="the tower's mergers; 0 freezes them")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", help="the result's JSON "
                    "(default bench/results/grpo_probe/<name>_<method>_<steps>.json)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="GRPO's rollouts and update forward (train.precision); evaluation stays fp32")
    ap.add_argument("--completion-forward", choices=["lean", "transformers"], default="lean",
                    help="train.completion_forward: the same tokens and loss, lean is faster")
    ap.add_argument("--compile", action="store_true", help="train.compile: the lean path under torch.compile")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (the tiny profile's train.threads: 2)")
    ap.add_argument("--eval-every", type=int, default=0,
                    help="also measure greedy accuracy on the test items every K steps: the lift as a function "
                         "of training time, from one run (grpo only)")
    a = ap.parse_args()
    lean = a.completion_forward == "lean"
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    random.seed(a.seed)
    data = WorldData(a.raw, a.world)
    model, processor = load_model_and_processor(a.model)
    test = data.items(WORLD_SETS[a.name], a.name, "test", limit=a.n)

    summary: dict = {"command": " ".join(sys.argv), "args": vars(a)}

    def measure(tag: str) -> list[dict]:
        h, rows = headroom(model, processor, test, group_size=a.group_size, max_new_tokens=a.max_new_tokens,
                           lean=lean)
        summary[tag] = h
        print(tag, json.dumps({k: round(v, 3) for k, v in h.items()}), flush=True)
        return rows

    before = measure("before")
    train_items = data.items(WORLD_SETS[a.name], a.name, "train")
    t0 = time.time()
    if a.method == "sft":
        cfg = PretrainConfig(steps=a.steps, batch_size=a.prompts, lr=a.lr, warmup_steps=0, threads=1,
                             vision_lr_scale=a.vision_lr_scale, merger_lr_scale=a.merger_lr_scale,
                             mixture={a.name: 1.0})
        sampler = MixtureSampler({a.name: train_items}, cfg.mixture, seed=a.seed)
        history = pretrain(model, processor, sampler, cfg, log_every=max(1, a.steps // 10))
        key = "loss"
    else:
        settings = GRPOSettings(group_size=a.group_size, max_response_length=a.max_new_tokens,
                                learning_rate=a.lr, temperature=a.temperature, rollout_batch_size=a.prompts,
                                update_batch_size=a.prompts, kl_coef=a.kl)
        ref, _ = load_model_and_processor(a.model)
        trainer = GRPOTrainer(model, processor, settings, RewardConfig(), ref_model=ref,
                              vision_lr_scale=a.vision_lr_scale, merger_lr_scale=a.merger_lr_scale,
                              switches=TrainSwitches(lean=lean, precision=a.precision, compile=a.compile and lean))
        curve, eval_s = [], [0.0]

        def point(step: int) -> None:  # greedy only, timed apart from training
            t = time.time()
            rows = score(test, generate(model, processor, test, max_new_tokens=a.max_new_tokens, lean=lean))
            d = paired_delta([r["correct"] for r in before], [r["correct"] for r in rows])
            eval_s[0] += time.time() - t
            curve.append({"step": step, "train_s": time.time() - t0 - eval_s[0], "delta": d["delta"], "se": d["se"]})
            print(f"step {step}: {curve[-1]['train_s']:.0f} s of training, greedy delta {d['delta']:+.4f} "
                  f"± {d['se']:.4f}", flush=True)

        history = trainer.train(PromptStream(train_items, seed=a.seed), a.steps, checkpoint=point,
                                checkpoint_every=a.eval_every)
        summary["curve"] = curve
        key = "reward"
    k = max(1, len(history) // 10)
    first, last = (sum(r[key] for r in rows) / k for rows in (history[:k], history[-k:]))
    train_s = time.time() - t0 - (eval_s[0] if a.method == "grpo" else 0.0)
    print(f"{a.method}: trained {a.steps} steps in {train_s:.0f} s; {key} first tenth {first:.3f}, "
          f"last tenth {last:.3f}")
    summary["training"] = {"seconds": train_s, f"{key}_first_tenth": first, f"{key}_last_tenth": last}
    after = measure("after")
    d = paired_delta([r["correct"] for r in before], [r["correct"] for r in after])
    # a policy that only sharpens keeps its greedy answers: the share that changed tells it from learning
    changed = sum(answer_key(b["pred"]) != answer_key(x["pred"]) for b, x in zip(before, after, strict=True))
    d["greedy_answers_changed"] = changed / len(before)
    if a.method == "grpo" and a.eval_every:  # the trainer skips the last step's point: "after" is it
        summary["curve"].append({"step": a.steps, "train_s": train_s, "delta": d["delta"], "se": d["se"]})
    print(f"greedy delta {d['delta']:+.4f} ± {d['se']:.4f} (paired, n={d['n']}); greedy answers changed on "
          f"{d['greedy_answers_changed']:.1%} of items; greedy mass {summary['before']['greedy_mass']:.3f} -> "
          f"{summary['after']['greedy_mass']:.3f}")
    out = a.out or f"bench/results/grpo_probe/{a.name}_{a.method}_{a.steps}.json"
    write_json(out, {**summary, "greedy_delta": d})
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
