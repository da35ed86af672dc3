"""One evaluator for every benchmark: greedy outputs saved per item, scores recomputable from them.

Two kinds of benchmark, one record format (`id, gold, extracted, correct, no_answer, n_tokens,
response, ...`) and one summary per benchmark (`headline`, `n, accuracy, se, no_answer, skipped,
failed, mean_tokens`, the benchmark's own sub-scores). The headline is the benchmark's official number
(WeMath's strict four-dimensional score with the loose one beside it, POPE's F1 with accuracy beside
it, HallusionBench's aAcc with qAcc and fAcc, accuracy elsewhere): metrics.json, the report and Overall
use it; per-row accuracy stays in the summary as a secondary figure.

- the tiny world's held-out sets (`tiny_perception`, `tiny_vis_math`, `tiny_text_math`), prompted as
  in training; wrong visual-math answers are attributed exactly against the scene they were asked about;
- the paper's hub benchmarks through their adapters (`evaluation/benchmarks`), through any generation
  backend (vLLM first, transformers as fallback), with the optional judge.

A row an adapter cannot use, a failed generation and an answer that cannot be read are each counted
and kept in the outputs: none is scored silently. As the reference counts every row, each is wrong
and in every denominator (a skipped row is a record with `skipped` set and no response).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from capcurriculum.io import write_json, write_jsonl

log = logging.getLogger(__name__)

# hub benchmarks whose wrong answers the judge attributes to perception or reasoning (the paper: three
# visual-math sets)
VISUAL_MATH = ("mathvista", "mathvision", "mathverse", "wemath")

# tiny benchmark -> (world set, prompt mode)
TINY_BENCHMARKS: dict[str, tuple[str, str]] = {
    "tiny_perception": ("perception", "perc_image"),
    "tiny_vis_math": ("vis_math", "vis_math"),
    "tiny_text_math": ("text_math", "text_math"),
    # the blind-policy check (issue 37): visual math with every question shown another scene's image. A policy
    # that reads the image loses accuracy here; one that learnt the questions' answer priors scores the same
    # as on tiny_vis_math (the miniature's version of the paper's "self-persuasion").
    "tiny_vis_math_shuffled": ("vis_math", "vis_math"),
}
SHUFFLED_IMAGES = ("tiny_vis_math_shuffled",)
CHECKS = SHUFFLED_IMAGES  # diagnostics, not abilities: reported, and left out of Overall and its deltas


def in_overall(benchmarks: Sequence[str]) -> list[str]:
    """The benchmarks Overall averages: all but the CHECKS."""
    return [b for b in benchmarks if b not in CHECKS]


def shuffle_images(items: Sequence[Any], seed: int = 0) -> list[Any]:
    """The items with each one's image taken from another item (a seeded cycle through a random order, so no
    item keeps its own), the question and gold answer unchanged; `extra["image_from"]` names the image's item."""
    if len(items) < 2:
        raise ValueError(f"evaluation.n: tiny_vis_math_shuffled shows each item another item's image, so it needs "
                         f"at least two items (got {len(items)})")
    order = list(range(len(items)))
    random.Random(seed).shuffle(order)
    donor = {order[k]: order[(k + 1) % len(order)] for k in range(len(order))}
    return [dataclasses.replace(it, image_path=items[donor[i]].image_path,
                                extra={**it.extra, "image_from": items[donor[i]].example["id"]})
            for i, it in enumerate(items)]


def mean_se(flags: Sequence[bool]) -> tuple[float | None, float | None]:
    n = len(flags)
    if not n:
        return None, None
    p = sum(map(bool, flags)) / n
    return p, math.sqrt(p * (1 - p) / n)


def summarize_records(records: Sequence[Mapping[str, Any]], extra: Mapping[str, Any] | None = None) -> dict[str, Any]:
    acc, se = mean_se([r["correct"] for r in records])
    lengths = [r["n_tokens"] for r in records if r.get("n_tokens", -1) >= 0]
    out = {"n": len(records), "accuracy": acc, "se": se,
           "no_answer": sum(bool(r.get("no_answer")) for r in records),
           "failed": sum(bool(r.get("error")) for r in records),
           "mean_tokens": sum(lengths) / len(lengths) if lengths else None,
           "headline": {"metric": "accuracy", "value": acc, "beside": {}}}
    out.update(extra or {})
    return out


