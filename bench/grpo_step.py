"""GRPO step throughput: TRL 1.16's `trl.GRPOTrainer` beside our `capcurriculum.training.grpo.GRPOTrainer`
on the same model, prompts and settings, in one run; and a check that the two losses agree on a fixed batch.

    .venv/bin/python bench/grpo_step.py --model data/models/base/policy
    .venv/bin/python bench/grpo_step.py --prompts 4 --group-size 4 --max-new-tokens 12 --steps 1  # no data

Without --model it builds a small world and an untrained tiny Qwen3-VL in a temporary directory (an
untrained model rarely stops early, so nearly every completion runs to --max-new-tokens: a fixed load).

Both sides get one GRPOSettings (rollout_batch_size = update_batch_size = --prompts, lr 1e-4, kl_coef
0.01, temperature 1.0): TRL through `to_trl_config`, ours directly; the same reward
(`rewards.reward(...)["reward"]`) and the same prompts in the same order. Each side runs one warm-up step,
then --steps measured steps, and the medians of those are reported. Per step: wall seconds, prompts/s,
completions/s, and the rollout (generation, scoring, reference logprobs) vs update (forward, backward,
optimizer) split. Ours reports the split itself. For TRL the rollout is the time spent in
`_generate_and_score_completions` (wrapped on the trainer instance), and a step is the time between
consecutive `on_step_end` callbacks (so it includes TRL's data loading and logging).

TRL config fields beyond the GRPO semantics: max_steps, shuffle_dataset=False (the same prompt order as
ours), gradient_checkpointing=False (TRL defaults to True; our loop keeps activations, so this is the
like-for-like choice), bf16 (--precision: bf16 on both sides, TRL's through accelerate's CPU autocast, ours
through train.precision) and CPU/logging plumbing. Ours runs with vision_lr_scale=1.0, as TRL has one rate;
with --freeze-vision both sides freeze the vision tower and its mergers (the tiny profile's setting: ours
with vision_lr_scale = merger_lr_scale = 0, TRL's model with requires_grad off there, which its optimizer
skips). Ours also runs with --attn (default sdpa_gqa, the tiny profile's); ours shares each prompt's forward
pass across its G completions (sampling/rollout.py), in the rollout and in the update. Ours runs twice from
the same weights and seed: `ours_transformers` sends completion tokens through transformers' forward, `ours`
through models/lean.py (train.completion_forward: lean, the tiny profile's default); the ratio of the two is
reported beside the ratio to TRL. --compile turns on torch.compile on both sides (TRL's `torch_compile`,
ours `train.compile`, the lean side only); the warm-up step absorbs the compiling (ours reports it, warmup_s).

Loss agreement: on one rollout from our `rollout(...)`, with fixed advantages and fixed old/reference
logprobs (the current logprobs, perturbed with seeded noise so that the clip, the dual clip and the KL
term all act), our `grpo_loss` is compared with (a) a re-implementation of TRL 1.16's `_compute_loss`
formula on the same logprobs and (b) TRL's own `_compute_loss` fed the same batch, which recomputes the
logprobs with TRL's fused LM head. Tokens where TRL_GAPS make the two differ (|log-ratio| > 20,
k3 > kl_clamp) are counted; with none, the losses agree to float rounding.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

# prompt mode -> the world set it reads
MODE_SETS = {"vis_math": "vis_math", "text_math": "text_math", "perc_image": "perception"}
# seeded perturbations of the loss check: old = logp - N(0, s), ref = logp + N(0, s)
OLD_NOISE, REF_NOISE = 0.5, 0.5
WARMUP_STEPS = 1


# --- data and model ---------------------------------------------------------------------------------------
def build_fixture(root: Path, n_items: int) -> tuple[Path, Path, Path]:
    """A small world (n_items per train set) and an untrained tiny model, saved under root."""
    from capcurriculum.models import (
        build_processor,
        build_tiny_model,
        save_pretrained_dir,
        tiny_config,
        train_tokenizer,
    )
    from capcurriculum.models.init import world_texts
    from capcurriculum.world.build import build_world
    from capcurriculum.world.scene import WorldConfig

    n = max(2, n_items)
    cfg = WorldConfig(seed=0, scenes={"pretrain": 4, "train": n // 3 + 1, "test": 0},
                      text_math={"pretrain": 8, "train": n, "test": 0},
                      vis_math={"pretrain": 8, "train": n, "test": 0}, perception_per_scene=3)
    build_world(cfg, root / "raw", root / "world", progress=False)
    processor = build_processor(train_tokenizer(world_texts(root / "raw", root / "world"), vocab_size=400))
    save_pretrained_dir(build_tiny_model(tiny_config(processor.tokenizer), seed=0), processor, root / "model")
    return root / "model", root / "raw", root / "world"


def load_prompts(raw: Path, world: Path, mode: str, n: int) -> list:
    """n prompts of the world's train split, cycled when the split is smaller."""
    from capcurriculum.sampling.world_data import WorldData

    items = WorldData(raw, world).items(MODE_SETS[mode], mode, "train")
    if not items:
        raise SystemExit(f"no {MODE_SETS[mode]} train items under {world}")
    return [items[i % len(items)] for i in range(n)]


