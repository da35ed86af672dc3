"""Evaluate any model on any benchmarks, inside the DAG (stages/evaluate.py) or outside it:

    python -m capcurriculum.evaluate --model data/models/train_3 --benchmarks tiny_vis_math,tiny_text_math \\
        --out eval/train_3
    python -m capcurriculum.evaluate --model Qwen/Qwen3-VL-8B-Instruct --benchmarks mathvista,pope \\
        --backend vllm --max-new-tokens 2048 --out eval/qwen3vl8b
    python -m capcurriculum.evaluate --model DIR --benchmarks mathvista --rows mathvista=testmini.jsonl --out X

Writes OUT/<benchmark>.jsonl (every item: response, extracted answer, correctness, token length),
OUT/summary.json (each benchmark's numbers, official sub-scores included) and OUT/metrics.json.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from capcurriculum.settings.choices import EVAL_PROTOCOLS
from capcurriculum.evaluation.evaluator import (
    TINY_BENCHMARKS,
    evaluate_benchmark,
    evaluate_tiny,
    write_results,
)
from capcurriculum.evaluation.vlmevalkit import protocol_record
from capcurriculum.settings.evaluation import EvaluationSettings

log = logging.getLogger(__name__)


def load_rows(name: str, rows_file: str | None):
    """A hub benchmark's rows: from a local file when given (JSON lines, Parquet), else from the hub."""
    import datasets

    from capcurriculum.evaluation.benchmarks import BENCHMARKS

    if rows_file:
        kind = "parquet" if str(rows_file).endswith(".parquet") else "json"
        return datasets.load_dataset(kind, data_files=str(rows_file), split="train")
    return datasets.load_dataset(**BENCHMARKS[name].load_kwargs())


def run_evaluation(model_ref: str | Path, benchmarks: Sequence[str], out_dir: str | Path, *,
                   settings: EvaluationSettings, raw_dir: str | Path = "data/raw",
                   world_dir: str | Path = "data/world", trained: bool = True) -> dict[str, Any]:
    """settings: the `evaluation` section, typed (its rows files included); `benchmarks` may be a subset."""
    from capcurriculum.evaluation.benchmarks import get_adapter

    tiny = [b for b in benchmarks if b in TINY_BENCHMARKS]
    hub = [b for b in benchmarks if b not in TINY_BENCHMARKS]
    for b in hub:
        get_adapter(b)  # unknown names fail before any model loads
    protocol, split, n = settings.protocol, settings.split_think, settings.n  # n None: the whole test split
    results: dict[str, tuple[list[dict], dict]] = {}
    judge = None
    if settings.judge_enabled:
        from capcurriculum.evaluation.judge import Judge

        judge = Judge.from_config(settings.judge)
    if tiny:
        from capcurriculum.models.loading import load_model_and_processor

        model, processor = load_model_and_processor(model_ref)
        results.update(evaluate_tiny(model, processor, raw_dir, world_dir, tiny, n=n,
                                     max_new_tokens=settings.max_new_tokens, batch_size=settings.batch_size,
                                     judge=judge))
    if hub:
        from capcurriculum.generation import make_backend
        from capcurriculum.prompts import REASONING_SUFFIX

        # The authors prompted trained models with the training format and base models plainly.
        suffix = REASONING_SUFFIX if trained and settings.prompt == "reasoning" else None
        with make_backend(dict(settings.backend), model_ref=str(model_ref)) as backend:
            for b in hub:
                rows = load_rows(b, (settings.rows or {}).get(b))
                if n is not None and n < len(rows):  # evaluation.n: the first n rows, as for the tiny benchmarks
                    rows = rows.select(range(n))
                results[b] = evaluate_benchmark(backend, get_adapter(b), rows, source=b, suffix=suffix,
                                                max_new_tokens=settings.max_new_tokens, judge=judge,
                                                protocol=protocol, split_think=split)
    if judge is not None:
        for _, summary in results.values():
            summary["judge"] = judge.stats
    details = protocol_record(protocol, split=split, judge=judge)
    return write_results(out_dir, {b: results[b] for b in benchmarks}, model=str(model_ref), protocol=protocol,
                         protocol_details=details)


def main(argv: Sequence[str] | None = None) -> int:
    from capcurriculum.runtime import setup_logging

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="a from_pretrained directory or a hub id")
    ap.add_argument("--benchmarks", required=True, help="comma-separated: tiny_* and/or hub benchmark names")
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--n", type=int, default=None, help="items per tiny benchmark (default: the whole test split)")
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--backend", default="hf", choices=("hf", "vllm", "openai"))
    ap.add_argument("--protocol", default="lenient", choices=EVAL_PROTOCOLS,
                    help="answer extraction and comparison rules, recorded with the results")
    ap.add_argument("--split-think", action="store_true",
                    help="vlmevalkit: read only what follows the last </think> (VLMEvalKit's SPLIT_THINK)")
    ap.add_argument("--base", action="store_true", help="a base model: hub benchmarks get the plain question")
    ap.add_argument("--rows", action="append", default=[], metavar="NAME=FILE",
                    help="read a hub benchmark's rows from a local JSON-lines/Parquet file")
    ap.add_argument("--raw", default="data/raw")
    ap.add_argument("--world", default="data/world")
    args = ap.parse_args(argv)
    setup_logging()
    rows_files = {}
    for spec in args.rows:
        name, sep, path = spec.partition("=")
        if not sep or not path:
            ap.error(f"--rows {spec!r}: expected NAME=FILE")
        rows_files[name] = path
    benchmarks = tuple(b.strip() for b in args.benchmarks.split(",") if b.strip())
    settings = EvaluationSettings(benchmarks=benchmarks, n=args.n, max_new_tokens=args.max_new_tokens,
                                  batch_size=args.batch_size, backend={"backend": args.backend}, prompt="reasoning",
                                  protocol=args.protocol, split_think=args.split_think, judge={"enabled": False},
                                  rows=rows_files or None)
    metrics = run_evaluation(args.model, benchmarks, args.out, settings=settings, raw_dir=args.raw,
                             world_dir=args.world, trained=not args.base)
    for k, v in metrics.items():
        print(f"{k}\t{v}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
