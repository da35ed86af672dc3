"""The differential filter with and without its cascade (`perception.filter.cascade`), side by side on
the same candidates and filter models: requests asked, seconds, and whether the kept sets are equal.

    python bench/filter_cascade.py --workspace . --n 4000

`--workspace` is a DAG workspace after `perc_filter` has its inputs (data/raw, data/perception/qa,
data/models/base/<filter models>); the filter's backend and sampling come from its params.yaml.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


class Counting:
    """A backend wrapper that counts the requests it is asked."""

    def __init__(self, backend, counter: list):
        self.backend, self.counter = backend, counter

    def generate(self, requests, sampling=None):
        self.counter.append(len(requests))
        return self.backend.generate(requests, sampling)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("."))
    ap.add_argument("--n", type=int, default=4000, help="the first N candidates")
    ap.add_argument("--out", type=Path, default=Path("bench/results/filter_cascade.json"))
    args = ap.parse_args()

    import contextlib

    from filter_inputs import load

    from capcurriculum.generation import make_backend
    from capcurriculum.perception.filter import ask_filter_models

    ws = args.workspace
    inputs = load(ws, args.n)
    fcfg, examples, captions, sampling, spec = (inputs.fcfg, inputs.examples, inputs.captions, inputs.sampling,
                                                inputs.backend)
    rows, keeps = [], {}
    for cascade in (False, True):
        asked: list[int] = []

        @contextlib.contextmanager
        def open_model(role, asked=asked):
            with make_backend(spec, ws / "data/models/base" / role) as backend:
                yield Counting(backend, asked)

        t0 = time.perf_counter()
        records, keep = ask_filter_models(examples, captions, ws / "data/raw/images", list(fcfg.models),
                                          open_model, sampling, cascade=cascade)
        rows.append({"cascade": cascade, "seconds": time.perf_counter() - t0, "requests": sum(asked),
                     "kept": sum(keep.values())})
        keeps[cascade] = keep
    same = keeps[False] == keeps[True]
    print(f"\n{len(examples)} candidates, filter models {list(fcfg.models)}, {os.cpu_count()} cores\n")
    print("| cascade | requests | seconds | kept |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['cascade']} | {r['requests']} | {r['seconds']:.0f} | {r['kept']} |")
    print(f"\nwork saved: {rows[0]['seconds'] / rows[1]['seconds']:.2f}x faster, "
          f"{rows[0]['requests'] / rows[1]['requests']:.2f}x fewer requests; same kept set: {same}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"args": {k: str(v) for k, v in vars(args).items()}, "rows": rows,
                                    "same_kept_set": same}, indent=2))


if __name__ == "__main__":
    main()
