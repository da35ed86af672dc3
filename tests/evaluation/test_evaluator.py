"""The evaluator and its CLI on a real tiny model: every item saved, scores recomputable, nothing dropped."""

import json
from pathlib import Path

import pytest

from capcurriculum.evaluate import main, run_evaluation
from capcurriculum.evaluation.report import write_report
from capcurriculum.io import read_json, read_jsonl, write_json, write_jsonl
from capcurriculum.settings.evaluation import EvaluationSettings

SETTINGS = EvaluationSettings(benchmarks=("mathvista",), n=5, max_new_tokens=10, batch_size=8,
                              backend={"backend": "hf", "batch_size": 8}, prompt="reasoning", protocol="lenient",
                              split_think=True, judge={"enabled": False}, rows=None)


def test_cli_writes_every_item_and_recomputable_scores(eval_world, tmp_path, capsys):
    raw, world, model = eval_world
    out = tmp_path / "out"
    assert main(["--model", str(model), "--benchmarks", "tiny_vis_math,tiny_text_math,tiny_perception",
                 "--n", "5", "--max-new-tokens", "10", "--out", str(out), "--raw", str(raw),
                 "--world", str(world)]) == 0
    metrics = read_json(out / "metrics.json")
    summary = read_json(out / "summary.json")
    assert set(summary) == {"tiny_vis_math", "tiny_text_math", "tiny_perception"}
    accs = []
    for name in summary:
        records = read_jsonl(out / f"{name}.jsonl")
        assert len(records) == 5 == metrics[f"{name}/n"]
        assert {"id", "gold", "extracted", "correct", "no_answer", "n_tokens", "response"} <= set(records[0])
        recomputed = sum(r["correct"] for r in records) / len(records)
        assert metrics[f"{name}/accuracy"] == pytest.approx(recomputed)
        assert metrics[f"{name}/no_answer"] == sum(r["extracted"] is None for r in records)
        accs.append(recomputed)
    assert metrics["overall"] == pytest.approx(sum(accs) / 3)
    assert metrics["protocol"] == "lenient" and {s["protocol"] for s in summary.values()} == {"lenient"}
    # every wrong visual-math answer is attributed (or counted unparseable): none is left out
    vis = read_jsonl(out / "tiny_vis_math.jsonl")
    wrong = [r for r in vis if not r["correct"]]
    assert metrics["tiny_vis_math/attribution/wrong"] == len(wrong)
    assert all("attribution" in r for r in wrong)
    a = summary["tiny_vis_math"]["attribution"]
    assert a["perception"] + a["reasoning"] + a["unparseable"] == a["wrong"]
    assert "overall\t" in capsys.readouterr().out


def test_without_n_the_cli_reads_each_benchmarks_whole_test_split(eval_world, tmp_path):
    raw, world, model = eval_world
    out = tmp_path / "out"
    assert main(["--model", str(model), "--benchmarks", "tiny_perception,tiny_text_math", "--max-new-tokens", "4",
                 "--out", str(out), "--raw", str(raw), "--world", str(world)]) == 0
    for bench, split in (("tiny_perception", "perception_test"), ("tiny_text_math", "text_math_test")):
        ids = [r["id"] for r in read_jsonl(out / f"{bench}.jsonl")]
        assert ids == [r["id"] for r in read_jsonl(world / f"{split}.jsonl")]
    assert len(read_jsonl(out / "tiny_perception.jsonl")) == 16  # 8 test scenes x 2 questions: more than n=5 above


def test_overall_delta_is_the_mean_of_the_benchmarks_with_their_variances_added():
    from capcurriculum.sampling.paired import mean_delta

    d = mean_delta([{"delta": 0.02, "se": 0.008}, {"delta": 0.06, "se": 0.013}, {"delta": 0.04, "se": 0.012}])
    assert d["delta"] == pytest.approx(0.04)
    assert d["se"] == pytest.approx((0.008 ** 2 + 0.013 ** 2 + 0.012 ** 2) ** 0.5 / 3)
    assert mean_delta([{"delta": 0.02, "se": 0.008}, None]) is None  # one benchmark unpaired: no Overall change