def make_trl_reward(items: list, tokenizer, reward_cfg):
    """Our reward for TRL. It decodes TRL's completion ids as our rollout decodes its own (up to and
    including eos, special tokens skipped), so no chat-template response parser changes the text."""
    from capcurriculum.sampling.rewards import reward

    def grpo_reward(prompts, completions, completion_ids, idx, **_):
        texts = tokenizer.batch_decode(completion_ids, skip_special_tokens=True)
        golds = [items[i].example for i in idx]
        return [reward(t, ex["answer"], ex["answer_type"], reward_cfg)["reward"]
                for t, ex in zip(texts, golds, strict=True)]

    return grpo_reward


def trl_args(settings, out_dir: Path, max_steps: int, seed: int, bf16: bool = False, compile: bool = False):
    from capcurriculum.training.trl_config import to_trl_config

    return to_trl_config(
        settings, str(out_dir), report_to="none", logging_steps=1, save_strategy="no", bf16=bf16,
        torch_compile=compile, use_cpu=True, max_steps=max_steps, shuffle_dataset=False,
        gradient_checkpointing=False,
        disable_tqdm=True, dataloader_num_workers=0, dataloader_pin_memory=False, seed=seed)


def freeze_vision(model) -> int:
    """requires_grad off for the vision tower and its mergers; the number of tensors frozen."""
    from capcurriculum.training.pretrain import vision_part

    frozen = [p for name, p in model.named_parameters() if vision_part(name)]
    for p in frozen:
        p.requires_grad_(False)
    return len(frozen)


def build_trl_trainer(model_dir: Path, settings, items: list, reward_cfg, out_dir: Path, max_steps: int,
                      seed: int, frozen_vision: bool = False, bf16: bool = False, compile: bool = False):
    from transformers import TrainerCallback
    from transformers.trainer_callback import PrinterCallback, ProgressCallback
    from trl import GRPOTrainer as TRLGRPOTrainer

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.training.trl_engine import trl_rows

    class Clock(TrainerCallback):
        def __init__(self):
            self.begins, self.ends, self.logs = [], [], []

        def on_step_begin(self, args, state, control, **kw):
            self.begins.append(time.perf_counter())

        def on_step_end(self, args, state, control, **kw):
            self.ends.append(time.perf_counter())

        def on_log(self, args, state, control, logs=None, **kw):
            self.logs.append(dict(logs or {}))

    # load_model_and_processor pads on the left, which TRL's generation needs for Qwen3-VL. The model comes
    # from the directory, so TRL builds its reference model from the same checkpoint (its name_or_path).
    model, processor = load_model_and_processor(model_dir)
    if frozen_vision and not freeze_vision(model):
        raise RuntimeError(f"{model_dir}: no vision parameters to freeze")
    clock = Clock()
    trainer = TRLGRPOTrainer(
        model=model, reward_funcs=make_trl_reward(items, processor.tokenizer, reward_cfg),
        args=trl_args(settings, out_dir, max_steps, seed, bf16, compile),
        train_dataset=trl_rows(items, processor),
        processing_class=processor, callbacks=[clock])
    trainer.remove_callback(PrinterCallback)
    trainer.remove_callback(ProgressCallback)
    gen_times: list[float] = []
    generate_and_score = trainer._generate_and_score_completions

    def timed(inputs):
        t0 = time.perf_counter()
        out = generate_and_score(inputs)
        gen_times.append(time.perf_counter() - t0)
        return out

    trainer._generate_and_score_completions = timed  # _prepare_inputs calls it through self
    return trainer, clock, gen_times


