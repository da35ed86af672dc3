"""The `base` node: pre-train a tiny model on the world's pretrain split, then measure it on the
held-out test split per capability, each beside its no-look baseline."""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from capcurriculum.config import subtree
from capcurriculum.io import atomic_path, write_jsonl
from capcurriculum.runtime import seed_everything
from capcurriculum.sampling.batching import Item
from capcurriculum.sampling.capabilities import accuracy, generate, no_look_correct, score
from capcurriculum.sampling.vision_probe import probe_metrics
from capcurriculum.sampling.world_data import CAPABILITIES, WorldData
from capcurriculum.training.pretrain import MixtureSampler, PretrainConfig, pretrain

log = logging.getLogger(__name__)


def base_params(cfg: DictConfig, role: str) -> dict[str, Any]:
    return {"profile": cfg.profile, "seed": cfg.seed, "eval_n": cfg.base.eval_n,
            "pretrain": subtree(cfg.base.pretrain, role)[role], "model": subtree(cfg.models, role)[role],
            "checkpoints": list(cfg.dag.bases[role].checkpoints) if "dag" in cfg else []}


def evaluate_capabilities(model, processor, data: WorldData, n: int | None, *, split: str = "test",
                          baseline_split: str = "pretrain", lean: bool = False,
                          limits: dict[str, int | None] | None = None) -> tuple[dict[str, float], list[dict]]:
    """Greedy held-out accuracy per capability with standard error and the no-look baseline (`lean`: decoded
    through models/lean.py, the same tokens). `n`: the first n items of each capability's split (None: all);
    `limits`: another n for the named capabilities."""
    metrics: dict[str, float] = {}
    all_rows: list[dict] = []
    for cap, (name, mode) in CAPABILITIES.items():
        items = data.items(name, mode, split, limit=(limits or {}).get(cap, n))
        if not items:  # only off the world: a set that holds nothing out (sets.val_fraction: 0)
            log.warning("%s: no held-out items in %s's %s split; not measured", cap, name, split)
            continue
        rows = score(items, generate(model, processor, items, desc=f"eval {cap}", lean=lean))
        acc = accuracy([r["correct"] for r in rows])
        blind_flags = no_look_correct(data.examples(name, baseline_split), [it.example for it in items])
        blind = accuracy(blind_flags)
        metrics.update({f"{cap}/acc": acc["acc"], f"{cap}/se": acc["se"], f"{cap}/n": acc["n"],
                        f"{cap}/no_look": blind["acc"],
                        f"{cap}/mean_tokens": sum(r["n_tokens"] for r in rows) / max(1, len(rows))})
        log.info("%-12s acc %.3f ± %.3f (n=%d)  no-look %.3f", cap, acc["acc"], acc["se"], acc["n"], blind["acc"])
        metrics.update(_by_question_type(cap, items, [r["correct"] for r in rows], blind_flags))
        all_rows.extend(rows)
    return metrics, all_rows


def _by_question_type(cap: str, items: list[Item], correct: list[bool], blind: list[bool]) -> dict[str, float]:
    """`<cap>/<qtype>/acc|no_look|n` for sets whose examples carry `meta.qtype` (perception): one aggregate
    hides a capability that is at chance on colour and shape and well above it on size."""
    by_type: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        qtype = it.example.get("meta", {}).get("qtype")
        if qtype:
            by_type.setdefault(qtype, []).append(i)
    out: dict[str, float] = {}
    for qtype, idx in sorted(by_type.items()):
        acc, no_look = accuracy([correct[i] for i in idx]), accuracy([blind[i] for i in idx])
        out.update({f"{cap}/{qtype}/acc": acc["acc"], f"{cap}/{qtype}/no_look": no_look["acc"], f"{cap}/{qtype}/n": acc["n"]})
        log.info("  %-10s acc %.3f (n=%d)  no-look %.3f", qtype, acc["acc"], acc["n"], no_look["acc"])
    return out


CHECKPOINTS = "checkpoints"   # base@policy's earlier models, <out_dir>/checkpoints/step_<n>: the lineage filters


def checkpoint_dir(policy_dir: str | Path, step: int) -> Path:
    return Path(policy_dir) / CHECKPOINTS / f"step_{step}"


