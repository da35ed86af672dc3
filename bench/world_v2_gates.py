"""Issue 37's gates for world v2, measured before any RL, as one table; and the world's blind baselines.

    .venv/bin/python bench/world_v2_gates.py --workspace .              # after `dvc repro perc_filter`
    .venv/bin/python bench/world_v2_gates.py --workspace . --json gates.json

The gates (docs/miniature.md, "World v2: pre-registered criteria"; the figures are never tuned after the fact):
(1) each filter's caption-only accuracy >= 0.90 on every question type; (2) the base's greedy identify accuracy
in [0.20, 0.40] and its sampled pass@8 >= greedy + 0.20; (3) colour and shape accuracy above chance by more than
2 se; (4) the share of D_perc the no-look baseline (the commonest train answer of each question text) answers
right <= 0.30. `gates` is a pure function of the measured inputs; `read_inputs` finds them in a DAG workspace:

- (1) data/metrics/base/filter_<model>.json: `perc_caption/<qtype>/acc|n` (the base node's held-out pass, the
  first base.eval_n perception questions);
- (2) data/metrics/train/train_1.json's `before/perc_image/identify/acc|n` (the base before any update, on the
  whole test split), else data/metrics/base/policy.json's `perc_image/identify/acc|n` (its first base.eval_n
  perception questions); pass@8 from train_1's `before/headroom/perc/identify/*`: the identify questions among
  the first train.eval.headroom_n perception questions, against their own greedy (a run from before the
  per-type headroom: the whole slice, identify and group counts together);
- (3) data/models/base/policy/eval/heldout.jsonl: the colour and the shape named in the base's identify answers
  (world v2), or its colour and shape questions (the first world); chance is 1 / the world's colours or shapes;
- (4) data/sets/perc: the no-look predictor learnt from D_perc's train split, on its val and test splits.

An input that is not there is reported as not measured, and the verdict is then "incomplete", never "holds".
Beside the gates it prints the blind guesser of `capcurriculum.world.blind` (a type's answers drawn from its
training distribution) on the world's held-out perception questions: data the world holds, no model needed.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from capcurriculum.answers import normalize
from capcurriculum.io import read_json, read_jsonl, write_json
from capcurriculum.world.blind import blind_guesser

FILTER_CAPTION_MIN = 0.90
IDENTIFY_RANGE = (0.20, 0.40)
PASS_AT_8_MARGIN = 0.20
CHANCE_SE = 2.0
DPERC_BLIND_MAX = 0.30
FILTERS = ("filter_small", "filter_large")
HELD_OUT_SPLITS = ("val", "test")  # D_perc's held-out splits, as the train node reads them


def _se(acc: float, n: int) -> float:
    return math.sqrt(acc * (1 - acc) / n) if n else float("nan")


def _row(gate: str, measured: str, threshold: str, holds: bool | None) -> dict[str, Any]:
    return {"gate": gate, "measured": measured, "threshold": threshold, "holds": holds}


def gates(inputs: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per gate check: {gate, measured, threshold, holds (None: not measured)}. `inputs`:

    filter_caption: {model: {qtype: {"acc", "n"}}}
    identify:       {"greedy", "n"}, and "pass_at_8" with "slice_greedy" (the greedy accuracy of the items
                    pass@8 was sampled on) and "slice" (what those items are)
    attributes:     {"color" | "shape": {"acc", "n", "chance"}}
    dperc_blind:    {"share", "n"}
    A key left out (or None) is an input not measured.
    """
    rows = []
    filters = inputs.get("filter_caption") or {}
    for model in FILTERS:
        types = filters.get(model)
        if not types:
            rows.append(_row(f"1. {model} caption accuracy", "not measured", f">= {FILTER_CAPTION_MIN:.2f}", None))
        for qtype, m in sorted((types or {}).items()):
            rows.append(_row(f"1. {model} caption accuracy, {qtype}", f"{m['acc']:.3f} (n {m['n']})",
                             f">= {FILTER_CAPTION_MIN:.2f}", m["acc"] >= FILTER_CAPTION_MIN))
    ident = inputs.get("identify") or {}
    lo, hi = IDENTIFY_RANGE
    if ident.get("greedy") is None:
        rows.append(_row("2. base identify greedy", "not measured", f"in [{lo:.2f}, {hi:.2f}]", None))
    else:
        rows.append(_row("2. base identify greedy", f"{ident['greedy']:.3f} (n {ident['n']})",
                         f"in [{lo:.2f}, {hi:.2f}]", lo <= ident["greedy"] <= hi))
    if ident.get("pass_at_8") is None:
        rows.append(_row("2. base pass@8 - greedy", "not measured", f">= {PASS_AT_8_MARGIN:.2f}", None))
    else:
        gap = ident["pass_at_8"] - ident["slice_greedy"]
        rows.append(_row(f"2. base pass@8 - greedy ({ident.get('slice', 'identify')})",
                         f"{ident['pass_at_8']:.3f} - {ident['slice_greedy']:.3f} = {gap:+.3f}",
                         f">= {PASS_AT_8_MARGIN:.2f}", gap >= PASS_AT_8_MARGIN))
    attributes = inputs.get("attributes") or {}
    for attr in ("color", "shape"):
        m = attributes.get(attr)
        if m is None:
            rows.append(_row(f"3. base {attr} above chance", "not measured", f"> chance + {CHANCE_SE:g} se", None))
            continue
        se, gap = _se(m["acc"], m["n"]), m["acc"] - m["chance"]
        z = gap / se if se else math.copysign(math.inf, gap)  # all right or all wrong: no spread to measure in
        rows.append(_row(f"3. base {attr} above chance", f"{m['acc']:.3f} ± {se:.3f} (n {m['n']}; {z:+.1f} se)",
                         f"> {m['chance']:.3f} + {CHANCE_SE:g} se", gap > CHANCE_SE * se))
    blind = inputs.get("dperc_blind")
    if blind is None:
        rows.append(_row("4. D_perc answerable blind", "not measured", f"<= {DPERC_BLIND_MAX:.2f}", None))
    else:
        rows.append(_row("4. D_perc answerable blind", f"{blind['share']:.3f} (n {blind['n']})",
                         f"<= {DPERC_BLIND_MAX:.2f}", blind["share"] <= DPERC_BLIND_MAX))
    return rows


