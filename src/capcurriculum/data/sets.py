"""Build one normalised training set (D_text or D_vis) from a config list of sources.

`build_set("vis", [{"adapter": "vlaa_thinking", ...}, ...], "data/sets", seed=0, val_fraction=0.02)`
loads every source through its adapter (`sources/`), drops duplicates (same normalised question
and same image bytes; the first occurrence, in config order, is kept), caps per source and overall,
shuffles under the seed and splits off a validation part (`val_fraction`; 1 makes a
validation-only set, e.g. geometry3k's test split for in-training validation). It writes, each file atomically::

    <out_dir>/<name>_train.jsonl    Example rows, in the shuffled order
    <out_dir>/<name>_val.jsonl
    <out_dir>/<name>_images/<source>/<file>   every image the rows use (copied or decoded from
                                              the source's embedded bytes); `image` is relative here
    <out_dir>/<name>_stats.json     what `build_set` returns: counts, skips by reason, duplicates

The same config, seed and inputs always give the same bytes.
"""

from __future__ import annotations

import math
import os
import random
import re
import shutil
import unicodedata
from collections.abc import Mapping, Sequence
from pathlib import Path, PurePosixPath
from typing import Any

from capcurriculum.data.schema import Example
from capcurriculum.data.sources import PROBLEMS_KEPT, SourceItem, SourceSpec, load_source
from capcurriculum.data.sources.spec import _plain
from capcurriculum.io import atomic_path, read_jsonl, write_json, write_jsonl

SPLITS = ("train", "val")


def set_paths(out_dir: str | os.PathLike, name: str) -> dict[str, Path]:
    out = Path(out_dir)
    return {
        "train": out / f"{name}_train.jsonl",
        "val": out / f"{name}_val.jsonl",
        "images": out / f"{name}_images",
        "stats": out / f"{name}_stats.json",
    }


def normalise_question(question: str) -> str:
    """The dedupe key's text: Unicode NFKC, case-folded, whitespace collapsed, `<image>` dropped."""
    s = unicodedata.normalize("NFKC", question).replace("<image>", " ").casefold()
    return re.sub(r"\s+", " ", s).strip()


def _check_args(name: str, val_fraction: float, max_items: int | None, capability: str | None) -> None:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", str(name)):
        raise ValueError(f"set name {name!r}: use letters, digits, '_', '-' or '.'")
    if isinstance(val_fraction, bool) or not isinstance(val_fraction, (int, float)) or not 0 <= val_fraction <= 1:
        raise ValueError(f"sets.{name}: val_fraction must be in [0, 1], got {val_fraction!r}")
    if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 1):
        raise ValueError(f"sets.{name}: max_items must be a positive integer or null, got {max_items!r}")
    if capability is not None and capability not in ("perc", "text", "vis"):
        raise ValueError(f"sets.{name}: capability must be perc, text or vis, got {capability!r}")


def _specs(name: str, sources_cfg: Any) -> list[SourceSpec]:
    sources_cfg = _plain(sources_cfg)
    if isinstance(sources_cfg, Mapping) and "sources" in sources_cfg:
        sources_cfg = sources_cfg["sources"]
    if not isinstance(sources_cfg, Sequence) or isinstance(sources_cfg, str) or not sources_cfg:
        raise ValueError(f"sets.{name}: expected a non-empty list of sources, got {sources_cfg!r}")
    specs = [SourceSpec.from_dict(s, where=f"sets.{name}[{i}]") for i, s in enumerate(sources_cfg)]
    names = [s.name for s in specs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"sets.{name}: source name(s) {', '.join(dupes)} repeat; give each a distinct 'name'")
    return specs


