"""DVC node `report`: base vs staged (vs merged, when merged.enabled) on the evaluation benchmarks (Markdown, HTML, plots) and how
long each node took, attached to the experiment's MLflow parent run with every node's run linked to it."""

from capcurriculum.config import load_params
from capcurriculum.evaluation import node_times
from capcurriculum.evaluation.report import write_report
from capcurriculum.io import write_json
from capcurriculum.runtime import declared_run_records, setup_logging
from capcurriculum.tracking import (
    attach_artifacts,
    find_or_create_parent,
    finish_experiment,
    log_parent_metrics,
    run_durations,
)

HEADLINE = "data/metrics/headline.json"  # the DAG's one DVC metrics file: what experiments are compared by


def main() -> None:
    setup_logging()
    cfg = load_params()
    runs = declared_run_records("report")  # every node of this DAG that records a run, in the DAG's order
    models = list(cfg.dag.evaluate)  # base, staged; merged when merged.enabled; before_perc when perc is last
    parent = find_or_create_parent(cfg.tracking.experiment)
    times = node_times.node_times(runs, parent, durations=run_durations)  # older records: MLflow's durations
    totals = node_times.totals(times)
    paths = write_report({m: f"data/eval/{m}" for m in models}, "data/reports/eval", profile=cfg.profile,
                         appendix=node_times.markdown(times), metrics_path=HEADLINE)
    write_json("data/reports/eval/node_times.json", {"nodes": times, **totals})
    print(paths["md"].read_text())
    log_parent_metrics(parent, {f"dag/{k}": v for k, v in totals.items()})
    finish_experiment(runs, experiment=cfg.tracking.experiment)
    attach_artifacts(parent, [*paths.values(), "data/reports/eval/node_times.json"], artifact_path="reports/eval")


if __name__ == "__main__":
    main()
