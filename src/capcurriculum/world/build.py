"""Building the world: raw scenes in DOCCI's exact layout, plus the three capability sets.

`raw_dir` is read by the same loader as the real DOCCI download, so the tiny profile exercises the
paper's path end to end; `ground_truth.jsonl` beside it lets tests and error attribution check what
captions and answers claim. Each random stream is seeded by (seed, split, purpose), so changing one
count never reshuffles another split's data, and both directories appear whole or not at all.
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from ..io import atomic_path, read_jsonl, write_json, write_jsonl
from .describe import describe_scene, list_scene
from .render import render_scene, save_jpeg
from .scene import BACKGROUND, SPLITS, Scene, WorldConfig, WorldObject, sample_scene
from .tasks import perception_questions, six_type_questions, text_math, vis_math

DESCRIPTIONS_FILE = "docci_descriptions.jsonlines"
GROUND_TRUTH_FILE = "ground_truth.jsonl"
IMAGES_DIR = "images"
VIS_IMAGES_DIR = "vis_images"
MANIFEST_FILE = "manifest.json"


def _rng(cfg: WorldConfig, split: str, purpose: str) -> random.Random:
    return random.Random(f"{cfg.seed}/{split}/{purpose}")  # str seeds hash with SHA-512: stable


def _scenes(cfg: WorldConfig, split: str, pool: str, n: int, image_dir: Path, bar: tqdm) -> list[Scene]:
    """Sample, render and save `n` scenes named `<pool>_<split>_<index>`."""
    rng = _rng(cfg, split, pool)
    scenes = []
    for i in range(n):
        scene = sample_scene(cfg, f"{pool}_{split}_{i:06d}", rng)
        save_jpeg(render_scene(scene, cfg.image_size), image_dir / scene.image_file)
        scenes.append(scene)
        bar.update()
    return scenes


def build_world(
    cfg: WorldConfig, raw_dir: str | os.PathLike, sets_dir: str | os.PathLike, progress: bool = True
) -> dict[str, float]:
    """Write the raw corpus and the sets; return counts (and build seconds) for metrics.

    raw_dir:  docci_descriptions.jsonlines, ground_truth.jsonl, images/<example_id>.jpg
    sets_dir: perception_<split>.jsonl, text_math_<split>.jsonl, vis_math_<split>.jsonl,
              vis_images/<id>.jpg, manifest.json
    Version 2 (`cfg.version`) captions list every cell (`list_scene`), its perception files hold identify and
    group-count questions, and perception_v1_<split>.jsonl asks the first world's six types of the same scenes
    (the secondary table; its own random stream, so the primary questions do not depend on it).
    """
    start = time.perf_counter()
    metrics: dict[str, float] = {f"scenes.{split}": n for split, n in cfg.scenes.items()}
    total_scenes = sum(cfg.scenes.values()) + sum(cfg.vis_math.values())
    with (
        atomic_path(raw_dir) as raw,
        atomic_path(sets_dir) as sets,
        tqdm(total=total_scenes, desc="world scenes", unit="scene", disable=not progress) as bar,
    ):
        (raw / IMAGES_DIR).mkdir(parents=True)
        (sets / VIS_IMAGES_DIR).mkdir(parents=True)
        descriptions, truths, files = [], [], {}
        for split in SPLITS:
            scenes = _scenes(cfg, split, "world", cfg.scenes[split], raw / IMAGES_DIR, bar)
            describe_rng = _rng(cfg, split, "describe")
            for scene in scenes:
                descriptions.append(
                    {
                        "example_id": scene.id,
                        "split": split,
                        "image_file": scene.image_file,
                        "description": describe_scene(scene, describe_rng)
                        if cfg.version == 1
                        else list_scene(scene, cfg, describe_rng),
                    }
                )
                truths.append(
                    {
                        "example_id": scene.id,
                        "objects": [o.to_dict() for o in scene.objects],
                        "image_size": cfg.image_size,
                        "grid": cfg.grid,
                    }
                )
            vis_scenes = _scenes(cfg, split, "vis", cfg.vis_math[split], sets / VIS_IMAGES_DIR, bar)
            made = {
                "perception": perception_questions(scenes, cfg, _rng(cfg, split, "perception")),
                "text_math": text_math(
                    cfg.text_math[split], _rng(cfg, split, "text_math"), f"text_math_{split}"
                ),
                "vis_math": vis_math(vis_scenes, cfg, _rng(cfg, split, "vis_math")),
            }
            if cfg.version == 2:
                made["perception_v1"] = six_type_questions(scenes, cfg, _rng(cfg, split, "perception_v1"))
            for name, examples in made.items():
                n = write_jsonl(sets / f"{name}_{split}.jsonl", (e.to_dict() for e in examples))
                files[f"{name}_{split}.jsonl"] = metrics[f"{name}.{split}"] = n
        raw_counts = {
            DESCRIPTIONS_FILE: write_jsonl(raw / DESCRIPTIONS_FILE, descriptions),
            GROUND_TRUTH_FILE: write_jsonl(raw / GROUND_TRUTH_FILE, truths),
        }
        write_json(
            sets / MANIFEST_FILE,
            {
                "config": cfg.to_dict(),
                "files": files,
                "raw": raw_counts,
                VIS_IMAGES_DIR: sum(cfg.vis_math.values()),
            },
        )
    metrics["images"] = total_scenes
    metrics["build_seconds"] = round(time.perf_counter() - start, 2)
    return metrics


def scene_from_record(row: Mapping[str, Any]) -> Scene:
    """A Scene from a ground_truth.jsonl row {"example_id", "objects", "grid"} (no background kept)."""
    try:
        objects = tuple(WorldObject(**o) for o in row["objects"])
        return Scene(id=str(row["example_id"]), grid=int(row["grid"]), objects=objects, background=BACKGROUND)
    except (KeyError, TypeError) as e:
        where = f"ground-truth row {row.get('example_id', '?')!r}"
        raise ValueError(f"{where}: not a scene record ({e})") from None


def ground_truth_scenes(raw_dir: str | os.PathLike) -> dict[str, Scene]:
    """The raw scenes (perception items' meta["scene_id"]) from raw_dir/ground_truth.jsonl."""
    return {s.id: s for s in map(scene_from_record, read_jsonl(Path(raw_dir) / GROUND_TRUTH_FILE))}
