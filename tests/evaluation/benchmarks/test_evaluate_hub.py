"""A hub benchmark through the evaluator: the real HF backend on a tiny model, the POPE fixture rows."""

from capcurriculum.evaluation.benchmarks import get_adapter
from capcurriculum.evaluation.evaluator import evaluate_benchmark
from capcurriculum.generation import make_backend


def test_rows_without_images_and_unreadable_answers_are_counted(eval_world, load_rows):
    _, _, model = eval_world
    rows = load_rows("pope")
    rows[0]["image"] = None  # a benchmark row without its image
    adapter = get_adapter("pope")
    with make_backend({"backend": "hf", "batch_size": 8}, model_ref=str(model)) as backend:
        records, summary = evaluate_benchmark(backend, adapter, rows, source="fixture", max_new_tokens=6)
    assert summary["skipped"] >= 1 and any("image" in s for s in summary["skipped_rows"])
    assert len(records) == len(rows)  # nothing dropped silently: a skipped row is a record too
    skipped = [r for r in records if r.get("skipped")]
    assert len(skipped) == summary["skipped"] and not any(r["correct"] for r in skipped)
    # an untrained model writes no yes/no: each such answer is counted, scored wrong, and kept
    assert summary["no_answer"] == sum(r["no_answer"] for r in records)
    assert all(r["correct"] is False for r in records if r["no_answer"])
    assert summary["official"]["skipped"] == summary["skipped"]
    assert all(r["n_tokens"] >= 1 and r["response"] is not None for r in records if not r.get("skipped"))
