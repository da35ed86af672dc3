"""GPU GRPO step: the project's loop beside TRL 1.16's `GRPOTrainer` on a Qwen3-VL-shaped model of realistic
size (random weights, built from config), bf16, G completions of a fixed length per prompt, one image each.

    python bench/grpo_gpu.py --size 2b --prompts 4 --group-size 5 --completion-len 256 --image-px 448
    python bench/grpo_gpu.py --size tiny --device cpu --prompts 2 --group-size 2 --completion-len 8 --steps 1  # plumbing

Sides (each: one warm-up step, then --steps measured; medians reported):
  ours         capcurriculum.training.grpo.GRPOTrainer, the lean engine (prefix-shared rollout and update)
  trl_engine   capcurriculum.training.trl_engine, the paper profile's engine: TRL's trainer with the paper's
               loss and advantages, gradient checkpointing on
  trl_default  TRL at its defaults for what the GRPO semantics leave free (gradient checkpointing on)
  trl_fast     TRL's fastest configuration that runs without vLLM on a VLM: no gradient checkpointing
               (its paged continuous-batching generation refuses multimodal models in TRL 1.16)
Per side: samples/s and tokens/s of the rollout and of the update apart, the update's MFU (model FLOPs
of the full prompt+completion sequences, 6 x parameters x tokens, plus attention, over the device's
bf16 dense peak), and peak device memory. Rewards are seeded random numbers: the step's cost does not
depend on them, and they keep the advantages non-zero.

Shapes (`--size`): the public Qwen3-VL-2B/4B/8B configs' text and vision dimensions (vocab 151,936);
`tiny` is the project's CPU model, for a plumbing check.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SIZES = {
    "tiny": dict(hidden_size=128, num_layers=2, num_heads=4, num_kv_heads=2, head_dim=32, intermediate_size=512,
                 vision_depth=2, vision_hidden=64, vision_heads=2, vision_intermediate=256,
                 deepstack_visual_indexes=(0,)),
    "2b": dict(hidden_size=2048, num_layers=28, num_heads=16, num_kv_heads=8, head_dim=128, intermediate_size=6144,
               tie_word_embeddings=True, vision_depth=24, vision_hidden=1024, vision_heads=16,
               vision_intermediate=4096, deepstack_visual_indexes=(5, 11, 17), vocab_size=151936),
    "4b": dict(hidden_size=2560, num_layers=36, num_heads=32, num_kv_heads=8, head_dim=128, intermediate_size=9728,
               tie_word_embeddings=True, vision_depth=24, vision_hidden=1024, vision_heads=16,
               vision_intermediate=4096, deepstack_visual_indexes=(5, 11, 17), vocab_size=151936),
    "8b": dict(hidden_size=4096, num_layers=36, num_heads=32, num_kv_heads=8, head_dim=128, intermediate_size=12288,
               vision_depth=27, vision_hidden=1152, vision_heads=16, vision_intermediate=4304,
               deepstack_visual_indexes=(8, 16, 24), vocab_size=151936),
}
PEAK_TFLOPS = {"H100": 989.0, "H200": 989.0, "A100": 312.0}  # bf16 dense
WARMUP = 1


def build(root: Path, size: str, image_px: int, n_prompts: int):
    """A small world (its visual-math prompts, one image each) and a random model of `size` saved under root."""
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

    cfg = WorldConfig(seed=0, scenes={"pretrain": 4, "train": 2, "test": 0},
                      text_math={"pretrain": 8, "train": 2, "test": 0},
                      vis_math={"pretrain": 8, "train": max(2, n_prompts), "test": 0}, perception_per_scene=2)
    build_world(cfg, root / "raw", root / "world", progress=False)
    processor = build_processor(train_tokenizer(world_texts(root / "raw", root / "world"), vocab_size=400),
                                image_size=image_px)
    config = tiny_config(processor.tokenizer, image_size=image_px, max_position_embeddings=8192, **SIZES[size])
    save_pretrained_dir(build_tiny_model(config, seed=0), processor, root / "model")
    return root / "model", root / "raw", root / "world"


def model_flops(config, tokens: int, seq_len: int) -> float:
    """Forward+backward FLOPs of the language model on `tokens` tokens: 6 N T plus causal attention."""
    t = config.text_config
    h, L, inter, kv = t.hidden_size, t.num_hidden_layers, t.intermediate_size, t.num_key_value_heads
    hd = getattr(t, "head_dim", h // t.num_attention_heads)
    per_layer = h * (t.num_attention_heads * hd) * 2 + h * (kv * hd) * 2 + 3 * h * inter
    n = L * per_layer + h * t.vocab_size
    attn = 2 * 2 * L * t.num_attention_heads * hd * seq_len / 2  # QK^T and AV, causal half, per token
    return 3 * (2 * n + attn) * tokens


def random_reward(seed: int):
    import random

    rng = random.Random(seed)

    def reward_fn(*_, **kw):
        n = len(kw.get("completion_ids") or kw.get("completions") or [])
        return [rng.random() for _ in range(n)]

    return reward_fn


def run_ours(model_dir, items, args, device, dtype) -> dict:

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.models.attention import attention_implementation
    from capcurriculum.sampling.rewards import RewardConfig
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.grpo import GRPOTrainer

    attn = attention_implementation(args.attn)
    policy, processor = load_model_and_processor(model_dir, dtype=dtype, device=device, attn_implementation=attn)
    ref, _ = load_model_and_processor(model_dir, dtype=dtype, device=device, attn_implementation=attn)
    s = GRPOSettings(group_size=args.group_size, max_response_length=args.completion_len,
                     rollout_batch_size=args.prompts, update_batch_size=args.prompts, learning_rate=1e-6,
                     kl_coef=0.01, temperature=1.0)
    rnd = random_reward(args.seed)
    trainer = GRPOTrainer(policy, processor, s, RewardConfig(), ref_model=ref, vision_lr_scale=1.0,
                          ignore_eos=True, reward_fn=lambda text, item: {
                              "reward": rnd(completion_ids=[0])[0], "accuracy": 0.0, "format": 0.0})
    steps = []
    for k in range(WARMUP + args.steps):
        _sync(device)
        row = trainer.step(items[:args.prompts])
        if k >= WARMUP:
            steps.append({"rollout_s": row["time/rollout_s"], "update_s": row["time/update_s"],
                          "completion_len": row["response_length"]})
    del trainer, policy, ref
    return {"steps": steps}


def run_trl(model_dir, items, args, device, dtype, fast: bool) -> dict:
    import torch
    from trl import GRPOTrainer as TRLTrainer

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.trl_config import to_trl_config
    from capcurriculum.training.trl_engine import trl_rows

    policy, processor = load_model_and_processor(model_dir, dtype=dtype, device=device)
    s = GRPOSettings(group_size=args.group_size, max_response_length=args.completion_len,
                     rollout_batch_size=args.prompts, update_batch_size=args.prompts, learning_rate=1e-6,
                     kl_coef=0.01, temperature=1.0)
    # use_transformers_paged (continuous batching) would be TRL's fastest generation, but TRL 1.16 refuses
    # it for multimodal models ("does not support multimodal models"): checked on the CPU.
    extra = {"gradient_checkpointing": False} if fast else {}
    targs = to_trl_config(s, tempfile.mkdtemp(), report_to="none", logging_steps=1, save_strategy="no",
                          bf16=dtype == "bfloat16", use_cpu=device == "cpu", max_steps=WARMUP + args.steps,
                          shuffle_dataset=False, disable_tqdm=True, seed=args.seed,
                          generation_kwargs={"min_new_tokens": args.completion_len}, **extra)

    trainer = TRLTrainer(model=policy, reward_funcs=random_reward(args.seed), args=targs,
                         train_dataset=trl_rows(items[:args.prompts] * (WARMUP + args.steps), processor),
                         processing_class=processor)
    out = _timed_steps(trainer, device)
    del trainer, policy
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def run_trl_engine(model_dir, items, args, device, dtype) -> dict:
    """The project's trl engine (train.engine: trl): TRL's trainer computing the paper's loss and advantages, with
    gradient checkpointing on as the paper profile runs it."""
    import random

    import torch

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.sampling.rewards import RewardConfig
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.switches import TrainSwitches
    from capcurriculum.training.trl_engine import TRLEngine

    policy, processor = load_model_and_processor(model_dir, dtype=dtype, device=device)
    s = GRPOSettings(group_size=args.group_size, max_response_length=args.completion_len,
                     rollout_batch_size=args.prompts, update_batch_size=args.prompts, learning_rate=1e-6,
                     kl_coef=0.01, temperature=1.0)
    rng = random.Random(args.seed)
    engine = TRLEngine(policy, processor, s, RewardConfig(), output_dir=tempfile.mkdtemp(), seed=args.seed,
                       vision_lr_scale=1.0, switches=TrainSwitches(
                           precision="bf16" if dtype == "bfloat16" else "fp32", gradient_checkpointing=True),
                       reward_fn=lambda text, item: {"accuracy": rng.random(), "format": rng.random()})
    steps = WARMUP + args.steps
    trainer = engine.build(items[:args.prompts] * steps, 0, steps)
    trainer.generation_config.min_new_tokens = args.completion_len  # fixed-length completions, as the other sides
    out = _timed_steps(trainer, device)
    del trainer, engine, policy
    if device == "cuda":
        torch.cuda.empty_cache()
    return out


def _timed_steps(trainer, device: str) -> dict:
    """Train a TRL trainer, timing each step's generation (rollout) apart from the rest (update)."""
    from transformers import TrainerCallback

    class Clock(TrainerCallback):
        def __init__(self):
            self.ends: list[float] = []

        def on_step_end(self, *a, **k):
            _sync(device)
            self.ends.append(time.perf_counter())

    clock = Clock()
    trainer.add_callback(clock)
    gen = trainer._generate_and_score_completions
    gen_times: list[float] = []

    def timed(inputs):
        _sync(device)
        t0 = time.perf_counter()
        out = gen(inputs)
        _sync(device)
        gen_times.append(time.perf_counter() - t0)
        return out

    trainer._generate_and_score_completions = timed  # _prepare_inputs calls it through self
    clock.ends.append(time.perf_counter())
    trainer.train()
    ends = clock.ends
    lens = [h["completions/mean_length"] for h in trainer.state.log_history if "completions/mean_length" in h]
    return {"steps": [{"rollout_s": gen_times[k], "update_s": ends[k + 1] - ends[k] - gen_times[k],
                       "completion_len": lens[k]} for k in range(WARMUP, len(ends) - 1)]}


