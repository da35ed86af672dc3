"""DVC node `base_report`: the base models' accuracy table (vs no-look), closing the MLflow parent."""

from capcurriculum.config import MODEL_ROLES, load_params
from capcurriculum.evaluation.base_report import write_base_report
from capcurriculum.runtime import METRICS_DIR, declared_run_records, setup_logging
from capcurriculum.tracking import finish_experiment


def main() -> None:
    setup_logging()
    cfg = load_params()
    report = write_base_report({r: METRICS_DIR / "base" / f"{r}.json" for r in MODEL_ROLES},
                               "data/reports/base.md", profile=cfg.profile)
    print(report)
    finish_experiment(declared_run_records("base_report"), experiment=cfg.tracking.experiment)


if __name__ == "__main__":
    main()
