"""The prepared GPU check (issue 41): one command, a PASS/FAIL table, a few minutes on one H100.

    python bench/gpu_check.py                                                   # the GPU: Qwen3-VL-2B shape, bf16
    python bench/gpu_check.py --size tiny --device cpu --dtype float32 --lengths 16,32 --micro-batch 2   # plumbing

On a random-weight Qwen3-VL model of the given shape (bench/grpo_gpu.py builds it; no download):
  logprob_parity    the update path's per-token log-probs (`completion_logprobs`: the prompt once, its cache shared
                    by the completions, the LM head in row chunks) against one plain forward's log-softmax over the
                    whole sequences, on the same sampled rollout: the largest |difference| on completion tokens
  micro_batch_<L>   the paper's per-GPU micro-batch (train.trl.per_device_train_batch_size: 16 completions, one
                    image each) at L completion tokens through the trl engine's loss, forward and backward with
                    gradient checkpointing: seconds and peak GiB, or the phase that ran out of memory
  deepspeed_step    one GRPO step of the trl engine in one process under `accelerate launch` with the repository's
                    conf/accelerate/zero2.yaml (DeepSpeed ZeRO-2, as the paper profile launches), KL on: seconds, peak
                    GiB, and the KL reference's device and dtype (PASS: on the accelerator, in the policy's dtype)
  engines           bench/grpo_gpu.py's sides (lean, trl engine, TRL at its defaults): run it beside this one
                    (`python bench/grpo_gpu.py --size 2b`), it prints its own table
Results go to --out as JSON; the table says PASS / FAIL / OOM per check.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
REPO = Path(__file__).resolve().parents[1]

TOL = {"bfloat16": 0.1, "float32": 1e-3}  # |log-prob| differences from two summation orders of the same model


def logprob_parity(model, processor, items, args) -> dict:
    import torch

    from capcurriculum.sampling.rollout import completion_logprobs, rollout

    torch.manual_seed(args.seed)
    with torch.no_grad():
        ro = rollout(model, processor, items, group_size=2, max_new_tokens=args.parity_tokens, temperature=1.0)
        ours = completion_logprobs(model, ro, 1.0).float()
        full = ro.full_inputs()
        logits = model(**{k: v.to(model.device) for k, v in full.items()}).logits.float()
        C = ro.completion_ids.shape[1]
        plain = torch.log_softmax(logits[:, -C - 1:-1], -1).gather(-1, ro.completion_ids.to(model.device)[..., None])
        mask = ro.completion_mask.to(model.device).bool()
        diff = float(((plain.squeeze(-1) - ours).abs() * mask).max())
    tol = TOL.get(args.dtype, 0.1)
    return {"status": "PASS" if diff <= tol else "FAIL", "max_abs_diff": diff, "tolerance": tol,
            "tokens": int(mask.sum())}


def micro_batch(model_dir: Path, items, args, length: int) -> dict:
    """One forward+backward of the trl engine's update on `args.micro_batch` completions of `length` tokens."""
    import torch

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.sampling.batching import encode_prompts
    from capcurriculum.sampling.rewards import RewardConfig
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.switches import TrainSwitches
    from capcurriculum.training.trl_engine import TRLEngine

    cuda = args.device == "cuda"
    model, processor = load_model_and_processor(model_dir, dtype=args.dtype, device=args.device)
    n = args.micro_batch
    s = GRPOSettings(group_size=n, max_response_length=length, rollout_batch_size=1, update_batch_size=1,
                     kl_coef=0.0)
    engine = TRLEngine(model, processor, s, RewardConfig(), output_dir=tempfile.mkdtemp(), seed=args.seed,
                       vision_lr_scale=1.0, switches=TrainSwitches(
                           gradient_checkpointing=True, precision="bf16" if args.dtype == "bfloat16" else "fp32"))
    trainer = engine.build(items[:1], 0, 1)
    enc = encode_prompts(processor, items[:1])
    g = torch.Generator().manual_seed(args.seed)
    completion = torch.randint(10, len(processor.tokenizer) - 10, (n, length), generator=g)
    batch = {"prompt_ids": enc["input_ids"].repeat(n, 1), "prompt_mask": enc["attention_mask"].repeat(n, 1),
             "completion_ids": completion, "completion_mask": torch.ones(n, length, dtype=torch.long),
             "advantages": torch.randn(n, generator=g), "pixel_values": enc["pixel_values"].repeat(n, 1),
             "image_grid_thw": enc["image_grid_thw"].repeat(n, 1), "num_images": [1] * n}
    if "mm_token_type_ids" in enc:
        batch["mm_token_type_ids"] = torch.cat([enc["mm_token_type_ids"].repeat(n, 1),
                                                torch.zeros(n, length, dtype=torch.long)], 1)
    batch = {k: v.to(args.device) if torch.is_tensor(v) else v for k, v in batch.items()}
    model.train()
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    phase, t0 = "forward", time.perf_counter()
    try:
        loss = trainer.compute_loss(model, batch)
        phase = "backward"
        loss.backward()
    except torch.OutOfMemoryError:
        return {"status": "OOM", "phase": phase, "tokens": n * (batch["prompt_ids"].shape[1] + length)}
    finally:
        if cuda:
            torch.cuda.synchronize()
    out = {"status": "PASS", "seconds": time.perf_counter() - t0,
           "tokens": n * (batch["prompt_ids"].shape[1] + length),
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}
    del trainer, engine, model
    if cuda:
        torch.cuda.empty_cache()
    return out


