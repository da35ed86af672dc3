"""The raw corpus in DOCCI's layout: the synthetic world (CPU profiles) or DOCCI itself (paper)."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from capcurriculum.data.docci import load_docci, verify_images
from capcurriculum.data.download import fetch_docci
from capcurriculum.io import write_json

log = logging.getLogger(__name__)


def build_raw(cfg: DictConfig, raw_dir: str | Path, world_dir: str | Path) -> dict[str, Any]:
    """Write the raw corpus (and, for the world, its math and perception sets); return metrics."""
    raw_dir, world_dir = Path(raw_dir), Path(world_dir)
    metrics: dict[str, Any] = {}
    if cfg.raw.source == "world":
        from capcurriculum.world.build import build_world
        from capcurriculum.world.scene import WorldConfig

        world_cfg = WorldConfig(**OmegaConf.to_container(cfg.world, resolve=True))
        log.info("building the synthetic world (seed %d) into %s and %s", world_cfg.seed, raw_dir, world_dir)
        metrics.update({f"world/{k}": v for k, v in _flat_counts(build_world(world_cfg, raw_dir, world_dir)).items()})
    else:
        docci = cfg.raw.docci
        fetch_docci(raw_dir, urls=OmegaConf.to_container(docci.urls), checksums=OmegaConf.to_container(docci.checksums))
        # The world is a CPU-profile corpus; record plainly that this profile has none.
        write_json(world_dir / "manifest.json", {"built": False, "reason": f"profile {cfg.profile} uses {cfg.raw.source}"})

    corpus = load_docci(raw_dir, on_error=cfg.raw.on_error)
    if cfg.raw.verify_images:
        corpus = verify_images(corpus, on_error=cfg.raw.on_error)
    metrics["raw/records"] = len(corpus.records)
    for split, n in sorted(corpus.split_counts().items()):
        metrics[f"raw/split/{split}"] = n
    for reason, n in sorted(corpus.skipped.items()):
        metrics[f"raw/skipped/{reason}"] = n
    metrics["raw/skipped_total"] = sum(corpus.skipped.values())
    return metrics


def _flat_counts(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat_counts(v, f"{prefix}{k}/" if prefix or k else ""))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip("/")] = d
    return out
