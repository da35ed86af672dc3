import json

import pytest

from capcurriculum.evaluation import node_times


def _record(path, node, parent, seconds=60.0, threads=2):
    rec = {"run_id": f"run-{node}", "parent_run_id": parent, "node": node,
           "machine": {"torch_threads": threads, "cpu": "AMD EPYC (family 26, model 2, stepping 0)"}}
    if seconds is not None:
        rec["seconds"] = seconds
    path.write_text(json.dumps(rec))
    return path


def test_restored_nodes_are_listed_but_not_counted_in_this_experiments_time(tmp_path):
    files = [_record(tmp_path / "raw.json", "raw", "old-parent", seconds=600.0),
             _record(tmp_path / "train_1.json", "train_1", "parent", seconds=90.0),
             _record(tmp_path / "train_2.json", "train_2", "parent", seconds=150.0)]
    rows = node_times.node_times(files, "parent")
    assert [(r["node"], r["ran"]) for r in rows] == [("raw", False), ("train_1", True), ("train_2", True)]
    t = node_times.totals(rows)
    assert t == {"minutes": 4.0, "ran": 2, "restored": 1, "untimed": 0}
    md = node_times.markdown(rows)
    assert "**4.0 min**" in md and "1 restored" in md
    assert "| raw | 10:00 | restored | 2 |" in md and "| train_2 | 2:30 | here | 2 |" in md


def test_a_record_from_before_times_were_kept_shows_no_time_and_is_counted(tmp_path):
    rows = node_times.node_times([_record(tmp_path / "raw.json", "raw", "p", seconds=None),
                                  _record(tmp_path / "sets.json", "sets@text", "p", seconds=30.0)], "p")
    assert node_times.totals(rows) == {"minutes": 0.5, "ran": 2, "restored": 0, "untimed": 1}
    md = node_times.markdown(rows)
    assert "| raw | – | here |" in md and "1 without a recorded time" in md


@pytest.mark.parametrize("bad, message", [({"parent_run_id": "p"}, "no 'node'"),
                                          ({"node": "raw", "parent_run_id": "p", "seconds": -1}, "'seconds'"),
                                          ({"node": "raw", "parent_run_id": "p", "seconds": "5"}, "'seconds'")])
def test_a_bad_run_record_names_its_file_and_key(tmp_path, bad, message):
    path = tmp_path / "raw.json"
    path.write_text(json.dumps(bad))
    with pytest.raises(ValueError, match=message) as err:
        node_times.node_times([path], "p")
    assert str(path) in str(err.value)


def test_a_record_without_its_time_takes_its_mlflow_runs_duration(tmp_path):
    rows = node_times.node_times([_record(tmp_path / "raw.json", "raw", "p", seconds=None),
                                  _record(tmp_path / "qa.json", "qa_generate", "p", seconds=None)], "p",
                                 durations=lambda ids: {"run-raw": 120.0, "run-qa_generate": None})
    assert [r["seconds"] for r in rows] == [120.0, None]
    assert node_times.totals(rows) == {"minutes": 2.0, "ran": 2, "restored": 0, "untimed": 1}
