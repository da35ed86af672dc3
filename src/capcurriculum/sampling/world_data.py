"""The world's sets as prompt items, and the capabilities the held-out passes measure on them: what pre-training
draws from, and what the training nodes' held-out passes and the evaluate nodes' tiny benchmarks score."""

from __future__ import annotations

import logging
from pathlib import Path

from capcurriculum.answers import gold_is_gradeable
from capcurriculum.data.docci import load_docci
from capcurriculum.data.schema import Example
from capcurriculum.io import read_jsonl
from capcurriculum.sampling.batching import Item

log = logging.getLogger(__name__)

# curriculum set -> the prompt mode its items are asked in
SET_MODES = {"perc": "perc_image", "text": "text_math", "vis": "vis_math"}

# capability -> (world set, prompt mode). Perception is measured twice: from the image, and from
# the caption alone (which real VLMs, and so our base models, find easier).
CAPABILITIES = {
    "perc_image": ("perception", "perc_image"),
    "perc_caption": ("perception", "perc_caption"),
    "text_math": ("text_math", "text_math"),
    "vis_math": ("vis_math", "vis_math"),
}


class WorldData:
    """The world's sets as prompt items: images resolved, captions joined to perception questions."""

    held_out_split, baseline_split = "test", "pretrain"  # what the held-out passes measure on / a blind answer learns

    def __init__(self, raw_dir: str | Path, world_dir: str | Path, on_error: str = "raise"):
        self.raw_dir, self.world_dir = Path(raw_dir), Path(world_dir)
        self.corpus = load_docci(self.raw_dir, on_error=on_error)
        self.captions = {r.example_id: r.description for r in self.corpus.records}

    def examples(self, name: str, split: str) -> list[dict]:
        return read_jsonl(self.world_dir / f"{name}_{split}.jsonl")

    def items(self, name: str, mode: str, split: str, limit: int | None = None) -> list[Item]:
        rows = self.examples(name, split)[:limit]
        image_root = self.raw_dir / "images" if name == "perception" else self.world_dir / "vis_images"
        out = []
        for ex in rows:
            image = str(image_root / ex["image"]) if ex.get("image") else None
            caption = self.captions.get(ex.get("meta", {}).get("scene_id")) if mode == "perc_caption" else None
            out.append(Item(ex, mode, image_path=image, caption=caption))
        return out

    def caption_items(self, split: str) -> list[Item]:
        return [Item({"id": r.example_id, "question": "", "answer": "", "answer_type": "text"}, "caption",
                     image_path=str(r.image_path), caption=r.description) for r in self.corpus.by_split(split)]

    def pools(self, split: str = "pretrain") -> dict[str, list[Item]]:
        pools = {mode: self.items(name, mode, split) for name, mode in CAPABILITIES.values()}
        pools["caption"] = self.caption_items(split)
        return pools


def set_file(sets_dir: Path, name: str, split: str) -> Path:
    return sets_dir / name / f"{name}_{split}.jsonl"


def load_set_items(name: str, sets_dir: str | Path, raw_dir: str | Path, split: str = "train"
                   ) -> tuple[list[Item], dict[str, int]]:
    """A curriculum set as prompt items; items whose gold answer cannot be graded are skipped and counted."""
    sets_dir, raw_dir = Path(sets_dir), Path(raw_dir)
    path = set_file(sets_dir, name, split)
    if not path.exists():
        raise FileNotFoundError(f"{path}: the {name!r} set is missing (its DVC node writes it)")
    image_root = raw_dir / "images" if name == "perc" else sets_dir / name / f"{name}_images"
    items, skipped = [], 0
    for i, row in enumerate(read_jsonl(path), 1):
        ex = Example.from_dict(row, where=f"{path}:{i}").to_dict()
        if not gold_is_gradeable(ex["answer"], ex["answer_type"]):
            skipped += 1
            log.warning("%s:%d: gold answer %r cannot be graded; skipped", path, i, ex["answer"])
            continue
        image = str(image_root / ex["image"]) if ex.get("image") else None
        items.append(Item(ex, SET_MODES[name], image_path=image))
    return items, {f"data/{name}/items": len(items), f"data/{name}/skipped_ungradeable": skipped}
