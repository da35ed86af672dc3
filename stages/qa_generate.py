"""DVC node `qa_generate`: captions -> candidate perception questions (LLM, plus templates in CPU profiles)."""

from capcurriculum.config import load_params, subtree
from capcurriculum.io import write_json
from capcurriculum.perception.pipeline import generate_candidates
from capcurriculum.runtime import METRICS_DIR, run_file, setup_logging
from capcurriculum.tracking import node_run


def main() -> None:
    setup_logging()
    cfg = load_params()
    params = {"perception": {"split": cfg.perception.split, **subtree(cfg.perception, "generation")}}
    with node_run("qa_generate", params, run_file("qa_generate"), experiment=cfg.tracking.experiment) as run:
        metrics = generate_candidates(cfg, raw_dir="data/raw", world_dir="data/world", out_dir="data/perception/qa")
        run.log_metrics(metrics)
        run.result = f"{metrics['candidates']:,} candidate questions"
        write_json(METRICS_DIR / "qa_generate.json", metrics)


if __name__ == "__main__":
    main()
