"""DVC node `base@<role>`: pre-train one tiny model on the world (or copy a lineage filter out of the policy's
pre-training) and measure it per capability."""

import argparse

from capcurriculum.config import MODEL_ROLES, load_params
from capcurriculum.io import write_json
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.tracking import node_run
from capcurriculum.training.base import base_params, build_base


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("role", choices=MODEL_ROLES)
    role = ap.parse_args().role
    setup_logging()
    cfg = load_params()
    node = f"base@{role}"
    with node_run(node, base_params(cfg, role), run_file(node), experiment=cfg.tracking.experiment) as run:
        bases = cfg.dag.bases[role]  # where it starts (its init, or the policy's base) and the steps it keeps
        metrics = build_base(cfg, role, init_dir=bases["from"], raw_dir="data/raw", world_dir="data/world",
                             out_dir=f"data/models/base/{role}", checkpoints=list(bases.checkpoints),
                             on_log=lambda step, row: run.log_metrics(
                                 {f"pretrain/{k}": v for k, v in row.items() if k != "step"}, step=step))
        run.log_metrics(metrics)
        write_json(METRICS_DIR / "base" / f"{role}.json", metrics)


if __name__ == "__main__":
    main()
