"""Prepare a paper-shaped dry run: everything the `paper` profile needs but cannot reach here, built offline.

    python -m capcurriculum.dryrun /abs/dryrun                      # writes the directory below
    python -m capcurriculum.config profile=paper_dry dryrun.dir=/abs/dryrun   # params.yaml for `dvc repro`
    dvc repro                                                        # every node, on the paper path

The `paper_dry` profile (conf/profile/paper_dry.yaml) is the paper profile with only these pieces swapped;
every node runs the paper's code path (DOCCI loader, hub-id model pointers, the ORZ and VLAA-Thinking
adapters, the LLM QA writer, the two-model differential filter, the trl engine under accelerate and DeepSpeed,
the eight benchmarks' adapters and scoring). What is written, in each source's layout:

    docci/docci_descriptions.jsonlines, docci/images/   DOCCI's release layout (raw.docci.local_dir), scenes
                                                       rendered by the synthetic world (src/capcurriculum/world)
    orz_math/orz_math_13k_collection_hard.json          Open-Reasoner-Zero's list of conversations (D_text)
    vlaa_thinking/VLAA-Thinking-GRPO-25K.json, images/  VLAA-Thinking's GRPO file, images/clevr_math/... (D_vis)
    perception/perception_train.jsonl                   the world's template questions about the train scenes, as
                                                       4-option multiple choice (a random QA writer's text does
                                                       not parse: issue 41, item 7)
    models/policy                                       Qwen3-VL (the paper's Qwen3-VL-8B), random weights
    models/filter_small, models/filter_large            Qwen2.5-VL (the paper's -7B and -32B), random weights
    models/qa_writer                                    Qwen2 text LLM (the paper's Qwen2.5-72B), random weights
    manifest.json                                       what was built, its sizes and counts, and how to use it

The stand-ins share one byte-level BPE trained on the corpus (models/tokenizer.py). Nothing here touches
a network; the same arguments give the same files (the world and the weights are seeded).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capcurriculum.io import atomic_path, read_jsonl, write_json, write_jsonl

log = logging.getLogger(__name__)

MANIFEST = "manifest.json"
DOCCI_DIR = "docci"
ORZ_FILE = "orz_math/orz_math_13k_collection_hard.json"
VLAA_FILE = "vlaa_thinking/VLAA-Thinking-GRPO-25K.json"
VLAA_FOLDER = "clevr_math"   # the world's visual math is counting + arithmetic: CLEVR-Math's kind of question
TEMPLATE_FILE = "perception/perception_train.jsonl"
MODEL_ROLES = {  # role -> (stand-in architecture, the paper's model it stands in for)
    "policy": ("qwen3_vl", "Qwen/Qwen3-VL-8B-Instruct"),
    "filter_small": ("qwen2_5_vl", "Qwen/Qwen2.5-VL-7B-Instruct"),
    "filter_large": ("qwen2_5_vl", "Qwen/Qwen2.5-VL-32B-Instruct"),
    "qa_writer": ("qwen2", "Qwen/Qwen2.5-72B-Instruct"),
}


@dataclass
class DryRunSpec:
    """Sizes of a dry run. Defaults: a few dozen scenes, seconds a node on two CPU cores."""

    seed: int = 0
    train_scenes: int = 24
    test_scenes: int = 8
    perception_per_scene: int = 6    # one question of each type a scene; the four with four options stay
    text_math: int = 32
    vis_math: int = 24
    vocab_size: int = 420
    # per role, keywords of the architecture's config (models/standins.py); the large filter is the larger one,
    # as 32B is to 7B
    sizes: dict[str, dict[str, Any]] = field(default_factory=lambda: {
        "policy": {},
        "filter_small": {},
        "filter_large": {"num_layers": 3, "intermediate_size": 768},
        "qa_writer": {},
    })

    def world_config(self):
        from capcurriculum.world.scene import WorldConfig

        return WorldConfig(
            seed=self.seed,
            scenes={"pretrain": 0, "train": self.train_scenes, "test": self.test_scenes},
            text_math={"pretrain": 0, "train": self.text_math, "test": 0},
            vis_math={"pretrain": 0, "train": self.vis_math, "test": 0},
            perception_per_scene=self.perception_per_scene,
        )


def orz_rows(examples: list[dict]) -> list[list[dict]]:
    """The world's text math as Open-Reasoner-Zero's conversations (what the orz_math adapter reads)."""
    return [[{"from": "human", "value": ex["question"]},
             {"from": "assistant", "ground_truth": {"value": ex["answer"]}}] for ex in examples]


def vlaa_rows(examples: list[dict]) -> list[dict]:
    """The world's visual math as VLAA-Thinking GRPO rows: ids `<folder>-<file>`, images `<folder>/<file>`."""
    return [{
        "id": f"{VLAA_FOLDER}-{ex['image']}",
        "image": f"{VLAA_FOLDER}/{ex['image']}",
        "question": ex["question"],
        "gt": int(ex["answer"]) if ex["answer_type"] == "number" else ex["answer"],
        "ds_answer": f"<think>\n{ex['meta'].get('trace', '')}\n</think>\n\n\\boxed{{{ex['answer']}}}",
        "caption": "",
        "meta": {"caption_model_id": "capcurriculum-world", "rationale": ex["meta"].get("trace", "")},
    } for ex in examples]


