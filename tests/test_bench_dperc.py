"""bench/dperc_probe.py's variants of D_perc, from a workspace's candidates and per-model verdicts."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("dperc_probe", ROOT / "bench" / "dperc_probe.py")
probe = importlib.util.module_from_spec(spec)
spec.loader.exec_module(probe)


def _verdict(id_, model, keep, image_correct, image_skipped=False):
    return {"id": id_, "model": model, "keep": keep, "image_correct": image_correct, "image_skipped": image_skipped}


@pytest.fixture
def workspace(tmp_path):
    qa, filt = tmp_path / "data/perception/qa", tmp_path / "data/perception/filter"
    qa.mkdir(parents=True)
    filt.mkdir(parents=True)
    (qa / "candidates.jsonl").write_text("".join(json.dumps({"id": i, "meta": {"qtype": "shape"}}) + "\n"
                                                 for i in "abcd"))
    rows = [  # a: both keep; b: small keeps, large does not; c: small wrong from the image, caption wrong too
        _verdict("a", "filter_small", True, False), _verdict("a", "filter_large", True, False),
        _verdict("b", "filter_small", True, False), _verdict("b", "filter_large", False, True),
        _verdict("c", "filter_small", False, False), _verdict("d", "filter_small", False, True),
    ]
    (filt / "filter_verdicts.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return tmp_path


def test_kept_is_the_intersection_of_the_filter_models(workspace):
    models = ["filter_small", "filter_large"]
    assert [c["id"] for c in probe.variant(workspace, "kept", models)] == ["a"]
    assert [c["id"] for c in probe.variant(workspace, "kept:filter_small", models)] == ["a", "b"]


def test_image_wrong_ignores_the_caption(workspace):
    got = probe.variant(workspace, "image_wrong:filter_small", ["filter_small", "filter_large"])
    assert [c["id"] for c in got] == ["a", "b", "c"]


def test_unknown_rule_or_model_fails_naming_it(workspace):
    with pytest.raises(SystemExit, match="filter_huge"):
        probe.variant(workspace, "image_wrong:filter_huge", ["filter_small"])
    with pytest.raises(SystemExit, match="--keep"):
        probe.variant(workspace, "everything", ["filter_small"])
