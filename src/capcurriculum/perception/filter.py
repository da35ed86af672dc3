"""The differential filter: keep a question iff a filter model answers it wrong from the image alone
and right from the caption alone — for every filter model (the paper's intersection).

Every per-model answer and verdict is kept, so a user can audit why any item was kept or dropped.
"""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import extract_answer, is_correct
from capcurriculum.generation import Request, SamplingConfig
from capcurriculum.prompts import build_messages

PATHS = ("image", "caption")


def filter_requests(examples: Sequence[dict[str, Any]], captions: Mapping[str, str],
                    image_root) -> list[Request]:
    """Both paths of every candidate, for one engine session per model."""
    reqs = []
    for ex in examples:
        scene = ex["meta"]["scene_id"]
        reqs.append(Request(build_messages(ex, "perc_image", image=str(image_root / ex["image"])),
                            id=f"{ex['id']}|image"))
        reqs.append(Request(build_messages(ex, "perc_caption", caption=captions[scene]), id=f"{ex['id']}|caption"))
    return reqs


def judge_model(examples: Sequence[dict[str, Any]], results: Sequence, model: str) -> list[dict[str, Any]]:
    """One verdict record per candidate for one filter model."""
    by_id = {r.id: r for r in results}
    out = []
    for ex in examples:
        rec: dict[str, Any] = {"id": ex["id"], "model": model}
        for path in PATHS:
            r = by_id[f"{ex['id']}|{path}"]
            text = r.text if r.ok else None
            pred = extract_answer(text) if text is not None else None
            rec[f"{path}_response"] = text
            rec[f"{path}_pred"] = pred
            rec[f"{path}_error"] = r.error
            rec[f"{path}_correct"] = is_correct(pred, ex["answer"], ex["answer_type"])
        # A response without an answer counts as wrong: for the image path that keeps the item (the
        # model did not see it), for the caption path it drops it. A request that failed outright
        # (an image that does not decode, a dead endpoint) is no evidence either way: dropped, counted.
        rec["failed"] = rec["image_error"] is not None or rec["caption_error"] is not None
        rec["keep"] = (not rec["failed"]) and (not rec["image_correct"]) and rec["caption_correct"]
        out.append(rec)
    return out


def verdict_counts(records: Sequence[dict[str, Any]], model: str) -> dict[str, int]:
    c = Counter()
    for r in records:
        c["failed"] += r["failed"]
        c["image_right"] += r["image_correct"]
        c["caption_wrong"] += not r["caption_correct"]
        c["removed_by_image_right"] += (not r["failed"]) and r["image_correct"]
        c["removed_by_caption_wrong_only"] += (not r["failed"]) and (not r["image_correct"]) and (not r["caption_correct"])
        c["kept"] += r["keep"]
        c["image_unanswered"] += r["image_pred"] is None
        c["caption_unanswered"] += r["caption_pred"] is None
    return {f"filter/{model}/{k}": v for k, v in c.items()} | {f"filter/{model}/n": len(records)}


def split_kept(examples: Sequence[dict[str, Any]], fractions: Sequence[float], seed: int) -> dict[str, list]:
    """Seeded train / val / test split by scene, so no image is in two splits."""
    if len(fractions) != 3 or abs(sum(fractions) - 1) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"perception.filter.split: three non-negative fractions summing to 1, got {list(fractions)}")
    scenes = sorted({ex["meta"]["scene_id"] for ex in examples})
    random.Random(seed).shuffle(scenes)
    n_train = round(fractions[0] * len(scenes))
    n_val = round(fractions[1] * len(scenes))
    which = {s: "train" if i < n_train else "val" if i < n_train + n_val else "test" for i, s in enumerate(scenes)}
    out: dict[str, list] = {"train": [], "val": [], "test": []}
    for ex in examples:
        out[which[ex["meta"]["scene_id"]]].append(ex)
    return out


def sampling(spec: Mapping[str, Any]) -> SamplingConfig:
    return SamplingConfig.from_mapping(spec)