def mcq_templates(examples: list[dict], seed: int = 0) -> list[dict]:
    """The world's short-answer perception questions as the paper's 4-option multiple choice (what the
    `mcq` candidate format requires): the answer among three distractors of its kind, in a seeded order, the
    answer a letter. Yes/no questions have no four options and are left out."""
    from capcurriculum.world.scene import PALETTE, SHAPES

    pools = {"color": list(PALETTE), "shape": [*SHAPES, "star", "hexagon"], "size": ["small", "large", "medium", "tiny"],
             "count": [str(n) for n in range(10)]}
    out = []
    for ex in examples:
        pool = pools.get(ex["meta"]["qtype"])
        if pool is None or ex["answer"] not in pool:
            continue
        rng = random.Random(f"{seed}/{ex['id']}")   # str seeds hash with SHA-512: stable
        choices = [ex["answer"], *rng.sample([c for c in pool if c != ex["answer"]], 3)]
        rng.shuffle(choices)
        out.append({**ex, "answer": "ABCD"[choices.index(ex["answer"])], "answer_type": "choice",
                    "choices": choices})
    return out


PAPER_BENCHMARKS = ("mathvista", "mathvision", "mathverse", "wemath", "aokvqa", "realworldqa", "mmstar", "pope")
BENCHMARK_DIR = "benchmarks"
_IMAGE_PX = 64  # the stand-in images: large enough for the Qwen-VL processors' minimum (28 px a side)


def write_benchmark_rows(name: str, out_file: Path) -> int:
    """A benchmark's hand-made rows in its hub dataset's column layout (evaluation/benchmarks/rows/<name>.jsonl,
    what the adapters' tests read) as a Parquet file that `datasets` reads as the hub's: image cells (written
    {"png_rgb": [r, g, b]} there) become Image columns of solid-colour PNGs, decoded when read. Returns the row
    count."""
    import io

    from datasets import Dataset
    from datasets import Image as ImageFeature
    from PIL import Image

    import capcurriculum.evaluation.benchmarks as benchmarks

    def png(rgb: list[int]) -> dict[str, Any]:
        buf = io.BytesIO()
        Image.new("RGB", (_IMAGE_PX, _IMAGE_PX), tuple(rgb)).save(buf, format="PNG")
        return {"bytes": buf.getvalue(), "path": None}

    rows = read_jsonl(Path(benchmarks.__file__).parent / "rows" / f"{name}.jsonl")
    images = sorted({k for r in rows for k, v in r.items() if isinstance(v, dict) and set(v) == {"png_rgb"}})
    # an image column holds images or nulls (a fixture's "" for MathVerse's text-only version becomes a null)
    rows = [{k: (png(v["png_rgb"]) if isinstance(v, dict) else None) if k in images else v for k, v in r.items()}
            for r in rows]
    ds = Dataset.from_list(rows)
    for column in images:
        ds = ds.cast_column(column, ImageFeature())
    out_file.parent.mkdir(parents=True, exist_ok=True)
    ds.to_parquet(str(out_file))
    return len(rows)


