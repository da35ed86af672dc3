"""DVC node `train_report`: the staged chain's tables and plots, beside merged's when merged.enabled; links every
node's run to the MLflow parent."""

from capcurriculum.config import load_params
from capcurriculum.evaluation.train_report import write_train_report
from capcurriculum.runtime import declared_run_records, setup_logging
from capcurriculum.tracking import attach_artifacts, finish_experiment


def main() -> None:
    setup_logging()
    cfg = load_params()
    print(write_train_report("data/metrics/train", "data/models", "data/reports", profile=cfg.profile,
                             baselines=list(cfg.dag.baselines)))
    parent = finish_experiment(declared_run_records("train_report"), experiment=cfg.tracking.experiment)
    attach_artifacts(parent, ["data/reports/train.md", "data/reports/train_rewards.png",
                              "data/reports/train_accuracy.png"], artifact_path="reports")


if __name__ == "__main__":
    main()