def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def summarise(side: dict, args, config, prompt_len: int, peak: float) -> dict:
    N = args.prompts * args.group_size
    med = {k: statistics.median(s[k] for s in side["steps"]) for k in ("rollout_s", "update_s", "completion_len")}
    seq = prompt_len + args.completion_len
    flops = model_flops(config, N * seq, seq)
    return {**side, **med, "step_s": med["rollout_s"] + med["update_s"],
            "rollout_samples_per_s": N / med["rollout_s"], "rollout_tokens_per_s": N * args.completion_len / med["rollout_s"],
            "update_samples_per_s": N / med["update_s"], "update_tokens_per_s": N * seq / med["update_s"],
            "update_mfu": flops / med["update_s"] / (peak * 1e12) if peak else None}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=tuple(SIZES), default="2b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--group-size", type=int, default=5)
    ap.add_argument("--completion-len", type=int, default=256)
    ap.add_argument("--image-px", type=int, default=448)
    ap.add_argument("--steps", type=int, default=3)
    ap.add_argument("--sides", default="ours,trl_engine,trl_default,trl_fast")
    ap.add_argument("--attn", default="sdpa", help="ours: sdpa | sdpa_gqa | flash_attention_2")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/grpo_gpu.json"))
    args = ap.parse_args()

    import torch
    from grpo_step import load_prompts

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.sampling.batching import encode_prompts

    torch.manual_seed(args.seed)
    device_name = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    peak = next((v for k, v in PEAK_TFLOPS.items() if k in device_name), None)
    result: dict = {"args": vars(args) | {"out": str(args.out)}, "device": device_name, "sides": {}}
    with tempfile.TemporaryDirectory() as tmp:
        model_dir, raw, world = build(Path(tmp), args.size, args.image_px, args.prompts)
        items = load_prompts(raw, world, "vis_math", args.prompts)
        model, processor = load_model_and_processor(model_dir)
        config, prompt_len = model.config, int(encode_prompts(processor, items)["input_ids"].shape[1])
        result.update(params=sum(p.numel() for p in model.parameters()), prompt_len=prompt_len)
        del model
        for side in [s.strip() for s in args.sides.split(",") if s.strip()]:
            if args.device == "cuda":
                torch.cuda.reset_peak_memory_stats()
            try:
                if side == "ours":
                    raw_side = run_ours(model_dir, items, args, args.device, args.dtype)
                elif side == "trl_engine":
                    raw_side = run_trl_engine(model_dir, items, args, args.device, args.dtype)
                else:
                    raw_side = run_trl(model_dir, items, args, args.device, args.dtype, fast=side == "trl_fast")
                out = summarise(raw_side, args, config, prompt_len, peak)
                out["peak_mem_gib"] = torch.cuda.max_memory_allocated() / 2**30 if args.device == "cuda" else None
            except Exception as e:  # noqa: BLE001 - reported; the other sides still run
                out = {"error": "".join(traceback.format_exception(e))[-3000:]}
            result["sides"][side] = out
            gc.collect()
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    return 0