def build_set(
    name: str,
    sources_cfg: Sequence[Mapping[str, Any]] | Any,
    out_dir: str | os.PathLike,
    *,
    seed: int = 0,
    val_fraction: float = 0.05,
    max_items: int | None = None,
    capability: str | None = None,
) -> dict[str, Any]:
    """Load, normalise, dedupe, split and write the set `name`; return its stats (also written)."""
    _check_args(name, val_fraction, max_items, capability)
    specs = _specs(name, sources_cfg)
    out_dir = Path(out_dir)
    paths = set_paths(out_dir, name)

    per_source: dict[str, dict[str, Any]] = {}
    kept: list[tuple[str, SourceItem]] = []
    seen: set[tuple[str, str | None]] = set()
    for spec in specs:
        result = load_source(spec)
        info = result.stats.to_dict()
        info.update(duplicates=0, duplicate_examples=[], capped=0)
        mine: list[SourceItem] = []
        for item in result.items:
            key = (normalise_question(item.example.question), item.image.sha256() if item.image else None)
            if key in seen:
                info["duplicates"] += 1
                if len(info["duplicate_examples"]) < PROBLEMS_KEPT:
                    info["duplicate_examples"].append(f"{item.where}: {item.example.id}")
                continue
            seen.add(key)
            mine.append(item)
        if spec.max_items is not None and len(mine) > spec.max_items:
            rng = random.Random(f"{seed}/{name}/{spec.name}/cap")
            chosen = sorted(rng.sample(range(len(mine)), spec.max_items))
            info["capped"] = len(mine) - spec.max_items
            mine = [mine[i] for i in chosen]
        info["used"] = len(mine)
        per_source[spec.name] = info
        kept.extend((spec.name, item) for item in mine)

    ids_renamed = _unique_ids([item.example for _, item in kept])
    if capability is not None:
        for _, item in kept:
            item.example.capability = capability

    random.Random(f"{seed}/{name}/shuffle").shuffle(kept)
    capped_total = 0
    if max_items is not None and len(kept) > max_items:
        capped_total = len(kept) - max_items
        kept = kept[:max_items]
    n_val = _n_val(len(kept), val_fraction)
    splits = {"val": kept[:n_val], "train": kept[n_val:]}

    n_images = _write_images(kept, paths["images"])
    for split in ("val", "train"):
        write_jsonl(paths[split], (item.example.to_dict() for _, item in splits[split]))

    skipped: dict[str, int] = {}
    for info in per_source.values():
        for reason, n in info["skipped"].items():
            skipped[reason] = skipped.get(reason, 0) + n
    examples = [item.example for _, item in kept]
    stats: dict[str, Any] = {
        "name": name,
        "seed": seed,
        "val_fraction": val_fraction,
        "max_items": max_items,
        "capability": capability,
        "sources": per_source,
        "rows": sum(info["rows"] for info in per_source.values()),
        "loaded": sum(info["kept"] for info in per_source.values()),
        "skipped": dict(sorted(skipped.items())),
        "skipped_total": sum(skipped.values()),
        "duplicates": sum(info["duplicates"] for info in per_source.values()),
        "capped": sum(info["capped"] for info in per_source.values()) + capped_total,
        "ids_renamed": ids_renamed,
        "train": len(splits["train"]),
        "val": len(splits["val"]),
        "images": n_images,
        "with_difficulty": sum(e.difficulty is not None for e in examples),
        "answer_types": _count(e.answer_type for e in examples),
        "by_source": {s: _count(item.example.source for _, item in splits[s]) for s in SPLITS},
        "files": {
            "train": paths["train"].name,
            "val": paths["val"].name,
            "images": paths["images"].name if n_images else None,
        },
    }
    write_json(paths["stats"], stats)
    return stats


def _n_val(n: int, val_fraction: float) -> int:
    """Validation size: round-half-up of n * fraction, at least 1 and leaving 1 for training;
    fraction 1 puts everything in val (a validation-only set such as geometry3k's test split)."""
    if val_fraction >= 1:
        return n
    if n < 2 or val_fraction <= 0:
        return 0
    return min(n - 1, max(1, math.floor(n * val_fraction + 0.5)))


def _count(values) -> dict[str, int]:
    out: dict[str, int] = {}
    for v in values:
        out[str(v)] = out.get(str(v), 0) + 1
    return dict(sorted(out.items()))


def _unique_ids(examples: list[Example]) -> int:
    """Make ids unique within the set (`id~2`, `id~3`, ...); returns how many were renamed."""
    taken = {e.id for e in examples}
    seen: set[str] = set()
    renamed = 0
    for e in examples:
        if e.id in seen:
            k = 2
            while f"{e.id}~{k}" in taken:
                k += 1
            e.id = f"{e.id}~{k}"
            taken.add(e.id)
            renamed += 1
        seen.add(e.id)
    return renamed


def _write_images(kept: list[tuple[str, SourceItem]], images_dir: Path) -> int:
    """Copy / decode every image the set uses into `images_dir` (atomically) and point each
    example's `image` at its path relative to that folder. Returns the number of files."""
    with_images = [(label, item) for label, item in kept if item.image is not None]
    if not with_images:
        if images_dir.exists():
            shutil.rmtree(images_dir)
        for _, item in kept:
            item.example.image = None
        return 0
    placed: dict[str, str] = {}  # relative path -> sha256
    with atomic_path(images_dir) as tmp:
        tmp.mkdir(parents=True)
        for label, item in with_images:
            ref = item.image
            assert ref is not None
            rel = f"{label}/{ref.name}"
            sha = ref.sha256()
            if placed.get(rel, sha) != sha:  # same name, other bytes: keep both
                p = PurePosixPath(rel)
                rel = str(p.with_name(f"{p.stem}-{sha[:12]}{p.suffix}"))
            if rel not in placed:
                dest = tmp / rel
                dest.parent.mkdir(parents=True, exist_ok=True)
                if ref.path is not None:
                    shutil.copyfile(ref.path, dest)
                else:
                    dest.write_bytes(ref.read_bytes())
                placed[rel] = sha
            item.example.image = rel
    return len(placed)


def read_set(out_dir: str | os.PathLike, name: str, split: str = "train") -> list[Example]:
    """The examples of a built set's split; `image` stays relative to `<out_dir>/<name>_images/`."""
    if split not in SPLITS:
        raise ValueError(f"split {split!r}: expected one of {', '.join(SPLITS)}")
    path = set_paths(out_dir, name)[split]
    return [Example.from_dict(row, f"{path}:{i + 1}") for i, row in enumerate(read_jsonl(path))]