def prepare(out_dir: str | os.PathLike, spec: DryRunSpec | None = None, *, progress: bool = False) -> dict[str, Any]:
    """Write the dry-run directory (atomically: it appears whole or not at all; an existing one is replaced)
    and return its manifest."""
    from capcurriculum.models.standins import build_standin
    from capcurriculum.models.tokenizer import train_tokenizer
    from capcurriculum.world.build import build_world

    spec = spec or DryRunSpec()
    out_dir = Path(out_dir).expanduser().resolve()
    world_cfg = spec.world_config()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(out_dir) as tmp, tempfile.TemporaryDirectory(prefix="world-", dir=out_dir.parent) as scratch:
        raw, sets = Path(scratch) / "raw", Path(scratch) / "sets"
        world_counts = build_world(world_cfg, raw, sets, progress=progress)
        tmp.mkdir(parents=True)

        # DOCCI's release layout: the descriptions file and images/ (the world's ground truth stays behind)
        docci = tmp / DOCCI_DIR
        docci.mkdir()
        shutil.copy2(raw / "docci_descriptions.jsonlines", docci / "docci_descriptions.jsonlines")
        shutil.copytree(raw / "images", docci / "images")

        text = read_jsonl(sets / "text_math_train.jsonl")
        (tmp / ORZ_FILE).parent.mkdir(parents=True)
        (tmp / ORZ_FILE).write_text(json.dumps(orz_rows(text), indent=1) + "\n", encoding="utf-8")

        vis = read_jsonl(sets / "vis_math_train.jsonl")
        vlaa = tmp / VLAA_FILE
        (vlaa.parent / "images" / VLAA_FOLDER).mkdir(parents=True)
        for ex in vis:
            shutil.copy2(sets / "vis_images" / ex["image"], vlaa.parent / "images" / VLAA_FOLDER / ex["image"])
        vlaa.write_text(json.dumps(vlaa_rows(vis), indent=1) + "\n", encoding="utf-8")

        templates = mcq_templates(read_jsonl(sets / "perception_train.jsonl"), seed=spec.seed)
        write_jsonl(tmp / TEMPLATE_FILE, templates)

        captions = [r["description"] for r in read_jsonl(raw / "docci_descriptions.jsonlines")]
        corpus = captions + [ex["question"] + " " + ex["answer"] for ex in text + vis + templates]
        tokenizer = train_tokenizer(corpus, vocab_size=spec.vocab_size)
        models = {}
        for k, (role, (arch, paper_model)) in enumerate(MODEL_ROLES.items()):
            sizes = dict(spec.sizes.get(role, {}))
            build_standin(arch, tokenizer, tmp / "models" / role, seed=spec.seed + k, **sizes)
            models[role] = {"architecture": arch, "stands_in_for": paper_model, "sizes": sizes,
                            "path": f"models/{role}"}

        benchmark_rows = {name: write_benchmark_rows(name, tmp / BENCHMARK_DIR / f"{name}.parquet")
                          for name in PAPER_BENCHMARKS}

        manifest = {
            "dir": str(out_dir),
            "spec": {k: v for k, v in spec.__dict__.items()},
            "docci": {"dir": DOCCI_DIR, "records": len(captions),
                      "splits": {"train": spec.train_scenes, "test": spec.test_scenes}},
            "orz_math": {"file": ORZ_FILE, "rows": len(text)},
            "vlaa_thinking": {"file": VLAA_FILE, "rows": len(vis), "subset": VLAA_FOLDER},
            "perception_templates": {"file": TEMPLATE_FILE, "rows": len(templates)},
            "models": models,
            "benchmarks": {"dir": BENCHMARK_DIR, "rows": benchmark_rows},
            "tokenizer": {"vocab_size": len(tokenizer)},
            "world": {k: v for k, v in world_counts.items() if k != "build_seconds"},
            "use": [f"python -m capcurriculum.config profile=paper_dry dryrun.dir={out_dir}",
                    "dvc repro"],
        }
        write_json(tmp / MANIFEST, manifest)
    return manifest


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description="Prepare a paper-shaped dry run's local data and stand-in models.")
    ap.add_argument("out_dir", help="where to write it (made absolute; the profile needs absolute paths)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--train-scenes", type=int, default=DryRunSpec.train_scenes)
    ap.add_argument("--test-scenes", type=int, default=DryRunSpec.test_scenes)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    manifest = prepare(args.out_dir, DryRunSpec(seed=args.seed, train_scenes=args.train_scenes,
                                                test_scenes=args.test_scenes), progress=True)
    print(f"wrote {manifest['dir']}: {manifest['docci']['records']} DOCCI records, "
          f"{manifest['orz_math']['rows']} ORZ rows, {manifest['vlaa_thinking']['rows']} VLAA-Thinking rows, "
          f"{len(manifest['models'])} stand-in models")
    print("next:\n  " + "\n  ".join(manifest["use"]))


if __name__ == "__main__":
    main()
