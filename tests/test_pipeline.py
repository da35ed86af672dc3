"""The DAG end to end: `dvc repro` in a temporary git copy of the repo on the smoke profile."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def _run(cmd, cwd, env, timeout=1800):
    proc = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert proc.returncode == 0, f"{' '.join(cmd)} failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    return proc


@pytest.fixture(scope="module")
def smoke_repo(tmp_path_factory, git_copy):
    repo = tmp_path_factory.mktemp("repo")
    env = git_copy(repo, "profile=smoke", message="smoke")
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
        assert [k for k in metrics if k.startswith("perc_image/") and k.count("/") == 2 and k.endswith("/acc")]
        for attr in ("cell", "occupied", "color", "shape", "size"):
            assert 0.0 <= metrics[f"vision_probe/{attr}/acc"] <= 1.0 and metrics[f"vision_probe/{attr}/n"] > 0
    report = (repo / "data/reports/base.md").read_text()
    assert "| policy |" in report and "Vision tokens" in report and "by question type" in report


def test_perception_data_comes_through_generation_and_the_filter(smoke_repo):
    repo, _, _ = smoke_repo
    qa = json.loads((repo / "data/metrics/qa_generate.json").read_text())
    # The tiny policy writes garbage for the LLM path: it must be counted, not lost.
    assert qa["llm_captions"] == 4 and qa["unparseable_outputs"] + qa.get("candidates/llm", 0) >= 1
    assert qa["candidates/template"] > 0
    unparseable = (repo / "data/perception/qa/unparseable.jsonl").read_text().splitlines()
    assert len(unparseable) == qa["unparseable_outputs"]
    filt = json.loads((repo / "data/metrics/perc_filter.json").read_text())
    # the cascade: filter_large judges only what filter_small kept
    assert filt["filter/filter_small/n"] == qa["candidates"]
    assert filt["filter/filter_large/n"] == filt["filter/filter_small/kept"]
    assert filt["filter/filter_large/kept"] == filt["kept_intersection"]
    kept = sum(len((repo / f"data/sets/perc/perc_{s}.jsonl").read_text().splitlines()) for s in ("train", "val", "test"))
    assert kept == filt["kept_intersection"]
    verdicts = (repo / "data/perception/filter/filter_verdicts.jsonl").read_text().splitlines()
    assert len(verdicts) == qa["candidates"] + filt["filter/filter_small/kept"]
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
                                            "sets@vis", "difficulty", "train_1", "train_2", "train_3", "merged",
                                            "evaluate@base", "evaluate@staged", "evaluate@merged"}
    parents = {r["parent_run_id"] for r in records}
    assert len(parents) == 1
    parent = client.get_run(parents.pop())
    assert parent.info.status == "FINISHED"
    run = client.get_run(next(r["run_id"] for r in records if r["node"] == "base@policy"))
    assert "perc_image/acc" in run.data.metrics and run.data.params["pretrain.lr"] == "0.003"
    train = client.get_run(next(r["run_id"] for r in records if r["node"] == "train_2"))
    assert train.data.params["stage.sets"] == "['text']" and train.data.tags["stage.vision_tower"].startswith("trainable")
    curve = client.get_metric_history(train.info.run_id, "reward/accuracy")
    assert [m.step for m in curve] == [3, 4]  # the curriculum's global step: stage 1 ran steps 1-2
    assert client.get_run(next(r["run_id"] for r in records if r["node"] == "merged")).data.tags[
        "stage.vision_tower"] == "frozen"


def test_evaluation_report_compares_base_staged_and_merged(smoke_repo):
    import mlflow

    repo, env, _ = smoke_repo
    for model in ("base", "staged", "merged"):
        m = json.loads((repo / f"data/metrics/eval/{model}.json").read_text())
        for bench in ("tiny_perception", "tiny_vis_math", "tiny_text_math"):
            records = (repo / f"data/eval/{model}/{bench}.jsonl").read_text().splitlines()
            assert len(records) == m[f"{bench}/n"] == 8
        assert "overall" in m and "tiny_vis_math/attribution/wrong" in m
    report = (repo / "data/reports/eval/report.md").read_text()
    assert "| staged |" in report and "Overall" in report and "## Δ vs merged" in report
    assert (repo / "data/reports/eval/accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert "<table>" in (repo / "data/reports/eval/report.html").read_text()
    # DVC shows one metrics file, few enough columns for a terminal; each node's own metrics stay in its files
    headline = json.loads((repo / "data/metrics/headline.json").read_text())
    staged = json.loads((repo / "data/metrics/eval/staged.json").read_text())
    assert headline["staged"] == pytest.approx(staged["overall"], abs=1e-4)
    assert set(headline) == {"base", "staged", "merged", "vs_base", "vs_base_se", "vs_merged", "vs_merged_se"}
    shown = _run(["dvc", "metrics", "show"], repo, env).stdout
    assert "data/metrics/headline.json" in shown and "vs_merged_se" in shown and "data/metrics/eval" not in shown
    assert max(map(len, shown.splitlines())) <= 200, shown
    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    run_id = json.loads((repo / "data/runs/evaluate@staged.json").read_text())["run_id"]
    assert "overall" in client.get_run(run_id).data.metrics
    parent = json.loads((repo / "data/runs/evaluate@staged.json").read_text())["parent_run_id"]
    artifacts = [a.path for a in client.list_artifacts(parent, "reports/eval")]
    assert "reports/eval/report.md" in artifacts and "reports/eval/node_times.json" in artifacts
    times = json.loads((repo / "data/reports/eval/node_times.json").read_text())
    assert times["ran"] + times["restored"] == 17 and times["untimed"] == 0
    assert {r["node"] for r in times["nodes"]} >= {"raw", "perc_filter", "train_3", "merged", "evaluate@merged"}
    assert all(r["seconds"] >= 0 for r in times["nodes"]) and times["minutes"] > 0
    assert "## Node times" in report and "| merged |" in report.split("## Node times")[1]
    assert client.get_run(parent).data.metrics["dag/minutes"] == pytest.approx(times["minutes"])


def test_curriculum_stages_chain_checkpoints_and_report(smoke_repo):
    repo, _, _ = smoke_repo
    from transformers import AutoModelForImageTextToText

    for node, sets in (("train_1", ["perc"]), ("train_2", ["text"]), ("train_3", ["vis"]),
                       ("merged", ["perc", "text", "vis"])):
        boundary = json.loads((repo / f"data/models/{node}/trainer_state/boundary.json").read_text())
        m = json.loads((repo / f"data/metrics/train/{node}.json").read_text())
        expected = boundary["steps"]
        assert boundary["sets"] == sets and boundary["steps_done"] == expected
        assert boundary["carried_optimizer"] is False and (repo / f"data/models/{node}/model.safetensors").exists()
        for key in ("before/mean_acc", "after/mean_acc", "delta/mean_acc/se"):
            assert key in m, (node, key)
        assert ("reward/last_tenth" in m) == (expected > 0), node
        # the precision the node ran at, and why, beside the machine it chose on (smoke: fp32 explicitly)
        record = json.loads((repo / f"data/runs/{node}.json").read_text())
        assert record["settings"]["precision"] == {"precision": "fp32", "asked": "fp32",
                                                   "reason": "train.precision = fp32"}, node
        assert "cpu_capability" in record["machine"] and m.get("train/bf16", 0.0) == 0.0
    assert json.loads((repo / "data/models/train_2/trainer_state/boundary.json").read_text())[
        "started_from"] == "data/models/train_1"
    assert json.loads((repo / "data/models/merged/trainer_state/boundary.json").read_text())["vision_lr_scale"] == 0
    AutoModelForImageTextToText.from_pretrained(repo / "data/models/train_3")  # plain transformers loads it
    report = (repo / "data/reports/train.md").read_text()
    assert "| merged (all sets) |" in report and "staged" in report
    own = report.split("## Each stage on its own set, held out")[1]
    assert "| train_2 | text |" in own and "| merged | vis |" in own  # each stage on its set's val split
    assert (repo / "data/reports/train_rewards.png").read_bytes()[:4] == b"\x89PNG"


def test_every_stage_trains_all_its_steps_on_real_items_with_a_reward_signal(smoke_repo):
    # What makes the other smoke tests (resume, order, merged) compare runs that learnt something: each stage
    # trained every step on a non-empty set (D_perc too) and some group's rewards differed (a GRPO gradient).
    repo, _, _ = smoke_repo
    for node, name in (("train_1", "perc"), ("train_2", "text"), ("train_3", "vis")):
        m = json.loads((repo / f"data/metrics/train/{node}.json").read_text())
        boundary = json.loads((repo / f"data/models/{node}/trainer_state/boundary.json").read_text())
        history = [json.loads(r) for r in
                   (repo / f"data/models/{node}/trainer_state/history.jsonl").read_text().splitlines()]
        trained = m[f"data/{name}/items"] - sum(m.get(f"train/skipped_{why}", 0)
                                                for why in ("overlong", "no_signal", "single_answer"))
        assert "train/empty_set" not in m and trained > 0, (node, m)
        assert boundary["steps"] > 0 and boundary["steps_done"] == boundary["steps"] == len(history), node
        assert [r["step"] for r in history] == list(range(1, boundary["steps"] + 1)), node
        stds = [r["reward/group_std"] for r in history]
        assert max(stds) > 0 and min(r["reward/zero_std_frac"] for r in history) < 1, (node, history)
        if node == "train_1":  # the policy answers some of D_perc's questions right, not all
            assert 0 < max(r["reward/accuracy"] for r in history) < 1, history


_VOLATILE = ("seconds", "time/", "prompts_per_s")


def _stable(metrics: dict) -> dict:
    return {k: v for k, v in metrics.items() if not any(t in k for t in _VOLATILE)}


def test_a_killed_stage_resumes_and_matches_the_uninterrupted_run(smoke_repo):
    import signal
    import time

    repo, env, _ = smoke_repo
    uninterrupted = json.loads((repo / "data/metrics/train/train_2.json").read_text())
    history = (repo / "data/models/train_2/trainer_state/history.jsonl").read_text().splitlines()
    state = repo / ".resume/train_2/state.json"
    proc = subprocess.Popen([sys.executable, "stages/train.py", "train_2"], cwd=repo, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 600
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before its first resumable point"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert json.loads(state.read_text())["step"] == 1

    out = _run([sys.executable, "stages/train.py", "train_2"], repo, {**env, "CAPCURRICULUM_LOG": "INFO"})
    assert "resumed at step 1 of 2" in out.stderr
    resumed = json.loads((repo / "data/metrics/train/train_2.json").read_text())
    assert _stable(resumed) == _stable(uninterrupted)
    again = (repo / "data/models/train_2/trainer_state/history.jsonl").read_text().splitlines()
    assert [_stable(json.loads(r)) for r in again] == [_stable(json.loads(r)) for r in history]
    assert not state.exists()


def test_changing_the_order_reruns_only_the_slots_it_changes(smoke_repo):
    repo, env, _ = smoke_repo
    out = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "curriculum.order=[perc,vis,text]"], repo, env).stdout
    for node in ("raw", "init_models", "qa_generate", "perc_filter", "difficulty", "train_1", "baseline@merged"):
        assert f"Running stage '{node}'" not in out, node
    assert "Running stage 'check_params'" in out  # every params change is checked; its unchanged output re-runs nothing
    assert "Running stage 'train_2'" in out and "Running stage 'train_3'" in out
    assert "Running stage 'evaluate@staged'" in out and "Running stage 'evaluate@merged'" not in out
    assert "Running stage 'evaluate@base'" not in out
    order_exp = out.split("Ran experiment(s):")[-1].split()[0]
    back = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "curriculum.order=[perc,text,vis]"], repo, env).stdout
    assert "Running stage 'train_2'" not in back and "Running stage 'train_3'" not in back  # from the run-cache
    diff = _run(["dvc", "metrics", "diff", order_exp, "--all"], repo, env).stdout  # that experiment vs this one
    assert "data/metrics/headline.json" in diff and "vs_merged" in diff
    assert max(map(len, diff.splitlines())) <= 200, diff
    # the two experiments side by side, what differs between them, in a terminal's width
    shown = _run(["dvc", "exp", "show", "--only-changed", "--drop", ".*/", "--no-pager"], repo, {**env, "COLUMNS": "1000"}).stdout
    assert "curriculum.order" in shown and "data/" not in shown
    assert max(map(len, shown.splitlines())) <= 200, shown
    sft = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "curriculum.method.perc=sft"], repo, env).stdout
    assert all(f"Running stage '{n}'" in sft for n in ("train_1", "train_2", "train_3"))  # perc's slot and after
    assert "Running stage 'baseline@merged'" not in sft and "Running stage 'perc_filter'" not in sft
    # a new split of the same total: the stages re-run, the merged baseline (merged.steps = the total) does not
    split = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "curriculum.steps=[1,2,3]"], repo, env).stdout
    assert all(f"Running stage '{n}'" in split for n in ("train_1", "train_3"))
    assert "Running stage 'baseline@merged'" not in split and "Running stage 'evaluate@merged'" not in split


def test_a_queued_sweep_of_orders_runs_every_experiment(smoke_repo):
    repo, env, _ = smoke_repo
    # the README's sweep form: one -S with several lists queues one experiment per list
    queued = _run(["dvc", "exp", "run", "--queue", "-S", "profile=smoke", "-S",
                   "curriculum.order=[text,perc,vis],[vis,text,perc]"], repo, env).stdout
    assert queued.count("Queued experiment") == 2, queued
    out = _run(["dvc", "exp", "run", "--run-all", "--jobs", "1"], repo, env)
    status = _run(["dvc", "queue", "status"], repo, env).stdout
    assert status.count("Success") >= 2 and "Failed" not in status, out.stdout[-3000:] + out.stderr[-3000:]
    # each experiment carries its own evaluation: the metric column is filled for the queued ones too
    shown = _run(["dvc", "exp", "show", "--csv", "--keep", "overall|curriculum.order"], repo, env).stdout
    rows = [r for r in shown.splitlines()[1:] if "text" in r and "vis" in r]
    assert len(rows) >= 3, shown[-3000:]


def test_the_science_report_reads_the_sweeps_experiments_from_the_dvc_cache(smoke_repo):
    """README's science sweep in small: the default chain (from the run-cache) and a second RL seed run as
    experiments; with the caption-SFT experiment of seed 0 (above) the report pairs staged with merged over two
    seeds and RL with SFT over one, reading each experiment's records at its revision, and names what it left out
    (the other orders, the other steps)."""
    repo, env, _ = smoke_repo
    _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "train.seed=1"], repo, env)
    _run(["dvc", "exp", "run", "-S", "profile=smoke"], repo, env)  # the workspace back on the default, seed 0
    _run([sys.executable, "-m", "capcurriculum.science_report"], repo, env)
    text = (repo / "data/reports/science.md").read_text()
    rows = {line.split(" | ")[0].lstrip("| "): line for line in text.splitlines() if line.startswith("| ")}
    assert "Seeds: 0, 1." in text, text
    assert rows["staged beats merged"].count(" ± ") >= 3, text     # two seeds' deltas and their mean ± se
    assert "(one seed)" in rows["RL beats caption SFT for perception"], text
    assert "| sft_perc | 0 |" in text and "| merged | 1 |" in text, text
    assert "not a variant of the report (order ['vis', 'text', 'perc']" in text, text
    assert "curriculum.steps is [1, 2, 3]" in text or "curriculum.s1.steps is 1" in text, text
    import mlflow  # the report is a finished run of the experiment, its figures metrics, its file an artifact

    client = mlflow.MlflowClient(f"sqlite:///{repo / 'mlflow.db'}")
    exp = client.get_experiment_by_name("capcurriculum")
    (run,) = client.search_runs([exp.experiment_id], "attributes.run_name = 'science_report'")
    assert run.info.status == "FINISHED" and run.data.metrics["staged_vs_merged/seeds"] == 2
    assert [a.path for a in client.list_artifacts(run.info.run_id)] == ["science.json", "science.md"]
    part = json.loads((repo / "data/reports/science.json").read_text())  # this workspace's part, for a later one
    assert sorted(part["per_seed"]["staged_vs_merged"]) == ["0", "1"] and "train.seed" not in part["compared"]


def test_the_staged_only_dag_leaves_the_merged_baseline_out_and_trains_nothing_again(smoke_repo):
    """merged.enabled=false (the tiny default) drops baseline@merged and evaluate@merged from the DAG: nothing
    trains or evaluates again, the two reports re-run without merged, and the merged run record left in the
    workspace by the runs above is not counted as one of this DAG's nodes."""
    repo, env, _ = smoke_repo
    assert (repo / "data/runs/merged.json").exists()
    out = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "merged.enabled=false"], repo, env).stdout
    assert "Running stage 'train_report'" in out and "Running stage 'report'" in out, out
    for node in ("baseline@merged", "evaluate@merged", "train_3", "evaluate@base", "evaluate@staged"):
        assert f"Running stage '{node}'" not in out, node
    report = (repo / "data/reports/eval/report.md").read_text()
    assert "## Δ vs base" in report and "merged" not in report.split("## Node times")[0]
    assert set(json.loads((repo / "data/metrics/headline.json").read_text())) == {"base", "staged", "vs_base",
                                                                                   "vs_base_se"}
    times = json.loads((repo / "data/reports/eval/node_times.json").read_text())
    assert {r["node"] for r in times["nodes"]} >= {"train_3", "evaluate@staged"}
    assert not {r["node"] for r in times["nodes"]} & {"merged", "evaluate@merged"}
    train = (repo / "data/reports/train.md").read_text()
    assert "| train_3 (+vis) |" in train and "merged" not in train
    back = _run(["dvc", "exp", "run", "-S", "profile=smoke"], repo, env).stdout  # merged back, from the run-cache
    assert "Running stage 'baseline@merged'" not in back and "## Δ vs merged" in (
        repo / "data/reports/eval/report.md").read_text()


