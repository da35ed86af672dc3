"""How long each DVC node took: a table from the nodes' run records (data/runs/<node>.json).

Every node's record holds the wall time of its body (`seconds`, written by tracking.node_run). A node DVC
restored from its run-cache did not run in this experiment: its record is an earlier run's, so it is listed
apart and left out of this experiment's total. A record written before the time was kept takes its MLflow
run's duration when the store still holds it (`durations`: tracking.run_durations), else shows no time.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from capcurriculum.io import read_json


def node_times(run_files: Sequence[str | Path], parent_run_id: str,
               durations: Callable[[list[str]], Mapping[str, float | None]] | None = None) -> list[dict[str, Any]]:
    """One row a node, in the order given: its seconds (the record's, else what `durations` says of its run
    id, asked once for every untimed record, else None), whether it ran under `parent_run_id` (this experiment)
    or was restored, and the machine it ran on."""
    records = []
    for path in run_files:
        info = read_json(path)
        for key in ("node", "parent_run_id"):
            if key not in info:
                raise ValueError(f"{path}: run record has no {key!r}")
        records.append((path, info))
    untimed = [info["run_id"] for _, info in records if info.get("seconds") is None and "run_id" in info]
    found = durations(untimed) if durations and untimed else {}
    rows = []
    for path, info in records:
        seconds = info.get("seconds")
        if seconds is None:
            seconds = found.get(info.get("run_id"))
        if seconds is not None and (isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or seconds < 0):
            raise ValueError(f"{path}: 'seconds' must be a number >= 0, got {seconds!r}")
        machine = info.get("machine") or {}
        rows.append({"node": info["node"], "seconds": seconds, "started_at": info.get("started_at"),
                     "ran": info["parent_run_id"] == parent_run_id, "threads": machine.get("torch_threads"),
                     "cpu": machine.get("cpu")})
    return rows


def totals(rows: Sequence[dict[str, Any]]) -> dict[str, float | int]:
    """Minutes of the nodes that ran in this experiment (DVC runs them one after another), and counts."""
    ran = [r for r in rows if r["ran"]]
    return {"minutes": sum(r["seconds"] or 0.0 for r in ran) / 60, "ran": len(ran),
            "restored": len(rows) - len(ran), "untimed": sum(r["seconds"] is None for r in ran)}


def _clock(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    m, s = divmod(round(seconds), 60)
    return f"{m}:{s:02d}"


def markdown(rows: Sequence[dict[str, Any]]) -> str:
    t = totals(rows)
    lines = ["## Node times", "",
             f"{t['ran']} nodes ran in this experiment, **{t['minutes']:.1f} min** one after another (their bodies: "
             "Python's start-up and DVC's hashing are outside)"
             + (f" ({t['untimed']} without a recorded time)" if t["untimed"] else "")
             + (f"; {t['restored']} restored from DVC's run-cache (their times are an earlier run's)"
                if t["restored"] else "") + ".", "",
             "| node | time (m:ss) | ran | threads | CPU |", "|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['node']} | {_clock(r['seconds'])} | {'here' if r['ran'] else 'restored'} | "
                     f"{r['threads'] if r['threads'] is not None else '–'} | {r['cpu'] or '–'} |")
    return "\n".join(lines) + "\n"
