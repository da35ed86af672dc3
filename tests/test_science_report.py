"""The science report of a DVC sweep: which experiment stands for which variant and seed, what is left out and
why, and the findings computed from their records (evaluation/science.py's statistics, tested there)."""

import pytest

import json

from capcurriculum.science_report import compared, load_part, plan, report, variants

REFERENCE = {"train.seed": 0, "curriculum.order": ["perc", "text", "vis"], "curriculum.method.perc": "grpo",
             "curriculum.s1.set": "perc", "curriculum.s1.method": "grpo", "curriculum.s1.steps": 30,
             "train.balance": "question", "world.version": 1}


def exp(name, seed, order=("perc", "text", "vis"), method="grpo", when="2026-12-07T10:00", failed=False,
        state="success", **other):
    params = {**REFERENCE, "train.seed": seed, "curriculum.order": list(order), "curriculum.method.perc": method,
              **other}
    return {"name": name, "rev": f"{name}-rev", "timestamp": when, "params": params, "failed": failed, "state": state}


@pytest.mark.parametrize("order, method, expected", [
    (["perc", "text", "vis"], "grpo", [("staged", "staged"), ("merged", "merged")]),
    (["text", "vis", "perc"], "grpo", [("perc_last", "staged")]),  # from before evaluate@before_perc
    (["perc", "text", "vis"], "sft", [("sft_perc", "staged")]),
    (["vis", "text", "perc"], "grpo", []),
])
def test_each_swept_combination_is_one_variant(order, method, expected):
    assert variants({"curriculum.order": order, "curriculum.method.perc": method}) == expected
    # merged only where the experiment ran its node; the DAG's shape is not a configuration that must match
    assert variants({"curriculum.order": order, "curriculum.method.perc": method, "merged.enabled": False}) == [
        v for v in expected if v[0] != "merged"]


def test_a_perception_last_experiment_that_evaluated_its_chain_before_perception_is_the_reasoning_only_control():
    params = {"curriculum.order": ["text", "vis", "perc"], "curriculum.method.perc": "grpo",
              "dag.evaluate.before_perc": "data/models/train_2"}
    assert variants(params) == [("perc_last", "staged"), ("reasoning_only", "before_perc")]


def test_whether_merged_ran_is_the_dags_shape_not_a_configuration_to_match():
    # the workspace's staged-only default against a sweep that set merged.enabled (the README's command)
    chosen, skipped = plan({**REFERENCE, "merged.enabled": False, "dag.baselines": []},
                           [exp("m", 0, **{"merged.enabled": True, "dag.baselines": ["merged"]})])
    assert not skipped and ("merged", 0) in chosen


def test_only_the_workspaces_configuration_is_compared_and_the_rest_is_named():
    found = [exp("a", 0), exp("b", 0, order=("text", "vis", "perc"), **{"curriculum.s1.set": "text"}),
             exp("c", 1, **{"train.balance": "none"}), exp("g", 1, **{"curriculum.s1.steps": 60}),
             exp("d", 1, failed=True), exp("e", 2, order=("vis", "text", "perc")),
             exp("f", 0, when="2026-12-07T11:00"),  # a newer run of a's variant and seed
             exp("q", 1, state="queued"), exp("r", 1, order=("text", "vis", "perc"), state="running")]
    chosen, skipped = plan(REFERENCE, found)
    assert {k: v["name"] for k, v in chosen.items()} == {("staged", 0): "f", ("merged", 0): "f",
                                                         ("perc_last", 0): "b"}
    reasons = dict(skipped)
    assert reasons["c"] == "train.balance is 'none', the workspace's 'question'"
    assert reasons["d"] == "failed"
    assert reasons["q"] == "queued, not finished" and reasons["r"] == "running, not finished"  # no records yet
    assert reasons["g"] == "curriculum.s1.steps is 60, the workspace's 30"  # a slot's steps are not swept
    assert reasons["e"].startswith("not a variant of the report")
    assert reasons["a"] == "seed 0 of its variant run again in the newer f"


def rows(correct, prefix="q"):
    return [{"id": f"{prefix}{i}", "correct": c, "n_tokens": 10 + i, "attribution": None}
            for i, c in enumerate(correct)]