def test_the_pass_rate_curriculum_computes_its_cache_once_and_reruns_only_training(smoke_repo):
    repo, env, _ = smoke_repo
    out = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "train.difficulty=pass_rate"], repo, env).stdout
    assert all(f"Running stage '{n}'" in out for n in ("difficulty", "train_1", "train_2", "train_3", "baseline@merged"))
    assert "Running stage 'perc_filter'" not in out and "Running stage 'sets@text'" not in out
    assert sorted(p.name for p in (repo / "data/difficulty").iterdir()) == [
        "perc.jsonl", "status.json", "text.jsonl", "vis.jsonl"]
    assert json.loads((repo / "data/metrics/difficulty.json").read_text())["text/items"] > 0
    back = _run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", "train.difficulty=none"], repo, env).stdout
    assert "Running stage 'train_2'" not in back and "Running stage 'baseline@merged'" not in back  # from the run-cache


def _kill_at_the_first_point_and_resume(cmd: list[str], repo: Path, env: dict,
                                        again: list[str] | None = None) -> subprocess.CompletedProcess:
    """Start `cmd` (a launcher of train_2) in a session of its own, SIGKILL that session at train_2's first
    resumable point, check that no worker outlived it, then run `again` (default `cmd`) to the end."""
    import signal
    import time

    state = repo / ".resume/train_2/state.json"
    proc = subprocess.Popen(cmd, cwd=repo, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    deadline = time.time() + 600
    while not state.exists() and proc.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the stage ended before its first resumable point"
    os.killpg(proc.pid, signal.SIGKILL)  # the launcher's group; torchrun's workers have sessions of their own
    proc.wait()
    deadline = time.time() + 30
    while _processes_running("stages/train.py", repo) and time.time() < deadline:
        time.sleep(0.1)
    assert not _processes_running("stages/train.py", repo), "a worker outlived its launcher"
    assert json.loads(state.read_text())["step"] == 1
    out = _run(again or cmd, repo, {**env, "CAPCURRICULUM_LOG": "INFO"})
    assert "resumed at step 1 of 2" in out.stderr
    assert not state.exists()
    return out


def _processes_running(script: str, cwd: Path) -> list[int]:
    """Pids whose command line runs `script` from `cwd` (Linux /proc)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().split(b"\0")
            if script.encode() in cmd and Path(os.readlink(proc / "cwd")) == cwd:
                found.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return found


def test_a_trl_stage_runs_under_the_readmes_accelerate_command_and_resumes_after_a_kill(smoke_repo):
    # Last in this module: it rewrites train_2's outputs outside DVC. The README's GPU command
    # with the repository's own accelerate config (DeepSpeed ZeRO-2), two CPU processes, the trl engine; killed at
    # its first resumable point, it resumes through DeepSpeed's checkpoint to the uninterrupted metrics.
    import socket

    import yaml

    repo, env, _ = smoke_repo
    params = repo / "params.yaml"
    original = params.read_text()
    cfg = yaml.safe_load(original)
    cfg["train"].update(engine="trl", completion_forward="transformers", compile=False)
    params.write_text(yaml.safe_dump(cfg, sort_keys=False))
    env = {k: v for k, v in env.items() if not k.startswith("ACCELERATE")}

    def launch() -> list[str]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        return [sys.executable, "-m", "accelerate.commands.launch", "--config_file", "conf/accelerate/zero2.yaml",
                "--num_processes", "2", "--main_process_port", str(port), "stages/train.py", "train_2"]

    try:
        out = _run(launch(), repo, env)
        boundary = json.loads((repo / "data/models/train_2/trainer_state/boundary.json").read_text())
        assert boundary["engine"] == "trl" and boundary["steps_done"] == 2, boundary
        assert boundary["launcher"] == "accelerate (DEEPSPEED, 2 processes)", (boundary, out.stderr[-2000:])
        m = json.loads((repo / "data/metrics/train/train_2.json").read_text())
        assert "reward/last_tenth" in m and "after/mean_acc" in m
        _kill_at_the_first_point_and_resume(launch(), repo, env, again=launch())
        assert _stable(json.loads((repo / "data/metrics/train/train_2.json").read_text())) == _stable(m)
    finally:
        params.write_text(original)


def test_lineage_filters_are_the_policys_saved_steps_through_dvc(tmp_path, git_copy):
    """The tiny profile's filters of one lineage (models.filter_*.kind: lineage), at the smoke profile's sizes:
    base@policy keeps the two steps, base@filter_small and base@filter_large copy them out (no pre-training of
    their own) and base_report names them; a moved step re-runs base@policy and both filters, nothing is stale."""
    lineage = ["profile=smoke", "~models.filter_small", "~models.filter_large", "base.pretrain.filter_small=null",
               "base.pretrain.filter_large=null", "+models.filter_small={kind: lineage, step: 40}",
               "+models.filter_large={kind: lineage, step: 80}"]
    env = git_copy(tmp_path, *lineage, message="lineage")
    out = _run(["dvc", "repro", "base_report"], tmp_path, env).stdout
    assert "Running stage 'init_models'" in out and not (tmp_path / "data/models/init/filter_small").exists()
    policy = tmp_path / "data/models/base/policy"
    assert sorted(p.name for p in (policy / "checkpoints").iterdir()) == ["step_40", "step_80"]
    for role, step in (("filter_small", 40), ("filter_large", 80)):
        copied = (tmp_path / "data/models/base" / role / "model.safetensors").read_bytes()
        assert copied == (policy / "checkpoints" / f"step_{step}" / "model.safetensors").read_bytes(), role
        metrics = json.loads((tmp_path / "data/metrics/base" / f"{role}.json").read_text())
        assert metrics["lineage/step"] == step and metrics["perc_caption/n"] > 0
    assert "| filter_large (the policy at step 80) |" in (tmp_path / "data/reports/base.md").read_text()
    moved = _run([sys.executable, "-m", "capcurriculum.config", *lineage[:-1],
                  "+models.filter_large={kind: lineage, step: 100}"], tmp_path, env)
    assert moved.returncode == 0
    again = _run(["dvc", "repro", "base_report"], tmp_path, env).stdout
    assert all(f"Running stage '{n}'" in again for n in ("base@policy", "base@filter_small", "base@filter_large"))
    assert {p.name for p in (policy / "checkpoints").iterdir()} == {"step_40", "step_100"}