def deepspeed_step(model_dir: Path, raw: Path, world: Path, args) -> dict:
    """This script again, under `accelerate launch --config_file conf/accelerate/zero2.yaml --num_processes 1`."""
    import os
    import socket
    import subprocess

    with socket.socket() as sock:  # a free port for the launcher's rendezvous
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    out = Path(tempfile.mkdtemp()) / "deepspeed_step.json"
    cmd = [sys.executable, "-m", "accelerate.commands.launch", "--config_file", str(REPO / "conf/accelerate/zero2.yaml"),
           "--num_processes", "1", "--main_process_port", str(port), str(Path(__file__).resolve()),
           "--deepspeed-step", str(model_dir), str(raw), str(world), "--out", str(out), "--device", args.device,
           "--dtype", args.dtype, "--parity-tokens", str(args.parity_tokens), "--seed", str(args.seed)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900, env=dict(os.environ))
    if proc.returncode != 0 or not out.exists():
        return {"status": "FAIL", "error": (proc.stdout + proc.stderr)[-2000:]}
    return json.loads(out.read_text())


def _deepspeed_step_child(model_dir: Path, raw: Path, world: Path, args) -> None:
    """One GRPO step (2 prompts x 2 completions) of the trl engine under the launcher that started this process."""
    import torch
    from grpo_step import load_prompts

    from capcurriculum.models import load_model_and_processor
    from capcurriculum.runtime import launched_accelerator
    from capcurriculum.sampling.rewards import RewardConfig
    from capcurriculum.settings.grpo import GRPOSettings
    from capcurriculum.training.grpo import PromptStream
    from capcurriculum.training.switches import TrainSwitches
    from capcurriculum.training.trl_engine import TRLEngine

    acc = launched_accelerator()
    if acc is None or acc.state.deepspeed_plugin is None:
        raise SystemExit("--deepspeed-step runs under `accelerate launch` with a DeepSpeed config")
    cuda = acc.device.type == "cuda"
    model, processor = load_model_and_processor(model_dir, dtype=args.dtype, device=str(acc.device))
    settings = GRPOSettings(group_size=2, max_response_length=args.parity_tokens, rollout_batch_size=2,
                            update_batch_size=2, kl_coef=0.01)
    engine = TRLEngine(model, processor, settings, RewardConfig(), output_dir=tempfile.mkdtemp(), seed=args.seed,
                       vision_lr_scale=1.0, accelerator=acc, switches=TrainSwitches(
                           gradient_checkpointing=True, precision="bf16" if args.dtype == "bfloat16" else "fp32"))
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    t0 = time.perf_counter()
    history = engine.train(PromptStream(load_prompts(raw, world, "vis_math", 2), seed=args.seed), 1, progress=False)
    seconds = time.perf_counter() - t0
    ref = engine.trainer.ref_model
    p = next(ref.parameters())
    expected = torch.bfloat16 if args.dtype == "bfloat16" else torch.float32
    ok = (p.device.type == acc.device.type and p.dtype == expected and len(history) == 1
          and all(v == v for v in history[0].values()))  # no NaN in the step's figures
    ds = acc.state.deepspeed_plugin.deepspeed_config
    out = {"status": "PASS" if ok else "FAIL", "seconds": seconds, "zero_stage": ds["zero_optimization"]["stage"],
           "ref_device": str(p.device), "ref_dtype": str(p.dtype).removeprefix("torch."),
           "loss": history[0].get("loss") if history else None,
           "peak_gib": torch.cuda.max_memory_allocated() / 2**30 if cuda else None}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", default="2b")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--image-px", type=int, default=448)
    ap.add_argument("--parity-tokens", type=int, default=64)
    ap.add_argument("--micro-batch", type=int, default=16, help="completions a GPU scores at once (paper: 16)")
    ap.add_argument("--lengths", default="1024,2048", help="completion lengths of the micro-batch check")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("bench/results/gpu_check.json"))
    ap.add_argument("--deepspeed-step", nargs=3, type=Path, metavar=("MODEL_DIR", "RAW", "WORLD"),
                    help=argparse.SUPPRESS)  # the deepspeed_step check's own process
    args = ap.parse_args()
    if args.deepspeed_step:
        _deepspeed_step_child(*args.deepspeed_step, args)
        return 0

    import torch
    from grpo_gpu import build
    from grpo_step import load_prompts

    from capcurriculum.models import load_model_and_processor

    device = torch.cuda.get_device_name() if args.device == "cuda" else "cpu"
    result: dict = {"args": {k: str(v) for k, v in vars(args).items()}, "device": device, "checks": {}}

    def run(name, fn, *a):
        try:
            result["checks"][name] = fn(*a)
        except Exception as e:  # noqa: BLE001 - reported as FAIL; the other checks still run
            result["checks"][name] = {"status": "FAIL", "error": "".join(traceback.format_exception(e))[-2000:]}

    with tempfile.TemporaryDirectory() as tmp:
        model_dir, raw, world = build(Path(tmp), args.size, args.image_px, 2)
        items = load_prompts(raw, world, "vis_math", 2)
        model, processor = load_model_and_processor(model_dir, dtype=args.dtype, device=args.device)
        result["params"] = sum(p.numel() for p in model.parameters())
        run("logprob_parity", logprob_parity, model, processor, items, args)
        del model
        for length in (int(x) for x in args.lengths.split(",")):
            run(f"micro_batch_{length}", micro_batch, model_dir, items, args, length)
        run("deepspeed_step", deepspeed_step, model_dir, raw, world, args)
    print(report(result))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1, default=str))
    return 0 if all(c["status"] == "PASS" for c in result["checks"].values()) else 1


def report(r: dict) -> str:
    lines = [f"GPU check on {r['device']}: Qwen3-VL-{r['args']['size']} shape ({r['params'] / 1e9:.2f} B params), "
             f"{r['args']['dtype']}", "", "| check | result | figures |", "|---|---|---|"]
    for name, c in r["checks"].items():
        figures = "; ".join(f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in c.items()
                            if k not in ("status", "error") and v is not None)
        if "error" in c:
            figures = c["error"].strip().splitlines()[-1][:100]
        lines.append(f"| {name} | {c['status']} | {figures} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
