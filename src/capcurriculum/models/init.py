"""The `init_models` node: a tokenizer trained on the world's text, the processor, and one untrained
tiny Qwen3-VL per role (policy and the two filter models). Hub-backed roles get a model_ref.json."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from capcurriculum.config import MODEL_ROLES
from capcurriculum.io import iter_jsonl
from capcurriculum.prompts import CAPTION_PROMPT, REASONING_SUFFIX
from capcurriculum.settings import read

log = logging.getLogger(__name__)


def world_texts(raw_dir: Path, world_dir: Path) -> Iterator[str]:
    """Everything the tiny models will read or write: captions, questions, answers, traces, prompts."""
    yield CAPTION_PROMPT
    yield f"Caption: {REASONING_SUFFIX}"
    for _, rec in iter_jsonl(raw_dir / "docci_descriptions.jsonlines"):
        yield rec["description"]
    for path in sorted(world_dir.glob("*.jsonl")):
        for _, ex in iter_jsonl(path):
            yield ex["question"]
            yield str(ex["answer"])
            if (ex.get("meta") or {}).get("trace"):
                yield ex["meta"]["trace"]


def init_models(cfg: DictConfig, raw_dir: str | Path, world_dir: str | Path, out_dir: str | Path) -> dict[str, Any]:
    from capcurriculum.models.loading import count_parameters, write_model_ref
    from capcurriculum.models.tiny import (build_processor, build_tiny_model,
                                           save_pretrained_dir, tiny_config)
    from capcurriculum.models.tokenizer import train_tokenizer

    raw_dir, world_dir, out_dir = Path(raw_dir), Path(world_dir), Path(out_dir)
    metrics: dict[str, Any] = {}
    tiny_roles = [r for r in MODEL_ROLES if cfg.models[r].kind == "tiny"]
    processor = None
    if tiny_roles:
        tokenizer = train_tokenizer(world_texts(raw_dir, world_dir), cfg.tokenizer.vocab_size)
        processor = build_processor(tokenizer, image_size=cfg.world.image_size)
        metrics["tokenizer/vocab_size"] = len(tokenizer)
        log.info("trained a %d-token tokenizer on the world's text", len(tokenizer))
    for role in MODEL_ROLES:
        spec = cfg.models[role]
        if spec.kind == "lineage":  # the policy's own pre-training at a step (base@<role> copies it): no init
            log.info("%s: the policy's pre-training at step %d", role, spec.step)
            continue
        if spec.kind == "hub":
            write_model_ref(out_dir / role, spec.hub_id, read.present(cfg, f"models.{role}.revision"))
            log.info("%s: hub model %s", role, spec.hub_id)
            continue
        sizes = OmegaConf.to_container(spec.size, resolve=True)
        model = build_tiny_model(tiny_config(processor.tokenizer, image_size=cfg.world.image_size, **sizes),
                                 seed=spec.seed)
        save_pretrained_dir(model, processor, out_dir / role)
        counts = count_parameters(model)
        metrics.update({f"{role}/params_{k}": v for k, v in counts.items()})
        log.info("%s: tiny Qwen3-VL with %s parameters", role, counts)
    return metrics