# --- loss agreement ---------------------------------------------------------------------------------------
def trl_formula_loss(logp, old, ref, adv, mask, args):
    """TRL 1.16's `_compute_loss` for what to_trl_config sets, re-written: token-level ratio r,
    coef_2 = clamp(r, 1 - epsilon, 1 + epsilon_high), coef_1 = min(r, delta), -min(coef_1 A, coef_2 A),
    plus beta * the unclamped k3. 'bnpo' and 'dapo' both divide by the batch's token count here: the fixed
    batch is one micro-batch that is the whole mini-batch and the whole generation batch."""
    import torch

    if args.loss_type not in ("bnpo", "dapo") or args.importance_sampling_level != "token":
        raise ValueError(f"re-implemented for token-level bnpo/dapo only, got {args.loss_type}")
    A = adv.unsqueeze(1)
    coef_1 = torch.exp(logp - old)
    coef_2 = torch.clamp(coef_1, 1 - args.epsilon, 1 + args.epsilon_high)
    if args.delta is not None:
        coef_1 = torch.clamp(coef_1, max=args.delta)
    per_token = -torch.min(coef_1 * A, coef_2 * A)
    if args.beta != 0.0:
        per_token = per_token + args.beta * (torch.exp(ref - logp) - (ref - logp) - 1)
    mask = mask.to(per_token.dtype)
    return (per_token * mask).sum() / mask.sum().clamp(min=1.0)


def loss_check(policy, processor, items: list, settings, trainer, seed: int) -> dict:
    import torch

    from capcurriculum.sampling.rollout import completion_logprobs, rollout
    from capcurriculum.training.grpo_loss import group_advantages, grpo_loss

    s = settings
    torch.manual_seed(seed)
    with torch.no_grad():
        ro = rollout(policy, processor, items, group_size=s.group_size, max_new_tokens=s.max_response_length,
                     temperature=s.temperature, top_p=s.top_p, lean=True)
        logp = completion_logprobs(policy, ro, s.temperature, lean=True)
    g = torch.Generator().manual_seed(seed)
    n = logp.shape[0]
    adv = group_advantages(torch.randn(n, generator=g), s.group_size, s.adv_eps)
    old = logp - OLD_NOISE * torch.randn(logp.shape, generator=g)
    ref = logp + REF_NOISE * torch.randn(logp.shape, generator=g)
    mask = ro.completion_mask

    ours, st = grpo_loss(logp, old, ref, adv, mask, s)
    d = (ref - logp).clamp(-20, 20)
    k3 = torch.exp(d) - d - 1
    gap = (((logp - old).abs() > 20) | ((ref - logp).abs() > 20) | (k3 > s.kl_clamp)) & mask.bool()
    out = {"prompts": len(items), "completions": n, "tokens": int(mask.sum()), "old_noise": OLD_NOISE,
           "ref_noise": REF_NOISE, "gap_tokens": int(gap.sum()), "clip_frac": st["clip_frac"],
           "dual_clip_frac": st["dual_clip_frac"], "ours": ours.item()}
    if trainer is None:
        return out
    formula = trl_formula_loss(logp, old, ref, adv, mask, trainer.args).item()
    out.update({"trl_formula": formula, "abs_diff_formula": abs(ours.item() - formula)})

    # TRL's own _compute_loss on the same batch, laid out as _generate_and_score_completions lays it out:
    # prompt left-padded, completion masked after its first eos (ours has the same layout).
    full = ro.full_inputs()
    ids, am, Lp = full["input_ids"], full["attention_mask"], ro.prompt_len
    inputs = {"prompt_ids": ids[:, :Lp], "prompt_mask": am[:, :Lp], "completion_ids": ro.completion_ids,
              "completion_mask": mask, "advantages": adv, "num_items_in_batch": mask.sum(),
              "old_per_token_logps": old, "ref_per_token_logps": ref}
    mm = {k: full[k] for k in ("pixel_values", "image_grid_thw", "mm_token_type_ids") if k in full}
    if "image_grid_thw" in mm:
        mm["num_images"] = [1] * n
    inputs.update(mm)
    model = trainer.model
    was_training = model.training
    model.eval()  # 'eval': no accumulation scaling (it is 1 here anyway); neither model has dropout
    try:
        with torch.no_grad():
            trl_loss = trainer._compute_loss(model, inputs).item()
            trl_logp, _, _ = trainer._get_per_token_logps_and_entropies(model, ids, am, logp.shape[1], **mm)
    finally:
        model.train(was_training)
        trainer._metrics["eval"].clear()
    out.update({"trl_compute_loss": trl_loss, "abs_diff_compute_loss": abs(ours.item() - trl_loss),
                "max_abs_logp_diff": float(((trl_logp - logp).abs() * mask).max())})
    return out


