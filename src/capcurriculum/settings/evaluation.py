"""The `evaluation` section: what the evaluate@* nodes and `python -m capcurriculum.evaluate` run, read once and
checked before any model loads (config.validate builds it, so check_params fails on a bad value naming its key).

    settings = EvaluationSettings.from_config(cfg)   # every key required; the profiles say each one
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from capcurriculum.settings.choices import (
    EVAL_PROMPTS, EVAL_PROTOCOLS, HUB_BENCHMARK_NAMES, TINY_BENCHMARK_NAMES, ConfigError, benchmark_key)
from capcurriculum.settings import read


@dataclass(frozen=True)
class EvaluationSettings:
    # The benchmarks to score: tiny_* (the world's held-out test split) and hub names (evaluation/benchmarks).
    benchmarks: tuple[str, ...]
    # Items per benchmark, the first n, so a smoke run is seconds; None: the whole test split, as the paper scored.
    n: int | None
    # Longest response, in tokens: long enough for the model's reasoning, bounded so a run cannot stall.
    max_new_tokens: int
    # Prompts per generate call of the tiny benchmarks (in-process); memory only, the answers are the same.
    batch_size: int
    # The hub benchmarks' generation backend's keyword arguments (generation.make_backend: hf, vllm, openai).
    backend: dict[str, Any]
    # 'reasoning': trained models get the training prompt (their answer format); 'plain': the bare question.
    # Base models always get the plain one, as the authors prompted them.
    prompt: str
    # Answer extraction and comparison rules (config.EVAL_PROTOCOLS), recorded with every result so numbers
    # read under different rules are never set side by side unmarked.
    protocol: str
    # VLMEvalKit's SPLIT_THINK: read only what follows the last </think> (the vlmevalkit protocol's).
    split_think: bool
    # The LLM judge's mapping, parsed by evaluation/judge.py's JudgeConfig (its own keys, its own checks).
    judge: dict[str, Any]
    # {benchmark: local JSON-lines/Parquet file in its hub layout}, for machines without the hub; None: the hub.
    rows: dict[str, str] | None

    @property
    def judge_enabled(self) -> bool:
        """Whether a judge is asked (evaluation.judge.enabled, required and a bool by from_config)."""
        return self.judge["enabled"]

    @classmethod
    def from_config(cls, cfg: DictConfig) -> EvaluationSettings:
        """Every key of `evaluation` read and checked; a missing one or a wrong type is a ConfigError naming it."""
        benchmarks = read.present(cfg, "evaluation.benchmarks")
        if not isinstance(benchmarks, list) or not benchmarks or not all(isinstance(b, str) for b in benchmarks):
            raise ConfigError("evaluation.benchmarks", f"expected a non-empty list of benchmark names, got {benchmarks!r}")
        for i, name in enumerate(benchmarks):  # a misspelt name fails here, not after a model has been loaded
            _check_benchmark(f"evaluation.benchmarks[{i}]", name)
        judge = read.mapping(cfg, "evaluation.judge")
        enabled = judge["enabled"] if "enabled" in judge else "missing"
        if not isinstance(enabled, bool):
            raise ConfigError("evaluation.judge.enabled", f"expected true or false, got {enabled!r}")
        rows = read.mapping(cfg, "evaluation.rows", nullable=True)
        for name, path in (rows or {}).items():  # each a benchmark that is evaluated, each file there
            if name not in benchmarks:
                raise ConfigError(f"evaluation.rows.{name}", "is not one of evaluation.benchmarks")
            if not Path(str(path)).is_file():
                raise ConfigError(f"evaluation.rows.{name}", f"{path!r} is not a file")
        return cls(benchmarks=tuple(benchmarks),
                   n=read.integer(cfg, "evaluation.n", minimum=1, nullable=True, null_means="the whole test split"),
                   max_new_tokens=read.integer(cfg, "evaluation.max_new_tokens", minimum=1),
                   batch_size=read.integer(cfg, "evaluation.batch_size", minimum=1),
                   backend=read.mapping(cfg, "evaluation.backend"),
                   prompt=read.choice(cfg, "evaluation.prompt", EVAL_PROMPTS),
                   protocol=read.choice(cfg, "evaluation.protocol", EVAL_PROTOCOLS),
                   split_think=read.boolean(cfg, "evaluation.split_think"),
                   judge=judge, rows=rows)


def _check_benchmark(key: str, name: str) -> None:
    if name in TINY_BENCHMARK_NAMES or benchmark_key(name) in {benchmark_key(h) for h in HUB_BENCHMARK_NAMES}:
        return
    known = TINY_BENCHMARK_NAMES + HUB_BENCHMARK_NAMES
    close = difflib.get_close_matches(name, known, n=1)
    hint = f" (did you mean {close[0]!r}?)" if close else ""
    raise ConfigError(key, f"unknown benchmark {name!r}{hint}; known: {', '.join(known)}")