def verdict(rows: list[dict[str, Any]]) -> str:
    """"fail" when a measured gate fails, "incomplete" when one is not measured, else "all gates hold"."""
    held = [r["holds"] for r in rows]
    if False in held:
        return "fail"
    return "incomplete" if None in held else "all gates hold"


def attribute_accuracy(rows: list[dict[str, Any]], colors: list[str], shapes: list[str]) -> dict[str, dict]:
    """The base's colour and shape accuracy from its held-out rows (`eval/heldout.jsonl`, image mode): in world v2
    the colour and the shape its identify answers name, on cells that hold an object (an answer naming no colour
    is wrong on colour); in the first world its colour and shape questions. Chance: 1 / the values."""
    image = [r for r in rows if r.get("mode") == "perc_image"]
    out = {}
    for attr, values in (("color", colors), ("shape", shapes)):
        flags = [bool(r["correct"]) for r in image if r.get("qtype") == attr]
        if not flags:
            flags = [_named(r["pred"], values) == _named(r["gold"], values)
                     for r in image if r.get("qtype") == "identify" and _named(r["gold"], values)]
        if flags:
            out[attr] = {"acc": sum(flags) / len(flags), "n": len(flags), "chance": 1 / len(values)}
    return out


def _named(answer: str | None, values: list[str]) -> str | None:
    """The first of `values` an answer names ("small red circle" -> "red"; "circles" counts as "circle")."""
    for word in normalize(answer or "").split():
        for value in values:
            if word in (value, f"{value}s", f"{value}es"):
                return value
    return None