# --- the two sides ----------------------------------------------------------------------------------------
def summarise(steps: list[dict], P: int, G: int) -> dict:
    def med(key):
        vals = [s[key] for s in steps if s.get(key) is not None]
        return statistics.median(vals) if vals else None

    step_s = med("step_s")
    return {"prompts_per_s": P / step_s, "completions_per_s": P * G / step_s, "step_s": step_s,
            "rollout_s": med("rollout_s"), "update_s": med("update_s"), "steps": steps}


TRL_LOG_KEYS = ("loss", "reward", "kl", "grad_norm", "step_time", "completions/mean_length", "learning_rate")
OUR_LOG_KEYS = ("loss", "reward", "kl", "grad_norm", "response_length")


def run_trl(trainer, clock, gen_times, P: int, G: int, threads: int) -> dict:
    import torch

    torch.set_num_threads(threads)  # in case the Trainer set it
    trainer.train()
    ends = clock.ends
    if len(ends) <= WARMUP_STEPS or len(gen_times) != len(ends):
        raise RuntimeError(f"TRL ran {len(ends)} optimizer steps and {len(gen_times)} generations; "
                           f"expected as many of each, more than {WARMUP_STEPS}")
    steps = []
    for k in range(WARMUP_STEPS, len(ends)):
        step_s = ends[k] - ends[k - 1]
        steps.append({"step_s": step_s, "rollout_s": gen_times[k], "update_s": step_s - gen_times[k]})
    logs = [{k: v for k, v in row.items() if k in TRL_LOG_KEYS} for row in clock.logs if "loss" in row]
    return {**summarise(steps, P, G), "threads": torch.get_num_threads(), "logs": logs}


def run_ours(model_dir: Path, policy, processor, settings, reward_cfg, batches: list, threads: int,
             seed: int, attn: str, lean: bool, vision_scale: float = 1.0, precision: str = "fp32",
             compile: bool = False) -> dict:
    import torch

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.models.attention import attention_implementation, batch_vision_attention
    from capcurriculum.training.grpo import GRPOTrainer
    from capcurriculum.training.switches import TrainSwitches

    torch.set_num_threads(threads)
    policy.set_attn_implementation(attention_implementation(attn))
    if attn == "sdpa_gqa":  # as load_model_and_processor does for the ref below and for the DAG's stages
        batch_vision_attention(policy)
    ref, _ = load_model_and_processor(model_dir, attn_implementation=attention_implementation(attn))
    trainer = GRPOTrainer(policy, processor, settings, reward_cfg, ref_model=ref,
                          vision_lr_scale=vision_scale, merger_lr_scale=vision_scale,
                          switches=TrainSwitches(lean=lean, precision=precision, compile=compile and lean))
    torch.manual_seed(seed)
    steps, logs = [], []
    for k, batch in enumerate(batches):
        t0 = time.perf_counter()
        row = trainer.step(batch)
        step_s = time.perf_counter() - t0
        logs.append({key: row[key] for key in OUR_LOG_KEYS if key in row})
        if k >= WARMUP_STEPS:
            steps.append({"step_s": step_s, "rollout_s": row["time/rollout_s"],
                          "update_s": row["time/update_s"]})
        else:
            warmup_s = step_s
    P, G = settings.rollout_batch_size, settings.group_size
    return {**summarise(steps, P, G), "warmup_s": warmup_s, "threads": torch.get_num_threads(), "logs": logs}


