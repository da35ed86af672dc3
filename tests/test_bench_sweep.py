"""The seed sweep's table: mean ± sd over seeds and paired differences, from saved evaluation records."""

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("curriculum_sweep", ROOT / "bench" / "curriculum_sweep.py")
sweep = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sweep)


def _write(out: Path, variant: str, seed: int, correct: dict[str, list[bool]]):
    d = out / f"{variant}_s{seed}" / "eval"
    d.mkdir(parents=True)
    summary = {}
    for b, flags in correct.items():
        (d / f"{b}.jsonl").write_text("".join(json.dumps({"id": f"{b}{i}", "correct": c, "n_tokens": 10 + seed})
                                              + "\n" for i, c in enumerate(flags)))
        summary[b] = {"accuracy": sum(flags) / len(flags), "n": len(flags), "mean_tokens": 10.0 + seed}
    summary["tiny_vis_math"]["attribution"] = {"perception": 3 - seed}
    (d / "summary.json").write_text(json.dumps(summary))


def test_the_table_averages_seeds_and_pairs_items(tmp_path):
    no = [False] * 4
    # staged gets one more item right than merged on seed 0, two more on seed 1
    for seed, extra in ((0, 1), (1, 2)):
        merged = {b: [True, True, False, False] for b in sweep.BENCHMARKS}
        staged = {**merged, "tiny_text_math": [True, True] + [True] * extra + [False] * (2 - extra)}
        _write(tmp_path, "merged", seed, merged)
        _write(tmp_path, "staged", seed, staged)
    _write(tmp_path, "perc_last", 0, {b: no for b in sweep.BENCHMARKS})
    md = sweep.table(tmp_path, ["staged", "merged", "perc_last"], [0, 1], None)
    assert "n = 4 items per benchmark" in md
    # staged text math: 75 % and 100 % -> mean 87.5, sd 17.7
    assert "| staged | 2 | 50.0 ± 0.0 | 87.5 ± 17.7 | 50.0 ± 0.0 | 62.5 ± 5.9 | 10.5 ± 0.7 | 2.5 ± 0.7 |" in md
    assert "| perc_last | 1 | 0.0 | 0.0 | 0.0 | 0.0 |" in md
    # the paper's findings: per seed the mean of the three benchmarks' paired deltas (+1/4 and +2/4 on text math)
    assert "| staged beats merged | staged − merged | accuracy (points) on tiny_perception, tiny_text_math, " \
           "tiny_vis_math | s0: +8.3 ± 8.3, s1: +16.7 ± 9.6 | +12.5 ± 4.2 |" in md
    assert "| perception first beats perception last | staged − perc_last | accuracy (points) on tiny_vis_math | " \
           "s0: +50.0 ± 28.9 | +50.0 (one seed) |" in md  # perc_last ran one seed: no spread, no verdict of clarity
    assert sweep.load(tmp_path, "sft_perc", 0) is None