def test_unknown_benchmark_fails_before_loading_a_model(tmp_path):
    with pytest.raises(LookupError, match="unknown benchmark 'mmmu'"):
        run_evaluation(tmp_path / "no-model", ["mmmu"], tmp_path / "out", settings=SETTINGS)
    with pytest.raises(ValueError, match="evaluation.benchmarks: unknown tiny benchmark"):
        from capcurriculum.evaluation.evaluator import evaluate_tiny

        evaluate_tiny(None, None, tmp_path, tmp_path, ["tiny_ocr"], n=1, max_new_tokens=1)


def test_an_unknown_protocol_fails_naming_its_key_before_any_node_runs():
    from capcurriculum.config import ConfigError, compose

    root = Path(__file__).resolve().parents[2]
    with pytest.raises(ConfigError, match="^evaluation.protocol: expected one of lenient, vlmevalkit, got 'official'"):
        EvaluationSettings.from_config(compose(["evaluation.protocol=official"], config_dir=root / "conf"))
    with pytest.raises(ConfigError, match="^evaluation.split_think: expected true or false"):
        EvaluationSettings.from_config(compose(["evaluation.protocol=vlmevalkit", "evaluation.split_think=yes"],
                                               config_dir=root / "conf"))


def test_only_the_evaluate_nodes_declare_the_evaluation_params():
    # changing evaluation.protocol (or any evaluation key) re-runs evaluate@* and, through their outputs,
    # report: no other node may declare it
    import yaml

    stages = yaml.safe_load((Path(__file__).resolve().parents[2] / "dvc.yaml").read_text())["stages"]
    declaring = sorted(name for name, st in stages.items()
                       if any(str(p).split(".")[0] == "evaluation" for p in (st.get("do", st).get("params") or [])))
    assert declaring == ["evaluate"]
    assert "data/eval" in stages["report"]["deps"]  # the folder: every evaluate@<model> node's output is in it


def test_report_pairs_models_over_the_same_items(tmp_path):
    def model_dir(name, flags, tokens):
        d = tmp_path / name
        recs = [{"id": f"q{i}", "correct": c, "n_tokens": t, "extracted": "1", "no_answer": False}
                for i, (c, t) in enumerate(zip(flags, tokens))]
        write_jsonl(d / "tiny_vis_math.jsonl", recs)
        n = len(flags)
        write_json(d / "summary.json", {"tiny_vis_math": {
            "n": n, "accuracy": sum(flags) / n, "se": 0.1, "no_answer": 0, "failed": 0, "skipped": 0,
            "mean_tokens": sum(tokens) / n, "headline": {"metric": "accuracy", "value": sum(flags) / n, "beside": {}},
            "attribution": {"wrong": n - sum(flags), "perception": 1, "reasoning": n - sum(flags) - 1,
                            "unparseable": 0}}})
        return d

    dirs = {"base": model_dir("base", [1, 0, 0, 0], [10, 10, 10, 10]),
            "staged": model_dir("staged", [1, 1, 1, 0], [5, 5, 5, 5]),
            "merged": model_dir("merged", [1, 1, 0, 0], [8, 8, 8, 8])}
    paths = write_report(dirs, tmp_path / "report", profile="tiny", metrics_path=tmp_path / "headline.json")
    md = paths["md"].read_text()
    # what DVC shows: the report's Overall and staged's Overall Δ (staged vs merged: (0, 0, +1, 0) -> +25 ± 25)
    assert json.loads((tmp_path / "headline.json").read_text()) == {
        "base": 0.25, "staged": 0.75, "merged": 0.5, "vs_base": 0.5, "vs_base_se": 0.2887,
        "vs_merged": 0.25, "vs_merged_se": 0.25}
    # staged vs base: differences (0, +1, +1, 0) -> mean +50 points, paired se 100*sqrt(1/3/4) = 28.9
    assert "| staged | +50.0 ± 28.9 | +50.0 ± 28.9 |" in md  # one benchmark: Overall's change is its own
    assert "| staged | 75.0 ± 10.0 | 75.0 |" in md  # accuracy ± se, and Overall
    assert "| staged | tiny_vis_math | 1 | 1 / 0 / 0 | not run | – |" in md
    html = paths["html"].read_text()
    assert "<table>" in html and "<img src='accuracy.png'" in html
    for kind in ("accuracy", "response_length", "attribution"):
        assert paths[kind].read_bytes()[:4] == b"\x89PNG"
    # different items cannot be paired
    write_jsonl(dirs["merged"] / "tiny_vis_math.jsonl",
                [{"id": f"x{i}", "correct": True, "n_tokens": 1} for i in range(4)])
    assert "| staged | n/a |" in write_report(dirs, tmp_path / "r2", profile="tiny")["md"].read_text()