# --- report -----------------------------------------------------------------------------------------------
def fmt(x, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def report(result: dict) -> str:
    lines = ["| side | prompts/s | completions/s | rollout s | update s | step s |",
             "|---|---|---|---|---|---|"]
    for name in ("trl", "ours_transformers", "ours"):
        if name not in result["sides"]:
            continue
        side = result["sides"].get(name, {})
        if "error" in side:
            lines.append(f"| {name} | failed: {side['error'].splitlines()[-1][:90]} | | | | |")
            continue
        cells = [fmt(side.get("prompts_per_s"), ".3f"), fmt(side.get("completions_per_s"), ".2f"),
                 fmt(side.get("rollout_s"), ".2f"), fmt(side.get("update_s"), ".2f"),
                 fmt(side.get("step_s"), ".2f")]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"ratio ours/TRL prompts/s: {fmt(result.get('ratio_ours_over_trl_prompts_per_s'), '.2f')}",
              f"ratio ours lean/transformers forward: {fmt(result.get('ratio_lean_over_transformers_forward'), '.2f')}"]
    la = result.get("loss_agreement", {})
    if "error" in la:
        lines.append(f"loss agreement: failed: {la['error'].splitlines()[-1]}")
    elif la:
        lines.append(f"loss on a fixed batch ({la['completions']} completions, {la['tokens']} tokens, "
                     f"{la['gap_tokens']} in TRL_GAPS' zones): ours {la['ours']:.8f}")
        if "trl_formula" in la:
            lines.append(f"  TRL formula       {la['trl_formula']:.8f}  |diff| {la['abs_diff_formula']:.2e}")
            lines.append(f"  TRL _compute_loss {la['trl_compute_loss']:.8f}  |diff| "
                         f"{la['abs_diff_compute_loss']:.2e}  (its logprobs: max |diff| "
                         f"{la['max_abs_logp_diff']:.2e})")
    return "\n".join(lines)


