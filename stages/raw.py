"""DVC node `raw`: the raw corpus in DOCCI's layout (the synthetic world, or DOCCI downloaded)."""

from capcurriculum.config import load_params, subtree
from capcurriculum.data.raw import build_raw
from capcurriculum.io import write_json
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.tracking import node_run


def main() -> None:
    setup_logging()
    cfg = load_params()
    with node_run("raw", subtree(cfg, "profile", "seed", "raw", "world"), run_file("raw"),
                  experiment=cfg.tracking.experiment) as run:
        metrics = build_raw(cfg, raw_dir="data/raw", world_dir="data/world")
        run.log_metrics(metrics)
        write_json(METRICS_DIR / "raw.json", metrics)


if __name__ == "__main__":
    main()
