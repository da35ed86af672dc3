"""The DAG end to end: `dvc repro` in a temporary git copy of the repo on the smoke profile."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=900):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory):
    repo = tmp_path_factory.mktemp("repo")
    files = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                           capture_output=True, text=True, check=True).stdout.split()
    for rel in files:
        if (ROOT / rel).is_file():
            (repo / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, repo / rel)
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "HF_HUB_OFFLINE": "1", "CAPCURRICULUM_LOG": "WARNING"}
    env.pop("DVC_ROOT", None)
    env.pop("MLFLOW_TRACKING_URI", None)
    _run([sys.executable, "-m", "capcurriculum.config", "profile=smoke"], repo, env)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"],
                ["git", "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "smoke"]):
        _run(cmd, repo, env)
    proc = _run(["dvc", "repro"], repo, env)
    return repo, env, proc


def test_repro_builds_world_models_and_base(smoke_repo):
    repo, _, _ = smoke_repo
    raw = repo / "data/raw"
    assert (raw / "docci_descriptions.jsonlines").exists() and any((raw / "images").iterdir())
    for role in ("policy", "filter_small", "filter_large"):
        model_dir = repo / "data/models/base" / role
        assert (model_dir / "model.safetensors").exists() and (model_dir / "config.json").exists()
        metrics = json.loads((repo / "data/metrics/base" / f"{role}.json").read_text())
        for cap in ("perc_image", "perc_caption", "text_math", "vis_math"):
            assert 0.0 <= metrics[f"{cap}/acc"] <= 1.0 and metrics[f"{cap}/n"] > 0
            assert f"{cap}/no_look" in metrics
    assert "| policy |" in (repo / "data/reports/base.md").read_text()


def test_perception_data_comes_through_generation_and_the_filter(smoke_repo):
    repo, _, _ = smoke_repo
    qa = json.loads((repo / "data/metrics/qa_generate.json").read_text())
    # The tiny policy writes garbage for the LLM path: it must be counted, not lost.
    assert qa["llm_captions"] == 4 and qa["unparseable_outputs"] + qa.get("candidates/llm", 0) >= 1
    assert qa["candidates/template"] > 0
    unparseable = (repo / "data/perception/qa/unparseable.jsonl").read_text().splitlines()
    assert len(unparseable) == qa["unparseable_outputs"]
    filt = json.loads((repo / "data/metrics/perc_filter.json").read_text())
    for model in ("filter_small", "filter_large"):
        assert filt[f"filter/{model}/n"] == qa["candidates"]
        assert filt[f"filter/{model}/kept"] >= filt["kept_intersection"]
    kept = sum(len((repo / f"data/sets/perc/perc_{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test"))
    assert kept == filt["kept_intersection"]
    verdicts = (repo / "data/perception/filter/filter_verdicts.jsonl").read_text().splitlines()
    assert len(verdicts) == 2 * qa["candidates"]
    for name in ("text", "vis"):
        assert (repo / f"data/sets/{name}/{name}_train.jsonl").stat().st_size > 0


def test_second_repro_is_up_to_date(smoke_repo):
    repo, env, _ = smoke_repo
    out = _run(["dvc", "repro"], repo, env).stdout + _run(["dvc", "status"], repo, env).stdout
    assert "Data and pipelines are up to date" in out


def test_every_node_is_tracked_under_one_mlflow_parent(smoke_repo):
    import mlflow

    repo, _, _ = smoke_repo
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    records = [json.loads(p.read_text()) for p in (repo / "data/runs").glob("*.json")]
    assert {r["node"] for r in records} == {"raw", "init_models", "base@policy", "base@filter_small",
                                            "base@filter_large", "qa_generate", "perc_filter", "sets@text",
                                            "sets@vis"}
    parents = {r["parent_run_id"] for r in records}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED"
    run = client.get_run(next(r["run_id"] for r in records if r["node"] == "base@policy"))
    assert "perc_image/acc" in run.data.metrics and run.data.params["pretrain.lr"] == "0.003"
