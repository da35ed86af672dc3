import json

import mlflow
import pytest

from capcurriculum import tracking


@pytest.fixture
def store(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    (tmp_path / "params.yaml").write_text("seed: 0\n")
    return tmp_path


def test_nodes_of_one_repro_share_a_parent_and_record_their_run(store):
    with tracking.node_run("raw", {"world": {"seed": 0}}, store / "runs/raw.json") as a:
        a.log_metrics({"scenes": 10})
    with tracking.node_run("base", {"lr": 0.1}, store / "runs/base.json") as b:
        pass
    assert a.parent_run_id == b.parent_run_id
    assert tracking.tracking_uri() == f"sqlite:///{store / 'mlflow.db'}"
    rec = json.loads((store / "runs/raw.json").read_text())
    assert rec["run_id"] == a.run_id and rec["node"] == "raw"

    client = mlflow.MlflowClient(tracking.tracking_uri())
    run = client.get_run(a.run_id)
    assert run.data.params["world.seed"] == "0"
    assert run.data.metrics["scenes"] == 10
    assert run.data.tags["mlflow.parentRunId"] == a.parent_run_id


def test_a_node_records_the_machine_it_ran_on(store):
    import torch

    with tracking.node_run("base@policy", {}, store / "runs/base.json") as run:
        pass
    machine = json.loads((store / "runs/base.json").read_text())["machine"]
    assert machine["packages"]["torch"] == torch.__version__
    assert machine["packages"]["math-verify"]  # a distribution name, not the import name
    assert machine["cpu"] and machine["torch_threads"] == torch.get_num_threads()
    tags = mlflow.MlflowClient(tracking.tracking_uri()).get_run(run.run_id).data.tags
    assert tags["machine.packages.torch"] == torch.__version__
    assert tags["machine.cpu"] == machine["cpu"]


def test_a_node_records_when_it_started_and_how_long_its_body_took(store):
    import time

    with tracking.node_run("train_1", {}, store / "runs/train_1.json"):
        time.sleep(0.3)
    rec = json.loads((store / "runs/train_1.json").read_text())
    assert 0.3 <= rec["seconds"] < 30
    assert time.strptime(rec["started_at"], "%Y-%m-%dT%H:%M:%SZ")


def test_a_node_logs_one_line_when_it_starts_and_one_when_it_ends_with_its_result(store, caplog):
    caplog.set_level("INFO", logger="capcurriculum.tracking")
    with tracking.node_run("perc_filter", {}, store / "runs/perc_filter.json") as run:
        run.result = "D_perc keeps 412 questions"
    lines = [r.getMessage() for r in caplog.records if r.name == "capcurriculum.tracking"]
    assert lines[0].startswith("perc_filter: started (MLflow run ")
    assert lines[-1].startswith("perc_filter: done in ") and lines[-1].endswith(" s; D_perc keeps 412 questions")
    caplog.clear()
    with pytest.raises(ValueError), tracking.node_run("qa_generate", {}, store / "runs/qa_generate.json"):
        raise ValueError("bad row")
    assert any(r.levelname == "ERROR" and r.getMessage().startswith("qa_generate: failed after ")
               and r.getMessage().endswith(": ValueError") for r in caplog.records)


def test_durations_read_as_a_person_reads_them():
    assert [tracking.clock(s) for s in (4.26, 59.94, 425, 3725)] == ["4.3 s", "59.9 s", "7 min 05 s", "1 h 02 min"]


def test_run_durations_read_mlflow_and_name_unknown_runs_none(store):
    import time

    with tracking.node_run("raw", {}, store / "runs/raw.json") as run:
        time.sleep(0.2)
    got = tracking.run_durations([run.run_id, "0" * 32])
    assert 0.2 <= got[run.run_id] < 30 and got["0" * 32] is None


def test_a_failed_node_writes_no_run_record(store):
    with pytest.raises(RuntimeError):
        with tracking.node_run("broken", {}, store / "runs/broken.json"):
            raise RuntimeError("boom")
    assert not (store / "runs/broken.json").exists()


@pytest.mark.parametrize("stop, status", [(RuntimeError("boom"), "FAILED"), (SystemExit("params.yaml: x: bad"), "FAILED"),
                                          (KeyboardInterrupt(), "KILLED")])
def test_a_dag_that_stops_at_a_node_closes_its_parent_and_a_rerun_reopens_it(store, stop, status):
    client = mlflow.MlflowClient(tracking.tracking_uri())
    with tracking.node_run("raw", {}, store / "runs/raw.json") as first:
        pass
    assert client.get_run(first.parent_run_id).info.status == "RUNNING"
    with pytest.raises(type(stop)):
        with tracking.node_run("base", {}, store / "runs/base.json"):
            raise stop
    assert client.get_run(first.parent_run_id).info.status == status
    with tracking.node_run("base", {}, store / "runs/base.json") as again:  # the user re-runs the DAG
        assert again.parent_run_id == first.parent_run_id
        assert client.get_run(first.parent_run_id).info.status == "RUNNING"
    tracking.finish_experiment([store / "runs/raw.json", store / "runs/base.json"])
    assert client.get_run(first.parent_run_id).info.status == "FINISHED"


def test_the_experiment_opens_on_its_training_runs_and_a_chosen_kind_stays(store):
    client = mlflow.MlflowClient(tracking.tracking_uri())
    with tracking.node_run("raw", {}, store / "runs/raw.json"):
        pass
    exp = client.get_experiment_by_name("capcurriculum")
    assert exp.tags["mlflow.experimentKind"] == "custom_model_development"  # MLflow's "Machine learning" view
    client.set_experiment_tag(exp.experiment_id, "mlflow.experimentKind", "genai_development")
    with tracking.node_run("base", {}, store / "runs/base.json"):
        pass
    assert client.get_experiment(exp.experiment_id).tags["mlflow.experimentKind"] == "genai_development"


def test_experiments_get_their_own_parent_and_restored_runs_are_linked(store, monkeypatch):
    monkeypatch.setenv("DVC_EXP_NAME", "exp-one")
    with tracking.node_run("raw", {}, store / "runs/raw.json") as first:
        pass
    monkeypatch.setenv("DVC_EXP_NAME", "exp-two")
    # exp-two's raw node was restored from the run-cache: its record still names exp-one's run.
    with tracking.node_run("base@policy", {}, store / "runs/base.json") as second:
        pass
    assert first.parent_run_id != second.parent_run_id
    parent = tracking.finish_experiment([store / "runs/raw.json", store / "runs/base.json"])
    assert parent == second.parent_run_id
    run = mlflow.MlflowClient(tracking.tracking_uri()).get_run(parent)
    assert run.data.tags["restored.raw"] == first.run_id
    assert run.data.tags["node.base/policy"] == second.run_id
    assert "restored.base/policy" not in run.data.tags
    assert run.info.status == "FINISHED"
    assert run.data.tags["capcurriculum.parent_key"] == "exp:exp-two"


def test_a_setting_chosen_at_run_time_is_tagged_and_kept_in_the_run_record(store):
    from capcurriculum.training.precision import PrecisionChoice

    choice = PrecisionChoice("fp32", "auto", "no bfloat16 instructions on this processor (ATen AVX2)")
    with tracking.node_run("train_1", {}, store / "runs/train_1.json") as run:
        run.record_setting("precision", choice.record())
    rec = json.loads((store / "runs/train_1.json").read_text())
    assert rec["settings"]["precision"] == {"precision": "fp32", "asked": "auto", "reason": choice.reason}
    assert "cpu_capability" in rec["machine"]
    tags = mlflow.MlflowClient(tracking.tracking_uri()).get_run(run.run_id).data.tags
    assert tags["precision.precision"] == "fp32" and tags["precision.asked"] == "auto"
    assert tags["precision.reason"] == choice.reason
