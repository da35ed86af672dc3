"""DVC node `report`: base vs staged vs merged on the evaluation benchmarks (Markdown, HTML, plots),
attached to the experiment's MLflow parent run with every evaluate node linked to it."""

from capcurriculum.config import load_params
from capcurriculum.evaluation.report import write_report
from capcurriculum.runtime import RUNS_DIR, setup_logging
from capcurriculum.tracking import attach_artifacts, finish_experiment

MODELS = ("base", "staged", "merged")


def main() -> None:
    setup_logging()
    cfg = load_params()
    paths = write_report({m: f"data/eval/{m}" for m in MODELS}, "data/reports/eval", profile=cfg.profile)
    print(paths["md"].read_text())
    parent = finish_experiment([RUNS_DIR / f"evaluate@{m}.json" for m in MODELS], experiment=cfg.tracking.experiment)
    attach_artifacts(parent, list(paths.values()), artifact_path="reports/eval")


if __name__ == "__main__":
    main()
