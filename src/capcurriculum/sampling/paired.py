"""Before/after comparisons on the same items: the paired difference and its standard error."""

from __future__ import annotations

import math
from collections.abc import Sequence


def paired_delta(before: Sequence[bool], after: Sequence[bool]) -> dict[str, float]:
    """Mean of after - before over the same items, with the paired standard error."""
    if len(before) != len(after) or not before:
        raise ValueError(f"paired comparison needs two equal, non-empty lists (got {len(before)} and {len(after)})")
    d = [float(a) - float(b) for a, b in zip(after, before)]
    n = len(d)
    mean = sum(d) / n
    var = sum((x - mean) ** 2 for x in d) / (n - 1) if n > 1 else 0.0
    return {"delta": mean, "se": math.sqrt(var / n), "n": n}


def mean_delta(deltas: Sequence[dict[str, float] | None]) -> dict[str, float] | None:
    """The change of an unweighted mean over capabilities or benchmarks: the mean of their paired deltas,
    their variances added (different items, possibly of different n). None if any is missing."""
    if not deltas or any(d is None for d in deltas):
        return None
    k = len(deltas)
    return {"delta": sum(d["delta"] for d in deltas) / k, "se": math.sqrt(sum(d["se"] ** 2 for d in deltas)) / k}
