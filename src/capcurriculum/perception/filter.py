"""The differential filter: keep a question iff a filter model answers it wrong from the image alone
and right from the caption alone — for every filter model (the paper's intersection).

Every answer a model gave and its verdict is kept, so a user can audit why any item was kept or
dropped; under the cascade a model is asked only about what the earlier ones kept, and a path it was
not asked is recorded as skipped.
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from capcurriculum.answers import extract_answer, gold_is_gradeable, matches
from capcurriculum.generation import Request, SamplingConfig
from capcurriculum.prompts import build_messages

PATHS = ("image", "caption")
log = logging.getLogger(__name__)


def filter_requests(examples: Sequence[dict[str, Any]], captions: Mapping[str, str],
                    image_root, paths: Sequence[str] = PATHS) -> list[Request]:
    """The named paths (both by default) of every candidate, for one engine session per model."""
    unknown = set(paths) - set(PATHS)
    if unknown:
        raise ValueError(f"filter paths: {sorted(unknown)} not in {PATHS}")
    reqs = []
    for ex in examples:
        if "image" in paths:
            reqs.append(Request(build_messages(ex, "perc_image", image=str(image_root / ex["image"])),
                                id=f"{ex['id']}|image"))
        if "caption" in paths:
            scene = ex["meta"]["scene_id"]
            reqs.append(Request(build_messages(ex, "perc_caption", caption=captions[scene]),
                                id=f"{ex['id']}|caption"))
    return reqs


def judge_model(examples: Sequence[dict[str, Any]], results: Sequence, model: str) -> list[dict[str, Any]]:
    """One verdict record per candidate for one filter model. A path with no result was not asked
    (the cascade skips the caption of an item its image answer already drops): `<path>_skipped`."""
    by_id = {r.id: r for r in results}
    out = []
    for ex in examples:
        rec: dict[str, Any] = {"id": ex["id"], "model": model}
        # a gold no answer could match is right on neither path, so never kept; counted in verdict_counts
        rec["ungradeable_gold"] = not gold_is_gradeable(ex["answer"], ex["answer_type"])
        for path in PATHS:
            r = by_id.get(f"{ex['id']}|{path}")
            text = r.text if r is not None and r.ok else None
            pred = extract_answer(text) if text is not None else None
            rec[f"{path}_skipped"] = r is None
            rec[f"{path}_response"] = text
            rec[f"{path}_pred"] = pred
            rec[f"{path}_error"] = r.error if r is not None else None
            rec[f"{path}_correct"] = (not rec["ungradeable_gold"] and matches(pred, ex["answer"], ex["answer_type"])
                                      if r is not None else None)
        if rec["image_skipped"]:
            raise ValueError(f"filter model {model}: no image-path result for candidate {ex['id']}")
        # A response without an answer counts as wrong: for the image path that keeps the item (the
        # model did not see it), for the caption path it drops it. A request that failed outright
        # (an image that does not decode, a dead endpoint) is no evidence either way: dropped, counted.
        rec["failed"] = rec["image_error"] is not None or rec["caption_error"] is not None
        rec["keep"] = (not rec["failed"]) and (not rec["image_correct"]) and rec["caption_correct"] is True
        out.append(rec)
    return out


def caption_needed(verdicts: Sequence[dict[str, Any]]) -> list[str]:
    """Ids whose caption answer can still decide them: the image request worked and was answered wrong."""
    return [v["id"] for v in verdicts if v["image_error"] is None and not v["image_correct"]]


def ask_filter_models(examples: Sequence[dict[str, Any]], captions: Mapping[str, str], image_root,
                      roles: Sequence[str], open_model, sampling: SamplingConfig | None = None, *,
                      cascade: bool = True) -> tuple[list[dict[str, Any]], dict[str, bool]]:
    """Every filter model's verdicts and the intersection (`keep` by id). `open_model(role)` is a context
    manager yielding a backend (`.generate(requests, sampling)`). The kept set is an intersection, so the
    `cascade` asks each model only about what every earlier one kept, and the caption only where its
    image answer was wrong: the same set for less work (put the cheapest model first)."""
    keep = {ex["id"]: True for ex in examples}
    records: list[dict[str, Any]] = []
    alive = list(examples)
    for role in roles:
        todo = alive if cascade else list(examples)
        with open_model(role) as backend:
            log.info("filter model %s: %d candidates, image path", role, len(todo))
            results = list(backend.generate(filter_requests(todo, captions, image_root, paths=("image",)),
                                            sampling))
            ask = todo
            if cascade:
                wanted = set(caption_needed(judge_model(todo, results, role)))
                ask = [ex for ex in todo if ex["id"] in wanted]
            log.info("filter model %s: %d candidates, caption path", role, len(ask))
            results += backend.generate(filter_requests(ask, captions, image_root, paths=("caption",)), sampling)
        verdicts = judge_model(todo, results, role)
        for v in verdicts:
            keep[v["id"]] &= v["keep"]
        records.extend(verdicts)
        alive = [ex for ex in todo if keep[ex["id"]]]
    return records, keep


VERDICT_COUNTS = ("failed", "image_right", "caption_asked", "caption_wrong", "removed_by_image_right",
                  "removed_by_caption_wrong_only", "kept", "image_unanswered", "caption_unanswered",
                  "ungradeable_gold")


def verdict_counts(records: Sequence[dict[str, Any]], model: str) -> dict[str, int]:
    """Every count, zeros included (a model the cascade asked nothing still reports each key)."""
    c = Counter(dict.fromkeys(VERDICT_COUNTS, 0))
    for r in records:
        asked = not r["caption_skipped"]
        c["failed"] += r["failed"]
        c["image_right"] += r["image_correct"]
        c["caption_asked"] += asked
        c["caption_wrong"] += r["caption_correct"] is False
        c["removed_by_image_right"] += (not r["failed"]) and r["image_correct"]
        c["removed_by_caption_wrong_only"] += (not r["failed"]) and (not r["image_correct"]) and r["caption_correct"] is False
        c["kept"] += r["keep"]
        c["image_unanswered"] += r["image_pred"] is None
        c["caption_unanswered"] += asked and r["caption_pred"] is None
        c["ungradeable_gold"] += r.get("ungradeable_gold", False)
    return {f"filter/{model}/{k}": int(c[k]) for k in VERDICT_COUNTS} | {f"filter/{model}/n": len(records)}


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
