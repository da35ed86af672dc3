"""The `check_params` node: under `dvc exp run`, a bad value fails before any node does work, naming its key
(issue 38, item 5), through the same check as `python -m capcurriculum.config` (tests/test_config.py)."""

import subprocess

import pytest

pytestmark = pytest.mark.slow

# What a hostile user passed to `dvc exp run -S` (issue 38): each fails in check_params, naming the key.
BAD = [
    ("+foo=1", "foo"),  # no other node reads it: before the check node, the experiment ran nothing and passed
    ("curriculum.order=[perc,txt,vis]", "curriculum.order[1]"),  # an unknown set name
    ("curriculum.steps=[1,2]", "curriculum.steps"),  # a steps list shorter than the order
    ("curriculum.order=[perc,text]", "curriculum.order"),  # two sets for three slots
    ("curriculum.order=vis", "curriculum.order"),  # one name: what each experiment of the comma form's sweep gets
    ("train.seed=abc", "train.seed"),
    ("train.reward.accuracy_weight=-1", "train.reward.accuracy_weight"),  # once found only in train_1
    ("train.sft.lr=-1", "train.sft.lr"),
    ("train.reward.timeout_s=abc", "train.reward.timeout_s"),
]


@pytest.fixture(scope="module")
def fresh_repo(tmp_path_factory, git_copy):
    repo = tmp_path_factory.mktemp("repo")
    return repo, git_copy(repo, "profile=smoke", message="smoke")


@pytest.mark.parametrize(("override", "key"), BAD, ids=[b[0] for b in BAD])
def test_a_bad_value_under_dvc_exp_run_fails_first_naming_its_key(fresh_repo, override, key, tmp_path):
    repo, env = fresh_repo
    # the same check through the config CLI first: its own message, no traceback, nothing written
    cli = subprocess.run(["python", "-m", "capcurriculum.config", "profile=smoke", override, "--out",
                          str(tmp_path / "params.yaml")], cwd=repo, env=env, capture_output=True, text=True, timeout=300)
    assert cli.returncode != 0 and f"config: {key}: " in cli.stderr and "Traceback" not in cli.stderr, cli.stderr[-3000:]
    assert not (tmp_path / "params.yaml").exists()
    proc = subprocess.run(["dvc", "exp", "run", "-S", "profile=smoke", "-S", override], cwd=repo, env=env,
                          capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out[-3000:]
    # check_params refuses it, or DVC while composing conf/ (the slot views' resolvers), before any node
    assert f"params.yaml: {key}: " in out or f"resolving interpolation: {key}: " in out, out[-3000:]
    assert "Traceback" not in out
    ran = [line for line in out.splitlines() if line.startswith("Running stage")]
    assert ran in ([], ["Running stage 'check_params':"]), ran  # no node after the check ran
    assert not (repo / "data/raw").exists()
    subprocess.run(["git", "checkout", "--", "params.yaml"], cwd=repo, check=True)  # what `exp run` left


def test_the_good_config_passes_the_check_and_reaches_the_first_node(fresh_repo):
    repo, env = fresh_repo
    proc = subprocess.run(["dvc", "repro", "--single-item", "check_params"], cwd=repo, env=env, capture_output=True,
                          text=True, timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-3000:]
    status = subprocess.run(["dvc", "status", "raw"], cwd=repo, env=env, capture_output=True, text=True)
    assert "check_params" not in status.stdout and "raw" in status.stdout  # the check is done; raw still to run
