"""Run by tests/perception/test_vllm_nodes.py in a subprocess (vLLM spawns workers; it needs the guard).

    python tests/perception/vllm_nodes_script.py WORKDIR OUT_JSON

Builds a tiny world and untrained tiny models under WORKDIR, then runs the qa_generate and
perc_filter node functions once with the hf backend and once with the vllm backend, and writes
both runs' metrics and verdicts to OUT_JSON.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ROOT = Path(__file__).resolve().parents[2]
VLLM = {"backend": "vllm", "dtype": "float32", "gpu_memory_utilization": 0.1, "max_model_len": 1024,
        "enforce_eager": True, "limit_mm_per_prompt": {"image": 1, "video": 0}, "seed": 0, "progress": False,
        "engine_kwargs": {"kv_cache_memory_bytes": 256 * 2**20}}  # the automatic size can go negative here
HF = {"backend": "hf", "batch_size": 16, "threads": 1, "progress": False}


def main(work: Path, out: Path) -> None:
    from capcurriculum.config import compose
    from capcurriculum.io import read_jsonl
    from capcurriculum.models import (
        build_processor,
        build_tiny_model,
        save_pretrained_dir,
        tiny_config,
        train_tokenizer,
    )
    from capcurriculum.models.init import world_texts
    from capcurriculum.perception.pipeline import generate_candidates, run_filter
    from capcurriculum.world.build import build_world
    from capcurriculum.world.scene import WorldConfig

    raw, world, models = work / "raw", work / "world", work / "models"
    build_world(WorldConfig(seed=7, scenes={"pretrain": 0, "train": 6, "test": 0},
                            text_math={"pretrain": 0, "train": 0, "test": 0},
                            vis_math={"pretrain": 0, "train": 0, "test": 0}, perception_per_scene=3),
                raw, world, progress=False)
    processor = build_processor(train_tokenizer(world_texts(raw, world), vocab_size=640))
    model = build_tiny_model(tiny_config(processor.tokenizer), seed=0)
    with __import__("torch").no_grad():  # let some answers stop early, so eos handling is compared too
        model.lm_head.weight[processor.tokenizer.eos_token_id] *= 3.0
    save_pretrained_dir(model, processor, models / "filter_small")
    report = {}
    for name, backend in (("hf", HF), ("vllm", VLLM)):
        cfg = compose(["profile=smoke", "perception.filter.models=[filter_small]",
                       "perception.filter.audit_model=null", "perception.generation.llm.max_captions=2",
                       "perception.generation.llm.sampling.max_new_tokens=8",
                       "perception.generation.llm.sampling.temperature=0",
                       "perception.filter.sampling.max_new_tokens=10"], config_dir=ROOT / "conf")
        cfg.perception.generation.llm.model = str(models / "filter_small")
        cfg.perception.generation.llm.backend = backend
        cfg.perception.filter.backend = backend
        qa = generate_candidates(cfg, raw, world, work / name / "qa")
        filt = run_filter(cfg, work / name / "qa/candidates.jsonl", raw, models, work / name / "filter",
                          work / name / "sets")
        report[name] = {"qa": qa, "filter": filt,
                        "verdicts": read_jsonl(work / name / "filter/filter_verdicts.jsonl")}
    out.write_text(json.dumps(report))


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
