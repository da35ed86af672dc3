"""DVC node `train_report`: staged vs merged tables and plots; links every node's run to the MLflow parent."""

from capcurriculum.config import MODEL_ROLES, load_params
from capcurriculum.evaluation.train_report import write_train_report
from capcurriculum.runtime import RUNS_DIR, setup_logging
from capcurriculum.tracking import attach_artifacts, finish_experiment

NODES = ("train_1", "train_2", "train_3", "merged")


def main() -> None:
    setup_logging()
    cfg = load_params()
    print(write_train_report("data/metrics/train", "data/models", "data/reports", profile=cfg.profile))
    runs = [RUNS_DIR / "raw.json", RUNS_DIR / "init_models.json", *(RUNS_DIR / f"base@{r}.json" for r in MODEL_ROLES),
            RUNS_DIR / "qa_generate.json", RUNS_DIR / "perc_filter.json", RUNS_DIR / "sets@text.json",
            RUNS_DIR / "sets@vis.json", *(RUNS_DIR / f"{n}.json" for n in NODES)]
    parent = finish_experiment(runs, experiment=cfg.tracking.experiment)
    attach_artifacts(parent, ["data/reports/train.md", "data/reports/train_rewards.png",
                              "data/reports/train_accuracy.png"], artifact_path="reports")


if __name__ == "__main__":
    main()