# --- the tiny world ---------------------------------------------------------------------------------
def attribution_counts(labels: Sequence) -> dict[str, int]:
    return {"wrong": len(labels), "perception": sum(lb.label == "perception" for lb in labels),
            "reasoning": sum(lb.label == "reasoning" for lb in labels),
            "unparseable": sum(lb.status == "unparseable" for lb in labels),
            "unavailable": sum(lb.status == "unavailable" for lb in labels)}


def judge_wrong_answers(judge, records: list[dict], questions: Sequence[str]) -> list:
    """The judge's perception/reasoning label for each wrong record (stored on it), in record order."""
    from capcurriculum.evaluation.attribution import judge_attribution_many

    wrong = [(r, q) for r, q in zip(records, questions, strict=True) if not r["correct"]]
    labels = judge_attribution_many(judge, [(q, str(r["gold"]), r.get("response") or "") for r, q in wrong])
    for (r, _), lab in zip(wrong, labels):
        r["judge_attribution"] = lab.to_dict()
    return labels


def evaluate_tiny(model, processor, raw_dir: str | Path, world_dir: str | Path, names: Sequence[str], *,
                  n: int | None, max_new_tokens: int, batch_size: int = 64, split: str = "test",
                  judge=None) -> dict[str, tuple[list[dict], dict]]:
    """{benchmark: (records, summary)} on the world's held-out split, greedy, the training prompt.
    With a judge, wrong visual-math answers are also judged, and its agreement with the exact
    attribution is reported."""
    from capcurriculum.evaluation.attribution import attribution_summary, exact_attribution, vis_scenes
    from capcurriculum.sampling.capabilities import generate, score
    from capcurriculum.sampling.world_data import WorldData

    unknown = [n for n in names if n not in TINY_BENCHMARKS]
    if unknown:
        raise ValueError(f"evaluation.benchmarks: unknown tiny benchmark(s) {unknown}; "
                         f"expected one of {', '.join(TINY_BENCHMARKS)}")
    world = WorldData(raw_dir, world_dir)
    out = {}
    for name in names:
        set_name, mode = TINY_BENCHMARKS[name]
        items = world.items(set_name, mode, split, limit=n)
        if name in SHUFFLED_IMAGES:
            items = shuffle_images(items)
        rows = score(items, generate(model, processor, items, batch_size=batch_size,
                                     max_new_tokens=max_new_tokens, desc=name))
        records = [{"id": r["id"], "gold": r["gold"], "extracted": r["pred"], "correct": r["correct"],
                    "no_answer": r["pred"] is None, "n_tokens": r["n_tokens"], "response": r["response"],
                    "qtype": r["qtype"]} for r in rows]
        extra: dict[str, Any] = {}
        if name in SHUFFLED_IMAGES:  # the scene behind the image is another item's: no attribution to make
            for it, rec in zip(items, records, strict=True):
                rec["image_from"] = it.extra["image_from"]
        elif set_name == "vis_math":
            scenes = vis_scenes(world_dir, split)
            labels = []
            for it, rec in zip(items, records, strict=True):
                if rec["correct"]:
                    continue
                lab = exact_attribution(it.example, scenes.get(it.example["id"]), rec["response"])
                rec["attribution"] = lab.to_dict()
                labels.append(lab)
            extra["attribution"] = attribution_counts(labels)
            if judge is not None:
                judged = judge_wrong_answers(judge, records, [it.example["question"] for it in items])
                extra["judge_attribution"] = attribution_counts(judged)
                agreement = attribution_summary(labels, judged)
                extra["judge_agreement"] = {"both_labelled": agreement["both_labelled"],
                                            "agreement": agreement["agreement"], "confusion": agreement["confusion"]}
        out[name] = (records, summarize_records(records, extra))
        log.info("%s: accuracy %.3f (n=%d)", name, out[name][1]["accuracy"] or float("nan"), len(records))
    return out


