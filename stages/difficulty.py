"""DVC node `difficulty`: the base policy's pass rate on every curriculum item, cached for
`train.difficulty: pass_rate` and `train.signal_only` (an empty cache that says so otherwise)."""

from capcurriculum.config import load_params
from capcurriculum.io import write_json
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.settings.train import TrainSettings
from capcurriculum.tracking import node_run
from capcurriculum.training.difficulty import write_pass_rates


def main() -> None:
    setup_logging()
    cfg = load_params()
    train = TrainSettings.from_config(cfg)
    params = {"seed": cfg.seed, "train.difficulty": train.difficulty, "train.signal_only": train.signal_only,
              **dict(cfg.pass_rate)}
    with node_run("difficulty", params, run_file("difficulty"), experiment=cfg.tracking.experiment) as run:
        metrics = write_pass_rates(cfg, policy_dir="data/models/base/policy", sets_dir="data/sets",
                                   raw_dir="data/raw", out_dir="data/difficulty")
        run.log_metrics(metrics)
        write_json(METRICS_DIR / "difficulty.json", metrics)


if __name__ == "__main__":
    main()