def read_inputs(workspace: Path) -> dict[str, Any]:
    """The gates' inputs from a DAG workspace's outputs (see the module's docstring); absent ones left out."""
    data = workspace / "data"
    inputs: dict[str, Any] = {}
    filters = {}
    for model in FILTERS:
        path = data / "metrics" / "base" / f"{model}.json"
        if path.exists():
            filters[model] = _per_type(read_json(path), "perc_caption")
    inputs["filter_caption"] = filters
    policy, train_1 = data / "metrics" / "base" / "policy.json", data / "metrics" / "train" / "train_1.json"
    base, before = (read_json(p) if p.exists() else {} for p in (policy, train_1))
    identify: dict[str, Any] = {}
    # the base's greedy identify accuracy: train_1's pass before any update (the whole test split by default)
    # where it ran, else the base node's (its first base.eval_n perception questions)
    for m, prefix in ((before, "before/"), (base, "")):
        if f"{prefix}perc_image/identify/acc" in m:
            identify.update(greedy=m[f"{prefix}perc_image/identify/acc"], n=int(m[f"{prefix}perc_image/identify/n"]))
            break
    if "before/headroom/perc/identify/pass_at_8" in before:  # identify's own headroom (sampling/headroom.py)
        head = "before/headroom/perc/identify/"
        identify.update(pass_at_8=before[f"{head}pass_at_8"], slice_greedy=before[f"{head}greedy_pass_at_1"],
                        slice=f"the {int(before[f'{head}n'])} identify questions of the headroom slice")
    elif "before/headroom/perc/pass_at_8" in before:  # a run from before the per-type headroom
        identify.update(pass_at_8=before["before/headroom/perc/pass_at_8"],
                        slice_greedy=before["before/headroom/perc/greedy_pass_at_1"],
                        slice=f"first {int(before['before/headroom/perc/n'])} perception questions")
    inputs["identify"] = identify
    heldout = data / "models" / "base" / "policy" / "eval" / "heldout.jsonl"
    manifest = data / "world" / "manifest.json"
    if heldout.exists() and manifest.exists():
        world = read_json(manifest)["config"]
        inputs["attributes"] = attribute_accuracy(read_jsonl(heldout), world["colors"], world["shapes"])
    perc = data / "sets" / "perc"
    if (perc / "perc_train.jsonl").exists():
        from capcurriculum.sampling.capabilities import no_look_correct

        held = [row for split in HELD_OUT_SPLITS if (perc / f"perc_{split}.jsonl").exists()
                for row in read_jsonl(perc / f"perc_{split}.jsonl")]
        if held:
            flags = no_look_correct(read_jsonl(perc / "perc_train.jsonl"), held)
            inputs["dperc_blind"] = {"share": sum(flags) / len(flags), "n": len(flags)}
    return inputs


def _per_type(metrics: dict[str, Any], mode: str) -> dict[str, dict]:
    """{qtype: {"acc", "n"}} from a base node's `<mode>/<qtype>/acc|n` metrics."""
    out = {}
    for key, value in metrics.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == mode and parts[2] == "acc":
            out[parts[1]] = {"acc": value, "n": int(metrics[f"{mode}/{parts[1]}/n"])}
    return out


def blind_rows(world_dir: Path, train: Path | None = None) -> dict[str, dict]:
    """The blind guesser on the world's held-out perception questions (and, in world v2, the six old types'),
    its answers drawn from `train` (default: the world's own train split)."""
    out = {}
    for name in ("perception", "perception_v1"):
        test = world_dir / f"{name}_test.jsonl"
        if test.exists():
            source = train if train is not None and name == "perception" else world_dir / f"{name}_train.jsonl"
            out[name] = blind_guesser(read_jsonl(source), read_jsonl(test))
    return out


def markdown(rows: list[dict[str, Any]], blind: dict[str, dict]) -> str:
    mark = {True: "yes", False: "**no**", None: "not measured"}
    lines = ["| gate | measured | threshold | holds |", "|---|---|---|---|"]
    lines += [f"| {r['gate']} | {r['measured']} | {r['threshold']} | {mark[r['holds']]} |" for r in rows]
    lines += ["", f"Verdict: **{verdict(rows)}**"]
    for name, table in blind.items():
        lines += ["", f"Blind guesser on {name}_test (answers drawn from each type's training distribution):", "",
                  "| question type | n | answers | pass@1 | pass@8 |", "|---|---|---|---|---|"]
        lines += [f"| {qtype} | {r['n']} | {r['answers']} | {r['pass_at_1']:.3f} | {r['pass_at_8']:.3f} |"
                  for qtype, r in table.items()]
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workspace", type=Path, default=Path("."), help="a DAG workspace (its data/ is read)")
    ap.add_argument("--train", type=Path, help="the blind guesser's training questions (default: the world's "
                                               "train split; data/perception/qa/candidates.jsonl: the candidates)")
    ap.add_argument("--json", type=Path, help="also write the inputs, the rows and the blind tables here")
    args = ap.parse_args()
    inputs = read_inputs(args.workspace)
    rows = gates(inputs)
    blind = blind_rows(args.workspace / "data" / "world", args.train)
    print(markdown(rows, blind))
    if args.json:
        write_json(args.json, {"inputs": inputs, "rows": rows, "verdict": verdict(rows), "blind": blind})


if __name__ == "__main__":
    main()
