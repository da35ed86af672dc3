"""A stage's closing held-out evaluation, kept with its checkpoint so that the next stage need not repeat it.

    items_sha = fingerprint_items(items_by_mode)
    save_record(out_dir, items_sha, settings, metrics, flags, rows, rows_per_mode=...)  # next to the weights
    record = load_record(init_dir, items_sha, settings)   # None: measure afresh

Stage k's `before` pass evaluates the very weights stage k-1's `after` pass evaluated, on the same held-out
items with the same settings, and greedy decoding gives the same tokens both times (a test checks the
reused pass against a fresh one). The record names what it measured, the weights' sha256, the items
(each example and the caption it is asked with; images by path) and the settings, and is used only when all
of them match the stage about to start.
"""

from __future__ import annotations

import hashlib
import json
import logging
from pathlib import Path
from typing import Any

from capcurriculum.io import read_json, sha256_file, write_json

log = logging.getLogger(__name__)

FILE = "trainer_state/held_out_eval.json"  # in a checkpoint directory
ROW_FIELDS = ("id", "mode", "correct", "pred")  # what the headroom report reads of a greedy row


def weights_sha256(model_dir: str | Path) -> str | None:
    """None for a directory without safetensors weights (a hub reference): nothing a record could match."""
    files = sorted(Path(model_dir).glob("*.safetensors"))
    if not files:
        return None
    return hashlib.sha256("".join(f"{f.name}:{sha256_file(f)};" for f in files).encode()).hexdigest()


def fingerprint_items(items_by_mode: dict[str, list]) -> str:
    """The evaluated items in order: each example as stored, the caption it is asked with, its image path."""
    h = hashlib.sha256()
    for mode in sorted(items_by_mode):
        for it in items_by_mode[mode]:
            h.update(json.dumps([mode, it.example, it.caption, it.image_path], sort_keys=True).encode())
    return h.hexdigest()


def record_key(model_dir: str | Path, items_sha256: str, settings: dict[str, Any]) -> dict[str, Any]:
    return {"weights_sha256": weights_sha256(model_dir), "items_sha256": items_sha256, **settings}


def save_record(model_dir: str | Path, items_sha256: str, settings: dict[str, Any], metrics: dict[str, float],
                flags: dict[str, list[bool]], rows: list[dict[str, Any]], rows_per_mode: int) -> Path:
    """The held-out pass on the weights saved in `model_dir`: `metrics` unprefixed (`perc_image/acc`, ...),
    `flags` per capability, and the first `rows_per_mode` greedy rows of each mode (the headroom slice)."""
    kept, seen = [], {}
    for r in rows:
        seen[r["mode"]] = seen.get(r["mode"], 0) + 1
        if seen[r["mode"]] <= rows_per_mode:
            kept.append({k: r[k] for k in ROW_FIELDS})
    path = Path(model_dir) / FILE
    key = record_key(model_dir, items_sha256, settings)
    write_json(path, {"key": key, "metrics": metrics, "flags": flags, "rows": kept})
    return path


def load_record(model_dir: str | Path, items_sha256: str, settings: dict[str, Any]) -> dict[str, Any] | None:
    """The record kept with `model_dir` if it was measured on its weights, these items and settings; None (and
    the reason logged) otherwise."""
    path = Path(model_dir) / FILE
    if not path.exists():
        return None
    key = record_key(model_dir, items_sha256, settings)
    if key["weights_sha256"] is None:
        return None
    record = read_json(path)
    differ = sorted(k for k in set(key) | set(record.get("key", {})) if record.get("key", {}).get(k) != key.get(k))
    if differ:
        log.info("%s: not reused (measured on another %s); evaluating afresh", path, ", ".join(differ))
        return None
    missing = {"metrics", "flags", "rows"} - set(record)
    if missing:
        raise ValueError(f"{path}: missing {', '.join(sorted(missing))}; delete it to evaluate afresh")
    return record
