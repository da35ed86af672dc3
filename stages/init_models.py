"""DVC node `init_models`: tokenizer, processor and untrained tiny Qwen3-VL models (or hub refs)."""

from capcurriculum.config import load_params, subtree
from capcurriculum.io import write_json
from capcurriculum.models.init import init_models
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.tracking import node_run


def main() -> None:
    setup_logging()
    cfg = load_params()
    with node_run("init_models", subtree(cfg, "profile", "tokenizer", "models"), run_file("init_models"),
                  experiment=cfg.tracking.experiment) as run:
        metrics = init_models(cfg, raw_dir="data/raw", world_dir="data/world", out_dir="data/models/init")
        run.log_metrics(metrics)
        write_json(METRICS_DIR / "init_models.json", metrics)


if __name__ == "__main__":
    main()
