"""DVC node `evaluate@base|staged|merged|before_perc` (merged when merged.enabled; before_perc, train_2, when the order
puts perception last): the `evaluation.benchmarks` on one model, every item saved."""

import argparse

from omegaconf import OmegaConf

from capcurriculum.config import EVAL_MODELS as MODELS
from capcurriculum.config import load_params
from capcurriculum.evaluate import run_evaluation
from capcurriculum.io import write_json
from capcurriculum.evaluation.evaluator import in_overall
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.settings.evaluation import EvaluationSettings
from capcurriculum.tracking import node_run

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model", choices=list(MODELS))
    name = ap.parse_args().model
    setup_logging()
    cfg = load_params()
    evaluation = EvaluationSettings.from_config(cfg)
    node = f"evaluate@{name}"
    with node_run(node, {"evaluation": OmegaConf.to_container(cfg.evaluation, resolve=True), "model": MODELS[name]},
                  run_file(node), experiment=cfg.tracking.experiment) as run:
        metrics = run_evaluation(MODELS[name], evaluation.benchmarks, f"data/eval/{name}", settings=evaluation,
                                 trained=name != "base")
        run.log_metrics({k.replace("@", "_"): v for k, v in metrics.items()})
        if metrics["overall"] is not None:
            run.result = f"Overall {100 * metrics['overall']:.1f}% over {len(in_overall(evaluation.benchmarks))} benchmarks"
        write_json(METRICS_DIR / "eval" / f"{name}.json", metrics)


if __name__ == "__main__":
    main()
