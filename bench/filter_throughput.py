"""Items/s of the differential filter's work (both paths of every candidate, one model), through
the `hf` and `vllm` backends side by side on the same tiny model and requests.

    python bench/filter_throughput.py --candidates 256 --max-new-tokens 16 [--model DIR]

Without --model it builds a tiny world and an untrained tiny Qwen3-VL in a temporary directory
(an untrained model rarely stops early, so every request generates max-new-tokens: a fixed load).
Engine start-up (vLLM loads in ~40-70 s on the CPU) is reported apart from generation.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def build_fixture(root: Path, candidates: int) -> tuple[Path, list[dict], dict[str, str], Path]:
    from capcurriculum.data.docci import load_docci
    from capcurriculum.io import read_jsonl
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

    scenes = max(1, candidates // 4 + 1)
    build_world(WorldConfig(seed=0, scenes={"pretrain": 0, "train": scenes, "test": 0},
                            text_math={"pretrain": 0, "train": 0, "test": 0},
                            vis_math={"pretrain": 0, "train": 0, "test": 0}, perception_per_scene=4),
                root / "raw", root / "world", progress=False)
    processor = build_processor(train_tokenizer(world_texts(root / "raw", root / "world"), vocab_size=640))
    save_pretrained_dir(build_tiny_model(tiny_config(processor.tokenizer), seed=0), processor, root / "model")
    examples = read_jsonl(root / "world/perception_train.jsonl")[:candidates]
    captions = {r.example_id: r.description for r in load_docci(root / "raw").records}
    return root / "model", examples, captions, root / "raw/images"


def run(backend_spec: dict, model: Path, requests, sampling) -> dict:
    from capcurriculum.generation import make_backend

    t0 = time.perf_counter()
    with make_backend(backend_spec, model) as backend:
        backend.generate(requests[:2], sampling)  # engine start-up and warm-up
        t1 = time.perf_counter()
        results = backend.generate(requests, sampling)
        t2 = time.perf_counter()
    tokens = sum(sum(r.n_tokens) for r in results if r.ok)
    return {"backend": backend_spec["backend"], "startup_s": t1 - t0, "generate_s": t2 - t1,
            "items_per_s": len(requests) / (t2 - t1), "tokens_per_s": tokens / (t2 - t1),
            "errors": sum(not r.ok for r in results), "texts": [r.text if r.ok else None for r in results]}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--candidates", type=int, default=256)
    ap.add_argument("--max-new-tokens", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="torch threads for hf (1 is fastest on a busy 2-core box)")
    ap.add_argument("--backends", nargs="+", default=["hf", "vllm"])
    ap.add_argument("--model", type=Path, help="a from_pretrained directory (default: build an untrained tiny one)")
    ap.add_argument("--out", type=Path, default=Path("bench/results/filter_throughput.json"))
    args = ap.parse_args()

    from capcurriculum.generation import SamplingConfig
    from capcurriculum.perception.filter import filter_requests

    with tempfile.TemporaryDirectory() as tmp:
        model, examples, captions, images = build_fixture(Path(tmp), args.candidates)
        model = args.model or model
        requests = filter_requests(examples, captions, images)
        sampling = SamplingConfig(max_new_tokens=args.max_new_tokens, temperature=0.0)
        specs = {"hf": {"backend": "hf", "batch_size": args.batch_size, "threads": args.threads, "progress": False},
                 "vllm": {"backend": "vllm", "dtype": "float32", "gpu_memory_utilization": 0.1, "max_model_len": 1024,
                          "engine_kwargs": {"kv_cache_memory_bytes": 256 * 2**20},
                          "enforce_eager": True, "limit_mm_per_prompt": {"image": 1, "video": 0}, "seed": 0,
                          "progress": False}}
        rows = [run(specs[name], model, requests, sampling) for name in args.backends]

    same = None
    if len(rows) == 2:
        a, b = rows[0]["texts"], rows[1]["texts"]
        same = sum(x == y for x, y in zip(a, b)) / len(a)
    print(f"\nfilter requests: {len(requests)} ({len(examples)} candidates x image and caption paths), "
          f"{args.max_new_tokens} new tokens max, greedy; {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} cores\n")
    print("| backend | start-up s | generate s | items/s | tokens/s | errors |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['backend']} | {r['startup_s']:.1f} | {r['generate_s']:.2f} | {r['items_per_s']:.1f} | "
              f"{r['tokens_per_s']:.0f} | {r['errors']} |")
    if same is not None:
        print(f"\nidentical greedy texts across backends: {same:.1%}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "identical_texts": same,
                                    "rows": [{k: v for k, v in r.items() if k != "texts"} for r in rows]}, indent=2))


if __name__ == "__main__":
    main()