def error_text(e: BaseException) -> str:
    """The traceback; its last line (the exception) goes in the table."""
    return "".join(traceback.format_exception(e)).strip()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", type=Path, help="a from_pretrained directory (default: an untrained tiny one)")
    ap.add_argument("--raw", type=Path, help="raw corpus dir (default data/raw with --model)")
    ap.add_argument("--world", type=Path, help="world sets dir (default data/world with --model)")
    ap.add_argument("--mode", choices=tuple(MODE_SETS), default="vis_math")
    ap.add_argument("--prompts", type=int, default=16, help="prompts per step (P)")
    ap.add_argument("--group-size", type=int, default=8, help="completions per prompt (G)")
    ap.add_argument("--max-new-tokens", type=int, default=32)
    ap.add_argument("--steps", type=int, default=3, help="measured steps per side, after 1 warm-up step")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1 suits a busy 2-core box)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--attn", default="sdpa_gqa",
                    help="our side's attn_implementation (the tiny profile's train.attn_implementation); "
                         "TRL runs with its default, sdpa")
    ap.add_argument("--freeze-vision", action="store_true",
                    help="both sides freeze the vision tower and its mergers (the tiny profile's setting)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32",
                    help="both sides: bf16 is TRL's bf16=True (accelerate's CPU autocast) and our train.precision")
    ap.add_argument("--compile", action="store_true",
                    help="torch.compile on both sides: TRL's torch_compile, ours train.compile (lean side "
                         "only); the warm-up step absorbs the compiling")
    ap.add_argument("--out", type=Path, default=Path("bench/results/grpo_step.json"))
    args = ap.parse_args()
    if args.prompts < 1 or args.group_size < 2 or args.steps < 1 or args.max_new_tokens < 1:
        ap.error("need --prompts >= 1, --group-size >= 2, --steps >= 1 and --max-new-tokens >= 1")

    import torch
    import transformers
    import trl

    from capcurriculum.io import write_json
    from capcurriculum.models import load_model_and_processor
    from capcurriculum.sampling.rewards import RewardConfig
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.trl_config import TRL_GAPS

    torch.set_num_threads(args.threads)
    P, G, n_steps = args.prompts, args.group_size, WARMUP_STEPS + args.steps
    settings = GRPOSettings(group_size=G, max_response_length=args.max_new_tokens, rollout_batch_size=P,
                            update_batch_size=P, learning_rate=1e-4, kl_coef=0.01, temperature=1.0)
    reward_cfg = RewardConfig()
    result: dict = {"sides": {}}

    with tempfile.TemporaryDirectory(prefix="grpo_step_") as tmp:
        tmp = Path(tmp)
        t0 = time.perf_counter()
        if args.model is None:
            model_dir, raw, world = build_fixture(tmp / "fixture", n_steps * P)
        else:
            model_dir, raw, world = args.model, args.raw or Path("data/raw"), args.world or Path("data/world")
        items = load_prompts(raw, world, args.mode, n_steps * P)
        batches = [items[k * P:(k + 1) * P] for k in range(n_steps)]
        policy, processor = load_model_and_processor(model_dir)
        result["setup_s"] = time.perf_counter() - t0

        trainer = clock = gen_times = None
        try:
            trainer, clock, gen_times = build_trl_trainer(model_dir, settings, items, reward_cfg, tmp / "trl",
                                                          n_steps, args.seed, args.freeze_vision,
                                                          bf16=args.precision == "bf16", compile=args.compile)
            targs = trainer.args
            result["trl_config"] = {k: getattr(targs, k) for k in (
                "loss_type", "per_device_train_batch_size", "gradient_accumulation_steps",
                "steps_per_generation", "num_generations", "beta", "epsilon", "epsilon_high", "delta",
                "scale_rewards", "learning_rate", "max_completion_length", "gradient_checkpointing",
                "use_vllm", "shuffle_dataset", "max_steps")}
            result["trl_config"]["optim"] = getattr(targs.optim, "value", str(targs.optim))
        except Exception as e:  # noqa: BLE001 - reported in the table and the JSON; ours still runs
            result["sides"]["trl"] = {"error": error_text(e)}

        # Before any update, so our policy and TRL's copy hold the same weights.
        try:
            result["loss_agreement"] = loss_check(policy, processor, batches[0], settings, trainer, args.seed)
        except Exception as e:  # noqa: BLE001
            result["loss_agreement"] = {"error": error_text(e)}

        if trainer is not None:
            try:
                result["sides"]["trl"] = run_trl(trainer, clock, gen_times, P, G, args.threads)
            except Exception as e:  # noqa: BLE001
                result["sides"]["trl"] = {"error": error_text(e)}
            del trainer, clock, gen_times
            gc.collect()
        # ours twice, from the same start: completion tokens through transformers' forward, then through
        # models/lean.py (train.completion_forward: lean, the tiny profile's)
        vision_scale = 0.0 if args.freeze_vision else 1.0
        for name, lean in (("ours_transformers", False), ("ours", True)):
            try:
                model = load_model_and_processor(model_dir)[0] if not lean else policy
                result["sides"][name] = run_ours(model_dir, model, processor, settings, reward_cfg, batches,
                                                 args.threads, args.seed, args.attn, lean, vision_scale,
                                                 args.precision, args.compile)
            except Exception as e:  # noqa: BLE001
                result["sides"][name] = {"error": error_text(e)}

    trl_side, ours_side = result["sides"].get("trl", {}), result["sides"].get("ours", {})
    if "prompts_per_s" in trl_side and "prompts_per_s" in ours_side:
        result["ratio_ours_over_trl_prompts_per_s"] = ours_side["prompts_per_s"] / trl_side["prompts_per_s"]
    plain = result["sides"].get("ours_transformers", {})
    if "prompts_per_s" in plain and "prompts_per_s" in ours_side:
        result["ratio_lean_over_transformers_forward"] = ours_side["prompts_per_s"] / plain["prompts_per_s"]
    result.update({
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "model_dir": str(args.model) if args.model else "(untrained tiny model, built in a temp dir)",
        "settings": dataclasses.asdict(settings), "warmup_steps": WARMUP_STEPS,
        "ours_vision_lr_scale": vision_scale, "frozen_vision": args.freeze_vision,
        "trl_gaps": [gap.setting for gap in TRL_GAPS],
        "machine": {"processor": platform.processor() or platform.machine(), "cores": os.cpu_count(),
                    "torch": torch.__version__, "transformers": transformers.__version__,
                    "trl": trl.__version__},
    })
    print(f"\nGRPO step, {args.mode}: {P} prompts x {G} completions, {args.max_new_tokens} new tokens max, "
          f"{args.threads} thread(s), {args.precision}; vision {'frozen' if args.freeze_vision else 'trained'} "
          f"on both sides; medians of {args.steps} step(s) after {WARMUP_STEPS} warm-up\n")
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    write_json(args.out, result)  # through a temporary sibling, renamed into place
    print(f"\nwrote {args.out}")

    failed = {name: side["error"] for name, side in result["sides"].items() if "error" in side}
    if "error" in result.get("loss_agreement", {}):
        failed["loss_agreement"] = result["loss_agreement"]["error"]
    for name, err in failed.items():
        print(f"\n{name} failed:\n{err}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