# --- hub benchmarks through their adapters ----------------------------------------------------------
def evaluate_benchmark(backend, adapter, rows, *, source: str, system: str | None = None,
                       suffix: str | None = None, max_new_tokens: int, judge=None, protocol: str = "lenient",
                       split_think: bool = False) -> tuple[list[dict], dict]:
    """Greedy outputs for one benchmark's rows, graded by its adapter (and the judge where it needs one)
    under `protocol` "lenient", or by VLMEvalKit's protocol (`evaluation/vlmevalkit.py`) under
    "vlmevalkit", where `split_think` is its SPLIT_THINK setting."""
    from capcurriculum.generation.base import Request, SamplingConfig

    converted = adapter.rows_to_items(rows, source=source)
    for s in converted.skipped:
        log.warning("skipped: %s", s)
    requests = [Request.from_prompt(it.id, f"{it.question} {suffix}" if suffix else it.question,
                                    image=it.image, system=system) for it in converted.items]
    results = backend.generate(requests, SamplingConfig(max_new_tokens=max_new_tokens, temperature=0.0))
    ok = [(it, res) for it, res in zip(converted.items, results, strict=True) if res.ok]
    if protocol == "vlmevalkit":
        from capcurriculum.evaluation.vlmevalkit import grade_all

        graded = iter(grade_all(adapter, [it for it, _ in ok], [res.text for _, res in ok], judge=judge,
                                split=split_think))
    else:
        graded = iter([adapter.grade(it, res.text, judge=judge) for it, res in ok])
    records = []
    for it, res in zip(converted.items, results, strict=True):
        if res.ok:
            rec = next(graded)
            rec["n_tokens"] = res.n_tokens[0] if res.n_tokens else -1
        else:  # kept, counted as `failed`, and wrong: an official score counts every row
            rec = {"benchmark": adapter.spec.title, "id": it.id, "gold": it.gold, "extracted": None,
                   "correct": False, "no_answer": True, "judge": "not_needed", "response": None,
                   "error": res.error, "n_tokens": -1, "meta": dict(it.meta)}
        records.append(rec)
    records += [adapter.skipped_record(s) for s in converted.skipped]  # counted, and wrong
    official = adapter.aggregate(records)
    extra = {"skipped": len(converted.skipped), "excluded": converted.excluded,
             "skipped_rows": [str(s) for s in converted.skipped], "official": official,
             "headline": adapter.headline(official)}
    if protocol == "vlmevalkit":
        from capcurriculum.evaluation.vlmevalkit import extraction_summary

        extra["extraction"] = extraction_summary(records[:len(converted.items)])
    if judge is not None and adapter.spec.name in VISUAL_MATH:
        graded = records[:len(converted.items)]  # the skipped rows' records follow: no response to judge
        extra["judge_attribution"] = attribution_counts(
            judge_wrong_answers(judge, graded, [it.question for it in converted.items]))
    return records, summarize_records(records, extra)


def overall(summaries: Mapping[str, Mapping[str, Any]]) -> float | None:
    """The paper tables' Overall: the unweighted mean of the benchmarks' headline numbers (CHECKS left out)."""
    values = [summaries[b]["headline"]["value"] for b in in_overall(list(summaries))
              if summaries[b]["headline"]["value"] is not None]
    return sum(values) / len(values) if values else None


def write_results(out_dir: str | Path, results: Mapping[str, tuple[list[dict], dict]], *,
                  model: str, protocol: str, protocol_details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """out_dir/<benchmark>.jsonl (every item) and out_dir/metrics.json (flat numbers for `dvc metrics`);
    `protocol` (evaluation.protocol, the extraction rules) is recorded in both summaries and metrics, and
    `protocol_details` (vlmevalkit.protocol_record: think-split, judge model and version, prompt hashes)
    in every summary."""
    out_dir = Path(out_dir)
    details = dict(protocol_details or {"name": protocol})
    summaries = {name: {**s, "protocol": protocol, "protocol_details": details} for name, (_, s) in results.items()}
    for name, (records, _) in results.items():
        write_jsonl(out_dir / f"{name}.jsonl", records)
    metrics: dict[str, Any] = {"model": model, "protocol": protocol, "overall": overall(summaries)}
    for name, s in summaries.items():
        h = s["headline"]
        shown = {h["metric"]: h["value"], **h["beside"]}  # the headline and what stands beside it
        if "accuracy" in shown:
            shown["se"] = s["se"]
        for k, v in {**shown, **{k: s.get(k) for k in ("n", "no_answer", "failed", "skipped", "mean_tokens")}}.items():
            if v is not None:
                metrics[f"{name}/{k}"] = v
        if s.get("extraction") is not None:  # vlmevalkit: answers the rule could not read and no judge gave
            metrics[f"{name}/unextracted"] = s["extraction"]["unextracted"]
        for part in ("attribution", "judge_attribution"):
            for k, v in (s.get(part) or {}).items():
                metrics[f"{name}/{part}/{k}"] = v
        if (s.get("judge_agreement") or {}).get("agreement") is not None:
            metrics[f"{name}/judge_agreement"] = s["judge_agreement"]["agreement"]
    write_json(out_dir / "summary.json", summaries)
    write_json(out_dir / "metrics.json", metrics)
    return metrics
