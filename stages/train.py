"""DVC node `train_1..3` / `merged`: one GRPO stage of the curriculum (or the merged baseline).

Stage k starts from stage k-1's checkpoint (stage 1 and merged from the base policy) and trains on the
set named by curriculum.order[k]; a killed run resumes from .resume/<node>/ when re-run.
"""

import argparse
import logging
import sys
from pathlib import Path

from capcurriculum.config import load_params
from capcurriculum.io import write_json
from capcurriculum.runtime import (
    METRICS_DIR,
    launched_accelerator,
    relaunch_accelerate,
    run_file,
    setup_logging,
)
from capcurriculum.settings.train import TrainSettings
from capcurriculum.tracking import node_run
from capcurriculum.training.curriculum import SLOTS, StagePaths, StageRecipe, stage_params, stage_spec
from capcurriculum.training.precision import SFT_PRECISION, PrecisionChoice, resolve_precision


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("node", choices=[*SLOTS, "merged"])
    node = ap.parse_args().node
    setup_logging()
    cfg = load_params()
    spec, train = stage_spec(cfg, node), TrainSettings.from_config(cfg)
    if spec.method == "grpo":  # train.launcher: accelerate launch (the trl engine: DeepSpeed, GPUs) starts this
        relaunch_accelerate(train.launcher, sys.argv)  # script again in each process
    k = SLOTS.index(node) if node in SLOTS else 0
    init_dir = "data/models/base/policy" if k == 0 else f"data/models/{SLOTS[k - 1]}"
    # Curves on the curriculum's global step, so the staged runs line up with the merged one in MLflow.
    offset = sum(list(cfg.curriculum.steps)[:k]) if node in SLOTS else 0
    accelerator = launched_accelerator()  # `accelerate launch --use_deepspeed ... stages/train.py <node>`
    precision = (resolve_precision(train.precision, accelerator.device if accelerator else "cpu")
                 if spec.method == "grpo" else PrecisionChoice("fp32", train.precision, SFT_PRECISION))
    paths = StagePaths.of(init_dir=init_dir, base_dir="data/models/base/policy", sets_dir="data/sets",
                          raw_dir="data/raw", world_dir="data/world", out_dir=f"data/models/{node}",
                          resume_dir=Path(".resume") / node, difficulty_dir="data/difficulty")
    if accelerator is not None and not accelerator.is_main_process:  # only the main process logs and writes
        logging.getLogger().setLevel(logging.WARNING)
        StageRecipe(cfg, spec, paths, accelerator=accelerator, precision=precision).run()
        return
    logging.getLogger(node).info("precision %s (train.precision: %s): %s", precision.precision, precision.asked,
                                 precision.reason)
    with node_run(node, stage_params(cfg, spec), run_file(node), experiment=cfg.tracking.experiment) as run:
        frozen = spec.vision_lr_scale == 0 and spec.merger_lr_scale == 0
        run.set_tags({"stage.sets": ",".join(spec.sets), "stage.vision_tower": "frozen" if frozen else
                      f"trainable x{spec.vision_lr_scale}, mergers x{spec.merger_lr_scale}"})
        run.record_setting("precision", precision.record())
        recipe = StageRecipe(cfg, spec, paths, accelerator=accelerator, precision=precision,
                             on_log=lambda step, row: run.log_metrics(row, step=offset + step))
        metrics = recipe.run()
        run.log_metrics(metrics)
        write_json(METRICS_DIR / "train" / f"{node}.json", metrics)


if __name__ == "__main__":
    main()
