import json

from capcurriculum.evaluation.base_report import CAPS, write_base_report


def _metrics(with_detail: bool) -> dict:
    m = {f"{c}/{k}": v for c in CAPS for k, v in (("acc", 0.5), ("se", 0.02), ("no_look", 0.4), ("n", 100))}
    if with_detail:
        m.update({"perc_image/color/acc": 0.46, "perc_image/color/no_look": 0.14, "perc_image/color/n": 70,
                  "perc_image/size/acc": 0.81, "perc_image/size/no_look": 0.55, "perc_image/size/n": 68})
        m.update({f"vision_probe/{a}/{k}": v for a in ("cell", "occupied", "color", "shape", "size")
                  for k, v in (("acc", 0.99), ("chance", 0.2), ("n", 900))})
    return m


def test_the_base_report_breaks_perception_down_and_shows_the_probes(tmp_path):
    files = {}
    for role, detail in (("policy", True), ("filter_small", False), ("filter_large", None)):
        files[role] = tmp_path / f"{role}.json"
        files[role].write_text(json.dumps({} if detail is None else _metrics(detail)))
    text = write_base_report(files, tmp_path / "base.md", "tiny")
    assert (tmp_path / "base.md").read_text() == text
    assert "| policy | 0.46 [0.14] (70) | 0.81 [0.55] (68) |" in text
    assert "| filter_small | - | - |" in text
    assert "| policy | 0.99 (0.20) | 0.99 (0.20) | 0.99 (0.20) | 0.99 (0.20) | 0.99 (0.20) |" in text
    assert "| filter_small | 0.99" not in text and "| filter_large | hub model" in text


def test_a_lineage_filter_is_named_as_the_policys_step_without_a_pre_training_time_of_its_own(tmp_path):
    files = {"policy": tmp_path / "policy.json", "filter_small": tmp_path / "filter_small.json"}
    files["policy"].write_text(json.dumps({**_metrics(False), "pretrain/seconds": 312.4}))
    files["filter_small"].write_text(json.dumps({**_metrics(False), "lineage/step": 600, "pretrain/seconds": 0.0}))
    text = write_base_report(files, tmp_path / "base.md", "tiny")
    row = next(line for line in text.splitlines() if line.startswith("| filter_small"))
    assert row.startswith("| filter_small (the policy at step 600) | 0.500 ± 0.020 [0.400] |") and row.endswith("| - |")
    assert next(line for line in text.splitlines() if line.startswith("| policy |")).endswith("| 312 |")
