"""What every stage CLI does first: logging, seeding, threads, and where its run record goes."""

from __future__ import annotations

import logging
import os
import random
from pathlib import Path

import numpy as np

RUNS_DIR = Path("data/runs")
METRICS_DIR = Path("data/metrics")


def setup_logging(level: str | None = None) -> None:
    logging.basicConfig(level=level or os.environ.get("CAPCURRICULUM_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow.store", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def run_file(node: str) -> Path:
    """The node's MLflow run record: a DVC output, so a run-cache restore brings it back."""
    return RUNS_DIR / f"{node}.json"


def launched_accelerator():
    """An `accelerate.Accelerator` when `accelerate launch` started this process with DeepSpeed or more
    than one process (it sets ACCELERATE_USE_DEEPSPEED / WORLD_SIZE); None for a plain `python` run."""
    if os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() != "true" and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    from accelerate import Accelerator

    return Accelerator()
