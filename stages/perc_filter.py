"""DVC node `perc_filter`: the differential filter over every filter model; D_perc = the intersection."""

from capcurriculum.config import load_params, subtree
from capcurriculum.io import write_json
from capcurriculum.perception.pipeline import run_filter
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.tracking import node_run


def main() -> None:
    setup_logging()
    cfg = load_params()
    with node_run("perc_filter", {"seed": cfg.seed, **subtree(cfg.perception, "filter")}, run_file("perc_filter"),
                  experiment=cfg.tracking.experiment) as run:
        metrics = run_filter(cfg, candidates="data/perception/qa/candidates.jsonl", raw_dir="data/raw",
                             models_dir="data/models/base", out_dir="data/perception/filter",
                             sets_dir="data/sets/perc")
        run.log_metrics(metrics)
        run.result = f"D_perc keeps {metrics['kept_intersection']:,} questions"
        write_json(METRICS_DIR / "perc_filter.json", metrics)


if __name__ == "__main__":
    main()
