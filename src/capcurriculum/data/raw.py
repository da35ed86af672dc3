"""The raw corpus in DOCCI's layout: the synthetic world (CPU profiles) or DOCCI itself (paper)."""

from __future__ import annotations

import logging
import os
import shutil
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from capcurriculum.data.docci import load_docci, verify_images
from capcurriculum.data.download import DESCRIPTIONS_FILE, IMAGES_ARCHIVE, IMAGES_DIR, extract_tarball, fetch_docci
from capcurriculum.io import DataError, atomic_path, sha256_file, write_json

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
        checksums = OmegaConf.to_container(docci.checksums)
        if docci.get("local_dir"):
            place_local_docci(docci.local_dir, raw_dir, checksums)
        else:
            fetch_docci(raw_dir, urls=OmegaConf.to_container(docci.urls), checksums=checksums)
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


def place_local_docci(local_dir: str | Path, raw_dir: Path, checksums: dict[str, str | None]) -> None:
    """DOCCI from a copy the user already has (`raw.docci.local_dir`), in the release's layout, instead of the
    network: the descriptions file, and the images as an `images/` directory or the release's tarball
    (extracted into raw_dir/images). Files are hard-linked where the filesystem allows, else copied, so
    ~15k images are not stored twice. A checksum in `raw.docci.checksums` is checked against the local file."""
    local = Path(local_dir).expanduser()
    descriptions, images, archive = local / DESCRIPTIONS_FILE, local / IMAGES_DIR, local / IMAGES_ARCHIVE
    if not descriptions.is_file():
        raise DataError(descriptions, "file not found (raw.docci.local_dir must hold DOCCI's release layout)")
    if not images.is_dir() and not archive.is_file():
        raise DataError(local, f"holds neither {IMAGES_DIR}/ nor {IMAGES_ARCHIVE} (raw.docci.local_dir)")
    for name, path in (("descriptions", descriptions), ("images", archive)):
        want = checksums.get(name)
        if want and not path.is_file():
            raise DataError(local, f"raw.docci.checksums.{name} is the release tarball's, and there is no "
                                   f"{IMAGES_ARCHIVE} here to check: set it to null or add the tarball")
        if want and sha256_file(path) != want.lower():
            raise DataError(path, f"sha256 differs from raw.docci.checksums.{name}")
    raw_dir.mkdir(parents=True, exist_ok=True)
    _link_or_copy(descriptions, raw_dir / DESCRIPTIONS_FILE)
    if images.is_dir():
        with atomic_path(raw_dir / IMAGES_DIR) as tmp:
            tmp.mkdir()
            for src in sorted(images.rglob("*")):
                if src.is_file():
                    dest = tmp / src.relative_to(images)
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    _link_or_copy(src, dest)
    else:
        extract_tarball(archive, raw_dir / IMAGES_DIR, progress=False)
    log.info("DOCCI taken from %s (no download)", local)


def _link_or_copy(src: Path, dest: Path) -> None:
    dest.unlink(missing_ok=True)
    try:
        os.link(src, dest)
    except OSError:  # another filesystem, or links not allowed
        shutil.copy2(src, dest)


def _flat_counts(d: Any, prefix: str = "") -> dict[str, float]:
    out: dict[str, float] = {}
    if isinstance(d, dict):
        for k, v in d.items():
            out.update(_flat_counts(v, f"{prefix}{k}/" if prefix or k else ""))
    elif isinstance(d, (int, float)) and not isinstance(d, bool):
        out[prefix.rstrip("/")] = d
    return out