def fmt(x, spec: str) -> str:
    return "–" if x is None else format(x, spec)


def report(r: dict) -> str:
    a = r["args"]
    title = (f"GRPO step on {r['device']}: Qwen3-VL-{a['size']} shape ({r['params'] / 1e9:.2f} B params), "
             f"{a['dtype']}, {a['prompts']} prompts x G={a['group_size']}, {a['completion_len']} tokens each, "
             f"prompt {r['prompt_len']} tokens ({a['image_px']} px image); medians of {a['steps']} steps")
    lines = [title, "",
             "| side | step s | rollout s | rollout samples/s | rollout tok/s | update s | update tok/s | update MFU | peak GiB |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, s in r["sides"].items():
        if "error" in s:
            lines.append(f"| {name} | failed: {s['error'].strip().splitlines()[-1][:80]} |||||||| ")
            continue
        lines.append(f"| {name} | {fmt(s['step_s'], '.2f')} | {fmt(s['rollout_s'], '.2f')} | "
                     f"{fmt(s['rollout_samples_per_s'], '.1f')} | {fmt(s['rollout_tokens_per_s'], '.0f')} | "
                     f"{fmt(s['update_s'], '.2f')} | {fmt(s['update_tokens_per_s'], '.0f')} | "
                     f"{fmt(s['update_mfu'], '.1%')} | {fmt(s['peak_mem_gib'], '.1f')} |")
    ours = r["sides"].get("ours", {})
    for name in ("trl_engine", "trl_default", "trl_fast"):
        other = r["sides"].get(name, {})
        if "step_s" in ours and "step_s" in other:
            lines.append(f"ours vs {name}: {other['step_s'] / ours['step_s']:.2f}x faster per step")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