def build_base(cfg: DictConfig, role: str, *, init_dir: str | Path, raw_dir: str | Path, world_dir: str | Path,
               out_dir: str | Path, on_log: Callable[[int, dict], None] | None = None,
               checkpoints: list[int] | tuple[int, ...] = ()) -> dict[str, Any]:
    """`init_dir`: the role's init, or for a `lineage` filter the policy's base (whose `checkpoints` it copies).
    `checkpoints`: pre-training steps to keep under out_dir/checkpoints/ (the policy's, for lineage filters)."""
    from capcurriculum.models.loading import load_model_and_processor
    from capcurriculum.models.tiny import save_pretrained_dir

    init_dir, out_dir = Path(init_dir), Path(out_dir)
    spec = cfg.models[role]
    if spec.kind == "hub":
        # The paper's base models are the hub checkpoints themselves: pass the reference on.
        if out_dir.exists():
            shutil.rmtree(out_dir)
        shutil.copytree(init_dir, out_dir)
        return {}

    seed_everything(cfg.seed)
    data = WorldData(raw_dir, world_dir, on_error=cfg.raw.on_error)
    if spec.kind == "lineage":
        model, processor, history, train_s = _lineage(init_dir, role, int(spec.step), out_dir)
    else:
        pcfg = PretrainConfig(**OmegaConf.to_container(cfg.base.pretrain[role], resolve=True))
        model, processor = load_model_and_processor(init_dir)
        sampler = MixtureSampler(data.pools("pretrain"), pcfg.mixture, seed=cfg.seed)
        staging = out_dir.with_name(f".{out_dir.name}.staging")  # the checkpoints, until the final model is saved
        shutil.rmtree(staging, ignore_errors=True)
        t0 = time.time()
        history = pretrain(model, processor, sampler, pcfg, on_log=on_log, checkpoints=checkpoints,
                           on_checkpoint=lambda step: save_pretrained_dir(model, processor, checkpoint_dir(staging, step)))
        train_s = time.time() - t0
        save_pretrained_dir(model, processor, out_dir)
        if checkpoints:
            os.replace(staging / CHECKPOINTS, out_dir / CHECKPOINTS)
            shutil.rmtree(staging)
            log.info("%s: kept pre-training steps %s under %s", role, sorted(checkpoints), out_dir / CHECKPOINTS)

    t0 = time.time()
    metrics, rows = evaluate_capabilities(model, processor, data, cfg.base.eval_n)
    write_jsonl(out_dir / "eval" / "heldout.jsonl", rows)  # every response, to recompute any score
    # Whether the tower still carries what perception asks, beside whether the language model uses it.
    metrics.update(probe_metrics(model, processor, raw_dir, n_images=cfg.base.eval_n, seed=cfg.seed))
    metrics.update({"pretrain/final_loss": history[-1]["loss"] if history else float("nan"),
                    "pretrain/seconds": train_s, "eval/seconds": time.time() - t0})
    if spec.kind == "lineage":
        metrics["lineage/step"] = int(spec.step)
    return metrics


def _lineage(policy_dir: Path, role: str, step: int, out_dir: Path) -> tuple[Any, Any, list[dict], float]:
    """A lineage filter: the policy's pre-training at `step`, copied out of base@policy's checkpoints (its
    pre-training history is the policy's, so none of its own; its seconds are 0)."""
    from capcurriculum.models.loading import load_model_and_processor

    src = checkpoint_dir(policy_dir, step)
    if not (src / "config.json").is_file():
        kept = sorted(p.name for p in (policy_dir / CHECKPOINTS).glob("step_*")) if policy_dir.is_dir() else []
        raise FileNotFoundError(f"models.{role}.step: {step}: {src} is not among the policy's saved pre-training "
                                f"steps ({', '.join(kept) or 'none'}); re-run base@policy (dvc repro), which saves "
                                "dag.bases.policy.checkpoints")
    with atomic_path(out_dir) as tmp:
        shutil.copytree(src, tmp)
    log.info("%s: the policy's pre-training at step %d (%s)", role, step, src)
    model, processor = load_model_and_processor(out_dir)
    return model, processor, [], 0.0
