"""The two perception-data nodes: `qa_generate` (captions -> candidate QA) and `perc_filter`
(candidates -> per-model answers and verdicts -> D_perc = the intersection, split)."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from capcurriculum.data.docci import load_docci
from capcurriculum.generation import Request, SamplingConfig, make_backend
from capcurriculum.io import read_jsonl, write_jsonl
from capcurriculum.perception.filter import (
    ask_filter_models,
    split_kept,
    verdict_counts,
)
from capcurriculum.perception.qa_generation import CandidateCollector, load_qa_prompt
from capcurriculum.settings.perception import PerceptionSettings

log = logging.getLogger(__name__)


def _plain(node: Any) -> Any:
    return OmegaConf.to_container(node, resolve=True) if isinstance(node, DictConfig) else node


def generate_candidates(cfg: DictConfig, raw_dir: str | Path, world_dir: str | Path, out_dir: str | Path) -> dict:
    gcfg, perception = cfg.perception.generation, PerceptionSettings.from_config(cfg)
    raw_dir, world_dir, out_dir = Path(raw_dir), Path(world_dir), Path(out_dir)
    corpus = load_docci(raw_dir, splits=[cfg.perception.split], on_error=cfg.raw.on_error)
    records = corpus.records[: gcfg.max_captions] if gcfg.max_captions else corpus.records
    collector = CandidateCollector(gcfg.format, gcfg.max_answer_words)
    llm_captions = llm_failed = 0

    if gcfg.llm.enabled:
        template = load_qa_prompt(gcfg.prompt)
        asked = records[: gcfg.llm.max_captions] if gcfg.llm.max_captions else records
        requests = [Request.from_prompt(r.example_id, template.format(
            caption=r.description, n=gcfg.questions_per_caption, max_words=gcfg.max_answer_words))
            for r in asked]
        log.info("asking %s for questions on %d captions", gcfg.llm.model, len(requests))
        with make_backend(_plain(gcfg.llm.backend), gcfg.llm.model) as backend:
            results = backend.generate(requests, SamplingConfig.from_mapping(_plain(gcfg.llm.sampling)))
        llm_captions = len(asked)
        failed = [res for res in results if not res.ok]
        if asked and len(failed) == len(asked):  # an unreachable server or a broken engine, not bad text
            raise RuntimeError(f"qa_generate: all {len(asked)} requests to {gcfg.llm.model} failed "
                               f"(perception.generation.llm); the first: {failed[0].error}")
        if failed:
            log.warning("%d of %d LLM requests failed (counted as llm_failed); the first: %s", len(failed),
                        len(asked), failed[0].error)
        llm_failed = len(failed)
        for rec, res in zip(asked, results, strict=True):
            collector.add_output(rec, res.text if res.ok else None, res.error, generator="llm")

    template_file = perception.template_file
    if perception.template or template_file:
        # The world knows each scene's truth: its questions are exact (CPU profiles, from data/world; the
        # paper-shaped dry run, from `template_file`, the world's questions about the scenes its DOCCI holds).
        wanted = {r.example_id: r for r in records}
        rows = (read_jsonl(template_file) if template_file else
                template_questions(cfg, raw_dir, world_dir, set(wanted), perception.template_per_scene))
        for ex in rows:
            rec = wanted.get(ex["meta"]["scene_id"])
            if rec is not None:
                collector.add_item(rec, {"question": ex["question"], "answer": ex["answer"], "choices": ex.get("choices"),
                                         "type": ex["meta"]["qtype"]}, generator="template")

    if not collector.examples:
        raise RuntimeError(f"qa_generate: no candidate question from {len(records)} captions ({llm_captions} asked "
                           f"of the LLM, {len(collector.unparseable)} outputs unparseable; "
                           f"perception.generation.template: {perception.template}, template_file: {template_file}): "
                           "nothing for the filter to keep")
    write_jsonl(out_dir / "candidates.jsonl", (e.to_dict() for e in collector.examples))
    write_jsonl(out_dir / "unparseable.jsonl", collector.unparseable)
    metrics = {"captions": len(records), "llm_captions": llm_captions, "llm_failed": llm_failed,
               **collector.metrics()}
    log.info("candidates: %s", metrics)
    return metrics


def template_questions(cfg: DictConfig, raw_dir: Path, world_dir: Path, scene_ids: set[str],
                       k: int | None) -> list[dict]:
    """The world's own perception questions of the split, or, with `k` (perception.generation.template_per_scene),
    k fresh ones per scene of `scene_ids` asked of its ground truth (a larger pool for D_perc, the world's files
    unchanged)."""
    split = cfg.perception.split
    if k is None:
        return read_jsonl(world_dir / f"perception_{split}.jsonl")
    from capcurriculum.world.build import MANIFEST_FILE, ground_truth_scenes
    from capcurriculum.world.scene import WorldConfig
    from capcurriculum.world.tasks import perception_questions

    manifest = json.loads((world_dir / MANIFEST_FILE).read_text())
    world = WorldConfig(**{**manifest["config"], "perception_per_scene": k})
    scenes = [s for s in ground_truth_scenes(raw_dir).values() if s.id in scene_ids]
    rng = random.Random(f"{cfg.seed}/{split}/qa_template")  # str seeds hash with SHA-512: stable
    return [e.to_dict() for e in perception_questions(scenes, world, rng)]


def run_filter(cfg: DictConfig, candidates: str | Path, raw_dir: str | Path, models_dir: str | Path,
               out_dir: str | Path, sets_dir: str | Path) -> dict:
    fcfg, perception = cfg.perception.filter, PerceptionSettings.from_config(cfg)  # checked before any model runs
    raw_dir, models_dir, out_dir, sets_dir = map(Path, (raw_dir, models_dir, out_dir, sets_dir))
    examples = read_jsonl(candidates)
    captions = {r.example_id: r.description for r in load_docci(raw_dir, on_error=cfg.raw.on_error).records}
    images = raw_dir / "images"
    sampling = SamplingConfig.from_mapping(_plain(fcfg.sampling))
    metrics: dict[str, Any] = {"candidates": len(examples)}

    def open_model(role: str):
        return make_backend(_plain(fcfg.backend), models_dir / role)

    records, keep = ask_filter_models(examples, captions, images, list(fcfg.models), open_model, sampling,
                                      cascade=bool(fcfg.cascade))
    for role in fcfg.models:
        metrics.update(verdict_counts([r for r in records if r["model"] == role], role))
    kept = [ex for ex in examples if keep[ex["id"]]]
    splits = split_kept(kept, list(fcfg.split), seed=cfg.seed)
    for name, rows in splits.items():
        write_jsonl(sets_dir / f"perc_{name}.jsonl", rows)
        metrics[f"perc/{name}"] = len(rows)
    write_jsonl(out_dir / "filter_verdicts.jsonl", records)
    metrics["kept_intersection"] = len(kept)
    metrics["kept_fraction"] = len(kept) / max(1, len(examples))
    if fcfg.audit_model:
        metrics.update(audit(examples, keep, models_dir / fcfg.audit_model, raw_dir, fcfg, sampling,
                             cap=perception.audit_max_dropped, seed=cfg.seed))
    log.info("filter: %s", metrics)
    return metrics


def audit(examples, keep, model_ref, raw_dir: Path, fcfg, sampling, *, cap: int | None,
          seed: int = 0) -> dict[str, float]:
    """Does the filter do what the paper says? The policy's image-only accuracy, kept vs dropped: every
    kept item, and a seeded sample of at most `cap` (perception.filter.audit_max_dropped) dropped ones (None: all
    of them)."""
    from capcurriculum.answers import extract_answer, gold_is_gradeable, matches
    from capcurriculum.prompts import build_messages

    dropped_ids = [ex["id"] for ex in examples if not keep[ex["id"]]]
    if cap is not None and len(dropped_ids) > cap:
        dropped_ids = random.Random(seed).sample(dropped_ids, cap)
    asked = set(dropped_ids)
    examples = [ex for ex in examples if keep[ex["id"]] or ex["id"] in asked]
    reqs = [Request(build_messages(ex, "perc_image", image=str(raw_dir / "images" / ex["image"])), id=ex["id"])
            for ex in examples]
    with make_backend(_plain(fcfg.backend), model_ref) as backend:
        results = backend.generate(reqs, sampling)
    right = {r.id: r.ok and gold_is_gradeable(ex["answer"], ex["answer_type"])
             and matches(extract_answer(r.text), ex["answer"], ex["answer_type"])
             for r, ex in zip(results, examples, strict=True)}
    kept = [right[ex["id"]] for ex in examples if keep[ex["id"]]]
    dropped = [right[ex["id"]] for ex in examples if not keep[ex["id"]]]
    return {"audit/policy_image_acc_kept": sum(kept) / max(1, len(kept)),
            "audit/policy_image_acc_dropped": sum(dropped) / max(1, len(dropped)),
            "audit/n_kept": len(kept), "audit/n_dropped": len(dropped)}
