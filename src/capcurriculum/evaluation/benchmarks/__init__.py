"""Benchmark adapters for the paper profile: raw hub rows in, official-style scores out.

    adapter = get_adapter("mathvista")
    converted = adapter.rows_to_items(load_dataset(**BENCHMARKS["mathvista"].load_kwargs()), source=...)
    records = [adapter.grade(item, response) for item, response in zip(converted.items, responses)]
    summary = adapter.aggregate(records, skipped=converted.skipped)
"""

from __future__ import annotations

from typing import Any

from capcurriculum.settings.choices import benchmark_key

from .aokvqa import AOKVQA
from .base import Adapter, BenchItem, BenchmarkSpec, Converted, Judge, Skipped
from .hallusionbench import HallusionBench
from .logicvista import LogicVista
from .mathverse import MathVerse
from .mathvision import MathVision
from .mathvista import MathVista
from .mmstar import MMStar
from .pope import POPE
from .realworldqa import RealWorldQA
from .wemath import WeMath

# The paper's eight (visual math, then perception), then the extended ones.
ADAPTERS: dict[str, type[Adapter]] = {cls.spec.name: cls for cls in (
    MathVista, MathVision, MathVerse, WeMath, AOKVQA, RealWorldQA, MMStar, POPE, HallusionBench, LogicVista)}
BENCHMARKS: dict[str, BenchmarkSpec] = {name: cls.spec for name, cls in ADAPTERS.items()}
PAPER_BENCHMARKS: tuple[str, ...] = (
    "mathvista", "mathvision", "mathverse", "wemath", "aokvqa", "realworldqa", "mmstar", "pope")


class UnknownBenchmarkError(LookupError):
    pass


def get_adapter(name: str, **options: Any) -> Adapter:
    """The adapter for `name` (registry key or printed title, any case, "-"/"_" ignored).

    `options` go to the adapter (e.g. MathVerse's `versions=("Vision Only",)`).
    """
    wanted = benchmark_key(name)
    for key, cls in ADAPTERS.items():
        if wanted in (benchmark_key(key), benchmark_key(cls.spec.title)):
            return cls(**options)
    raise UnknownBenchmarkError(f"unknown benchmark {name!r}; known: {', '.join(ADAPTERS)}")


__all__ = ["ADAPTERS", "BENCHMARKS", "PAPER_BENCHMARKS", "Adapter", "BenchItem", "BenchmarkSpec", "Converted",
           "Judge", "Skipped", "UnknownBenchmarkError", "get_adapter"]
