"""The science report's statistics on a fixed input, every figure worked by hand."""

import pytest

from capcurriculum.evaluation.science import FINDINGS, findings, markdown, over_seeds, seed_difference

BY_KEY = {f.key: f for f in FINDINGS}


def records(correct, tokens=None, labels=None, prefix="q"):
    tokens = tokens or [10] * len(correct)
    labels = labels or [None] * len(correct)
    return [{"id": f"{prefix}{i}", "correct": c, "n_tokens": t, **({"attribution": {"label": lab}} if lab else {})}
            for i, (c, t, lab) in enumerate(zip(correct, tokens, labels, strict=True))]


def run(text, vis_tokens=(10, 10, 10, 10), vis_labels=(None,) * 4):
    base = [True, True, False, False]
    return {"tiny_perception": records(base, prefix="p"), "tiny_text_math": records(text, prefix="t"),
            "tiny_vis_math": records(base, list(vis_tokens), list(vis_labels), prefix="v")}


RUNS = {
    ("merged", 0): run([True, True, False, False], (12, 12, 14, 14), ("perception", "perception", None, None)),
    ("merged", 1): run([True, True, False, False], (12, 12, 14, 14), ("perception", "perception", None, None)),
    ("staged", 0): run([True, True, True, False], vis_labels=("perception", "reasoning", None, None)),
    ("staged", 1): run([True, True, True, True], vis_labels=("perception", "perception", "perception", None)),
}


def test_accuracy_is_the_mean_of_the_benchmarks_paired_deltas_then_mean_and_se_over_seeds():
    f = BY_KEY["staged_vs_merged"]
    d0 = seed_difference(f, RUNS[("staged", 0)], RUNS[("merged", 0)])
    assert d0["delta"] == pytest.approx(0.25 / 3) and d0["se"] == pytest.approx(0.25 / 3)  # text +1 of 4; se 0.25
    rows = {r["finding"].key: r for r in findings(RUNS, [0, 1])}
    r = rows["staged_vs_merged"]
    assert r["k"] == 2 and r["mean"] == pytest.approx(0.125)            # (1/12 + 2/12) / 2
    assert r["se"] == pytest.approx((1 / 12) / 2 ** 0.5 / 2 ** 0.5)     # sd of the two, / sqrt 2
    assert r["verdict"] == "as the paper, clear"                        # 0.125 > 2 x 0.0417


def test_length_is_paired_per_item_and_errors_are_counted_with_the_papers_sign():
    rows = {r["finding"].key: r for r in findings(RUNS, [0, 1])}
    tokens = rows["shorter_reasoning"]
    assert [d["delta"] for _, d in tokens["per_seed"]] == [-3.0, -3.0]
    assert tokens["per_seed"][0][1]["se"] == pytest.approx((4 / 3 / 4) ** 0.5)
    assert tokens["se"] == 0 and tokens["verdict"] == "as the paper, clear"  # the same −3 on both seeds
    errors = rows["fewer_perception_errors"]
    assert [d["delta"] for _, d in errors["per_seed"]] == [-1.0, 1.0] and errors["mean"] == 0
    assert errors["verdict"] == "no difference"
    assert "perc_first_vs_last" not in rows  # perc_last did not run: no row, never a made-up one


def test_one_seed_has_no_spread_and_is_never_clear():
    r = {r["finding"].key: r for r in findings(RUNS, [0])}["staged_vs_merged"]
    assert r["k"] == 1 and r["se"] is None and r["verdict"] == "as the paper, within noise"
    assert over_seeds([]) == {"k": 0, "mean": None, "se": None}


def test_variants_scored_on_different_items_are_refused():
    other = {**RUNS[("staged", 0)], "tiny_vis_math": records([True] * 4, prefix="x")}
    with pytest.raises(ValueError, match="same items"):
        seed_difference(BY_KEY["rl_vs_sft_perception"], other, RUNS[("merged", 0)])


def test_the_table_shows_points_tokens_and_counts():
    md = markdown(findings(RUNS, [0, 1]))
    assert "| staged beats merged | staged − merged | accuracy (points) on tiny_perception, tiny_text_math, " \
           "tiny_vis_math | s0: +8.3 ± 8.3, s1: +16.7 ± 9.6 | +12.5 ± 4.2 |" in md  # seed 1: text se 0.289 / 3
    assert "| response tokens on tiny_vis_math | s0: -3.0 ± 0.6, s1: -3.0 ± 0.6 | -3.0 ± 0.0 |" in md


def test_earlier_parts_fill_the_seeds_this_part_did_not_run():
    """A sweep run a seed a part: seed 1's difference from an earlier part's record joins seed 0's from records;
    a seed run again here is this part's, not the earlier record's."""
    earlier = {"staged_vs_merged": {"1": {"delta": 2 / 12, "se": 0.1}, "0": {"delta": 99.0, "se": 1.0}}}
    r = {r["finding"].key: r for r in findings({k: v for k, v in RUNS.items() if k[1] == 0}, [0],
                                               earlier=earlier)}["staged_vs_merged"]
    assert [s for s, _ in r["per_seed"]] == [0, 1] and r["k"] == 2
    assert r["mean"] == pytest.approx(0.125) and r["se"] == pytest.approx((1 / 12) / 2)


def test_transfer_and_the_perception_tax_compare_staged_with_reasoning_only_rl():
    runs = {("staged", 0): RUNS[("staged", 0)],
            ("reasoning_only", 0): {**RUNS[("staged", 0)], "tiny_perception": records([False] * 4, prefix="p"),
                                    "tiny_vis_math": records([True, False, False, False], prefix="v")}}
    rows = {r["finding"].key: r for r in findings(runs, [0])}
    assert rows["transfer"]["mean"] == pytest.approx(0.25)        # visual math 2 of 4 against 1 of 4
    assert rows["perception_tax"]["mean"] == pytest.approx(0.5)   # perception 2 of 4 against none
    assert set(rows) == {"transfer", "perception_tax"}


def test_a_variants_figures_are_its_accuracies_tokens_and_the_perception_share_of_its_errors():
    from capcurriculum.evaluation.science import variant_figures, variant_table

    staged = {**RUNS[("staged", 0)], "tiny_vis_math_shuffled": records([True, False, False, False], prefix="v"),
              "tiny_vis_math": records([True, True, False, False], labels=["perception", None, "perception", None],
                                       prefix="v")}
    f = variant_figures(staged)
    assert f["tiny_vis_math"] == 0.5 and f["tiny_vis_math_shuffled"] == 0.25 and f["tokens"] == 10
    assert f["perception_share"] == 1.0  # its one labelled wrong answer (a label on a right one is not an error)
    g = variant_figures(RUNS[("staged", 1)])
    assert "tiny_vis_math_shuffled" not in g and g["perception_share"] == 1.0  # a column only where it ran
    md = variant_table({"staged": {0: f, 1: g}})
    assert "| staged | 0, 1 | 50.0 ± 0.0 | 87.5 ± 12.5 | 50.0 ± 0.0 | 25.0 | 10.0 ± 0.0 | 100.0 ± 0.0 |" in md, md