def test_the_judge_attributes_wrong_answers_and_its_agreement_is_reported(eval_world, tmp_path, server,
                                                                           monkeypatch):
    from capcurriculum.evaluation.judge import Judge

    raw, world, model = eval_world
    server.calls.clear()
    server.reply = '{"label": "perception"}'
    judge = Judge.from_config({"enabled": True, "base_url": server.base_url, "model": "judge", "timeout_s": 5,
                               "max_retries": 0, "cache": str(tmp_path / "cache.sqlite")})
    from capcurriculum.evaluation.evaluator import evaluate_tiny
    from capcurriculum.models.loading import load_model_and_processor

    m, p = load_model_and_processor(model)
    (records, summary), = evaluate_tiny(m, p, raw, world, ["tiny_vis_math"], n=6, max_new_tokens=10,
                                        judge=judge).values()
    wrong = [r for r in records if not r["correct"]]
    assert wrong and len(server.calls) == len({r["response"] for r in wrong})  # one call per distinct case
    assert summary["judge_attribution"] == {"wrong": len(wrong), "perception": len(wrong), "reasoning": 0,
                                            "unparseable": 0, "unavailable": 0}
    exact = [r["attribution"]["label"] for r in wrong]
    both = [e for e in exact if e in ("perception", "reasoning")]
    assert summary["judge_agreement"]["both_labelled"] == len(both)
    if both:
        assert summary["judge_agreement"]["agreement"] == pytest.approx(both.count("perception") / len(both))


def test_shuffled_images_give_every_item_another_items_image_and_keep_its_question():
    from capcurriculum.evaluation.evaluator import shuffle_images
    from capcurriculum.sampling.batching import Item

    items = [Item({"id": f"q{i}", "question": f"How many? {i}", "answer": str(i), "answer_type": "number"}, "vis_math",
                  image_path=f"img{i}.png") for i in range(7)]
    out = shuffle_images(items)
    assert [it.example for it in out] == [it.example for it in items]
    assert all(o.image_path != i.image_path for o, i in zip(out, items, strict=True))
    assert sorted(o.image_path for o in out) == sorted(i.image_path for i in items)  # each image shown once
    assert all(o.image_path == f"img{o.extra['image_from'][1:]}.png" for o in out)
    assert [o.image_path for o in shuffle_images(items)] == [o.image_path for o in out]  # seeded
    with pytest.raises(ValueError, match="at least two"):
        shuffle_images(items[:1])


def test_the_blind_policy_check_scores_the_same_questions_with_other_scenes_images(eval_world):
    from capcurriculum.evaluation.evaluator import evaluate_tiny
    from capcurriculum.models.loading import load_model_and_processor

    raw, world, model = eval_world
    m, p = load_model_and_processor(model)
    out = evaluate_tiny(m, p, raw, world, ["tiny_vis_math", "tiny_vis_math_shuffled"], n=6, max_new_tokens=10)
    (seen, _), (blind, summary) = out["tiny_vis_math"], out["tiny_vis_math_shuffled"]
    assert [(r["id"], r["gold"]) for r in blind] == [(r["id"], r["gold"]) for r in seen]
    assert all(r["image_from"] != r["id"] for r in blind) and "attribution" not in summary


def test_the_blind_check_stays_out_of_overall_and_its_deltas():
    from capcurriculum.evaluation.evaluator import overall
    from capcurriculum.evaluation.report import headline_metrics

    def summary(v):
        return {"headline": {"metric": "accuracy", "value": v, "beside": {}}}

    summaries = {"tiny_vis_math": summary(0.5), "tiny_text_math": summary(0.3), "tiny_vis_math_shuffled": summary(0.1)}
    assert overall(summaries) == pytest.approx(0.4)
    rec = [{"id": "a", "correct": True}, {"id": "b", "correct": False}]
    blind = [{"id": "a", "correct": False}, {"id": "b", "correct": False}]
    models = {m: {"summary": summaries, "records": {"tiny_vis_math": rec, "tiny_text_math": rec,
                                                     "tiny_vis_math_shuffled": blind if m == "staged" else rec}}
              for m in ("base", "staged")}
    assert headline_metrics(models)["vs_base"] == 0  # the blind check's -0.5 is not in Overall's delta
