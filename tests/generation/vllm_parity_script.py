"""Run by tests/generation/test_vllm.py in a subprocess (vLLM spawns workers; it needs this guard).

    python tests/generation/vllm_parity_script.py MODEL_DIR OUT_JSON IMAGE [IMAGE ...] [--bench N]

Generates greedily with the vllm and the hf backend on the same requests and writes both results,
plus a few vLLM-only checks (seeded sampling, a request vLLM refuses), to OUT_JSON. With --bench N
it also times N image prompts x 16 new tokens on each backend (items/s).
"""

from __future__ import annotations

import argparse
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

VLLM_OPTIONS = {
    "backend": "vllm",
    "dtype": "float32",
    "gpu_memory_utilization": 0.1,
    # An explicit KV size: the automatic one (10% of memory minus the worker's RSS) goes negative
    # once the worker holds ~1 GiB, which it does on these machines.
    "engine_kwargs": {"kv_cache_memory_bytes": 256 * 2**20},
    "max_model_len": 512,
    "enforce_eager": True,
    "limit_mm_per_prompt": {"image": 1, "video": 0},
    "seed": 0,
    "progress": False,
}


def parity_requests(images):
    from capcurriculum.generation import Request

    return [
        Request.from_prompt("img0", "How many circles are in the picture?", image=images[0]),
        Request.from_prompt("txt0", "What is 3 + 4? Think first."),
        Request.from_prompt("img1", "Where is the square?", image=images[1 % len(images)]),
        Request(
            id="txt1",
            messages=[
                {"role": "system", "content": "Answer briefly."},
                {"role": "user", "content": "How many stars?"},
            ],
        ),
    ]


def dump(results):
    return [
        {
            "id": r.id,
            "texts": r.texts,
            "n_tokens": r.n_tokens,
            "finish_reasons": r.finish_reasons,
            "error": r.error,
        }
        for r in results
    ]


def bench(backend, images, n):
    from capcurriculum.generation import Request, SamplingConfig

    reqs = [
        Request.from_prompt(f"b{i}", f"Describe picture {i}.", image=images[i % len(images)])
        for i in range(n)
    ]
    t = time.perf_counter()
    out = backend.generate(reqs, SamplingConfig(max_new_tokens=16, temperature=0))
    dt = time.perf_counter() - t
    assert all(r.ok for r in out)
    return {
        "items": n,
        "seconds": round(dt, 3),
        "items_per_s": round(n / dt, 2),
        "new_tokens": sum(r.n_tokens[0] for r in out),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("model_dir")
    ap.add_argument("out_json")
    ap.add_argument("images", nargs="+")
    ap.add_argument("--bench", type=int, default=0)
    args = ap.parse_args()

    from capcurriculum.generation import Request, SamplingConfig, make_backend

    greedy = SamplingConfig(max_new_tokens=16, temperature=0)
    reqs = parity_requests(args.images)
    report: dict = {"timings": {}}

    t = time.perf_counter()
    with make_backend(
        {"backend": "hf", "batch_size": 8, "progress": False, "threads": 1}, args.model_dir
    ) as hf:
        report["hf"] = dump(hf.generate(reqs, greedy))
        if args.bench:
            hf.generate(reqs[:1], greedy)  # warm-up
            report["bench_hf"] = bench(hf, args.images, args.bench)
    report["timings"]["hf_total_s"] = round(time.perf_counter() - t, 1)

    t = time.perf_counter()
    backend = make_backend(VLLM_OPTIONS, args.model_dir)
    with backend:
        report["vllm"] = dump(backend.generate(reqs, greedy))
        report["timings"]["vllm_load_and_first_call_s"] = round(time.perf_counter() - t, 1)
        # a second call reuses the engine
        t2 = time.perf_counter()
        report["vllm_again"] = dump(backend.generate(list(reversed(reqs)), greedy))
        report["timings"]["vllm_second_call_s"] = round(time.perf_counter() - t2, 2)
        sampled = SamplingConfig(max_new_tokens=8, temperature=1.0, top_p=0.9, n=2, seed=11)
        report["sampled_a"] = dump(backend.generate(reqs[:2], sampled))
        report["sampled_b"] = dump(backend.generate(reqs[:2], sampled))
        # two images where limit_mm_per_prompt allows one: vLLM refuses it; the others must survive
        two = Request(
            id="two_images",
            messages=[
                {
                    "role": "user",
                    "content": [
                        {"type": "image", "image": args.images[0]},
                        {"type": "image", "image": args.images[1 % len(args.images)]},
                        {"type": "text", "text": "Compare."},
                    ],
                }
            ],
        )
        missing = Request.from_prompt(
            "missing", "Count.", image=os.path.join(os.path.dirname(args.out_json), "no_such.png")
        )
        report["with_failures"] = dump(backend.generate([reqs[0], two, missing, reqs[1]], greedy))
        if args.bench:
            report["bench_vllm"] = bench(backend, args.images, args.bench)
    with open(args.out_json, "w") as f:
        json.dump(report, f, indent=1)


if __name__ == "__main__":
    main()
