"""perc_filter's work with and without what the `hf` backend's lean greedy path reuses within a call, on
the same candidates and filter models, alternating in one run: seconds per model and path, and whether every
verdict record (responses included) is equal.

- `vision_cache` (generation/vision_cache.py): each distinct image through the processor and the tower once;
- `shared_prefix` (generation/shared_prefix.py): a caption's questions prefill the caption once.

    python bench/filter_reuse.py --workspace . --n 12000 --repeats 2

`--workspace` is a DAG workspace after `perc_filter` has its inputs (data/raw, data/perception/qa,
data/models/base/<filter models>); backend, sampling and cascade come from its params.yaml. The first N
candidates are whole scenes (qa_generate writes a scene's questions together), so each image recurs as
often as in the node.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Timed:
    """A backend wrapper that times each `generate` call: (role, path, requests, seconds)."""

    def __init__(self, backend, role: str, log: list):
        self.backend, self.role, self.log = backend, role, log

    def generate(self, requests, sampling=None):
        t0 = time.perf_counter()
        out = self.backend.generate(requests, sampling)
        path = requests[0].id.rsplit("|", 1)[-1] if requests else "-"
        self.log.append((self.role, path, len(requests), time.perf_counter() - t0))
        return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("."))
    ap.add_argument("--n", type=int, default=12000, help="the first N candidates")
    ap.add_argument("--repeats", type=int, default=2, help="runs of each setting, alternating")
    ap.add_argument("--out", type=Path, default=Path("bench/results/filter_reuse.json"))
    args = ap.parse_args()

    from filter_inputs import load

    from capcurriculum.generation import make_backend
    from capcurriculum.perception.filter import ask_filter_models

    ws = args.workspace
    inputs = load(ws, args.n)
    fcfg, examples, captions, sampling, base = (inputs.fcfg, inputs.examples, inputs.captions, inputs.sampling,
                                                inputs.backend)
    if not base.get("lean"):
        raise SystemExit("both reuses are part of the lean greedy path: set perception.filter.backend.lean")
    settings = {False: {"vision_cache": False, "shared_prefix": None},
                True: {"vision_cache": True, "shared_prefix": base.get("shared_prefix") or 16}}
    runs, records = [], {}
    for rep in range(args.repeats):
        for cached in (False, True):
            log: list = []

            @contextlib.contextmanager
            def open_model(role, log=log, cached=cached):
                with make_backend(base | settings[cached], ws / "data/models/base" / role) as backend:
                    yield Timed(backend, role, log)

            t0 = time.perf_counter()
            recs, keep = ask_filter_models(examples, captions, ws / "data/raw/images", list(fcfg.models),
                                           open_model, sampling, cascade=bool(fcfg.cascade))
            runs.append({"reuse": cached, "repeat": rep, "seconds": time.perf_counter() - t0,
                         "kept": sum(keep.values()), "calls": log})
            records.setdefault(cached, recs)
    same = records[False] == records[True]
    print(f"\n{len(examples)} candidates, filter models {list(fcfg.models)}, {os.cpu_count()} cores, "
          f"{platform.processor() or platform.machine()}\n")
    print("| reuse | repeat | " + " | ".join(f"{r} {p} ({n})" for r, p, n, _ in runs[0]["calls"])
          + " | total s | kept |")
    print("|---" * (4 + len(runs[0]["calls"])) + "|")
    for r in runs:
        print(f"| {r['reuse']} | {r['repeat']} | " + " | ".join(f"{s:.1f}" for *_, s in r["calls"])
              + f" | {r['seconds']:.1f} | {r['kept']} |")
    path = {(c, p): min(sum(s for _, q, _, s in r["calls"] if q == p) for r in runs if r["reuse"] == c)
            for c in (False, True) for p in ("image", "caption")}
    total = {c: min(r["seconds"] for r in runs if r["reuse"] == c) for c in (False, True)}
    print(f"\nimage paths {path[(False, 'image')] / path[(True, 'image')]:.2f}x faster, caption paths "
          f"{path[(False, 'caption')] / path[(True, 'caption')]:.2f}x, the whole filter {total[False] / total[True]:.2f}x "
          f"(best of {args.repeats}); every verdict record equal: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "runs": runs,
                                    "same_records": same}, indent=2))
    print(json.dumps({"out": str(args.out)}))


if __name__ == "__main__":
    main()