def test_the_report_pairs_each_seeds_variants_on_their_records():
    # per seed: staged gets 3 of 4 visual-math items right, the perc-last chain 1 of 4 (+50 points each seed)
    correct = {"staged": [1, 1, 1, 0], "merged": [1, 0, 0, 0], "perc_last": [1, 0, 0, 0], "base": [0, 0, 0, 0]}
    found = [exp(f"s{s}", s) for s in (0, 1)] + [exp(f"l{s}", s, order=("text", "vis", "perc")) for s in (0, 1)]
    models = {f"s{s}-rev": "staged" for s in (0, 1)} | {f"l{s}-rev": "perc_last" for s in (0, 1)}

    def read(rev, model, benchmark):
        variant = models[rev] if model == "staged" else model
        return rows(correct[variant])

    text, metrics, part = report(REFERENCE, found, read)
    assert metrics["perc_first_vs_last/mean"] == 0.5 and metrics["perc_first_vs_last/seeds"] == 2
    line = next(ln for ln in text.splitlines() if ln.startswith("| perception first beats perception last"))
    assert "| s0: +50.0 ± 28.9, s1: +50.0 ± 28.9 | +50.0 ± 0.0 |" in line and "as the paper" in line, line
    assert "| perc_last | 1 | l1 (l1-rev, model staged) |" in text
    assert "Seeds: 0, 1." in text
    assert part["per_seed"]["perc_first_vs_last"]["1"]["delta"] == 0.5
    assert part["experiments"]["perc_last/1"] == "l1-rev" and "train.seed" not in part["compared"]


def part_file(tmp_path, name, per_seed, figures=None, **changed):
    path = tmp_path / name
    path.write_text(json.dumps({"compared": compared({**REFERENCE, **changed}),
                                "per_seed": per_seed, "experiments": {}, "figures": figures or {}}))
    return path


def test_a_sweep_run_a_seed_a_part_reports_every_parts_seeds(tmp_path):
    """Seed 0 in this workspace; seeds 1 and 2 from two earlier parts' science.json: one table over three seeds."""
    found = [exp("s0", 0), exp("l0", 0, order=("text", "vis", "perc"))]

    def read(rev, model, benchmark):
        return rows([1, 1, 1, 0] if rev == "s0-rev" else [1, 0, 0, 0])

    parts = {str(p): load_part(p, REFERENCE) for p in (
        part_file(tmp_path, "seed1.json", {"perc_first_vs_last": {"1": {"delta": 0.25, "se": 0.1}}},
                  {"staged": {"1": {"tiny_vis_math": 0.25, "tokens": 20.0}}}),
        part_file(tmp_path, "seed2.json", {"perc_first_vs_last": {"2": {"delta": 0.75, "se": 0.1}}}))}
    text, metrics, part = report(REFERENCE, found, read, parts)
    assert metrics["perc_first_vs_last/seeds"] == 3 and metrics["perc_first_vs_last/mean"] == 0.5
    assert metrics["perc_first_vs_last/se"] == 0.25 / 3 ** 0.5
    assert "Seeds: 0, 1, 2; this workspace's experiments: 0, earlier parts': " in text
    assert list(part["per_seed"]["perc_first_vs_last"]) == ["0"]  # this part holds its own seeds only
    # the variants' own figures over seeds: staged's vis math 3 of 4 here (75%) and 25% in seed1.json
    assert "| staged | 0, 1 | 75.0 | 75.0 | 50.0 ± 25.0 | 15.8 ± 4.2 |" in text, text
    assert "| base (no RL) | – |" in text  # no RL seed made it
    with pytest.raises(SystemExit, match=r"seed 1 of perc_first_vs_last is also in .*seed1.json; keep one"):
        report(REFERENCE, found, read, {**parts, "again.json": parts[str(tmp_path / "seed1.json")]})


def test_a_part_of_another_configuration_is_refused_with_the_key(tmp_path):
    other = part_file(tmp_path, "other.json", {}, **{"train.balance": "none"})
    with pytest.raises(SystemExit, match=r"other.json: its experiments ran train.balance='none', the workspace has "
                                         r"'question': a finding never mixes"):
        load_part(other, REFERENCE)
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(SystemExit, match="bad.json: not a science report's part"):
        load_part(tmp_path / "bad.json", REFERENCE)
