"""Run a DVC node's command directly, in Docker, or in Apptainer (DESIGN.md section 6).

DVC runs on the host; only the node's command goes into the project's CUDA image. A stage's cmd
becomes `python -m capcurriculum.container run -- python stages/x.py ...`, and the runner mode is
chosen per machine, not per commit:

    CAPCURRICULUM_RUNNER   direct (default) | docker | apptainer    (overrides the config value)
    CAPCURRICULUM_IMAGE    image reference, or an .sif path for apptainer
    CAPCURRICULUM_ENV_PASSTHROUGH   extra variable names to hand into the container, comma-separated
    CAPCURRICULUM_MOUNTS   extra host directories to mount at the same path, comma-separated (e.g. the
                           HF_HOME cache, so hub downloads outlive the --rm container)

`direct` runs the argv untouched: the default everywhere, and what CI uses.
"""

from __future__ import annotations

import argparse
import logging
import os
import shlex
import subprocess
import sys
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

MODES = ("direct", "docker", "apptainer")
DEFAULT_MODE = "direct"
DEFAULT_IMAGE = "capcurriculum:gpu"

MODE_ENV = "CAPCURRICULUM_RUNNER"
IMAGE_ENV = "CAPCURRICULUM_IMAGE"
PASSTHROUGH_ENV = "CAPCURRICULUM_ENV_PASSTHROUGH"
MOUNTS_ENV = "CAPCURRICULUM_MOUNTS"
MODE_KEY = "runner.mode"
IMAGE_KEY = "runner.image"

# Variables a node may need inside the container. They are handed over by *name* only, so a secret
# (HF_TOKEN) never appears on a command line, in `ps`, or in the logged command.
DEFAULT_PASSTHROUGH = (
    "HF_TOKEN",
    "HF_HOME",  # only useful when the directory is the workdir's or in CAPCURRICULUM_MOUNTS
    "CAPCURRICULUM_CACHE",
    "HF_HUB_OFFLINE",
    "TRANSFORMERS_OFFLINE",
    "HF_DATASETS_OFFLINE",
    "MLFLOW_TRACKING_URI",
    "CAPCURRICULUM_LOG",
    "CUDA_VISIBLE_DEVICES",
    # Set by `dvc exp run`; the MLflow parent-run lookup reads them (DESIGN.md section 6).
    "DVC_ROOT",
    "DVC_STAGE",
    "DVC_EXP_NAME",
    "DVC_EXP_BASELINE_REV",
)


class RunnerConfigError(ValueError):
    """A runner setting has a value the runner cannot use; the message names the setting."""


@dataclass(frozen=True)
class RunnerSettings:
    # How a node's command runs: direct (on the host, CI's), docker or apptainer (the project's CUDA image).
    mode: str
    # The image the command runs in (a tag, a digest or an .sif path); a node depends on it, so a new build re-runs.
    image: str


def _runner_value(config: Mapping, key: str) -> object:
    """config's runner.<key>; absent is an error naming it (conf/config.yaml sets both)."""
    section = config["runner"] if "runner" in config else None
    if not isinstance(section, Mapping) or key not in section:
        raise RunnerConfigError(f"runner.{key} is missing from the params file (conf/config.yaml sets it)")
    return section[key]


def resolve_settings(config: Mapping | None = None, environ: Mapping[str, str] | None = None) -> RunnerSettings:
    """Mode and image from the params file's `runner` section, each overridden by its environment variable;
    without a params file (`--params` not given), direct with the project's image.

    The environment wins so that one committed config serves a laptop (direct), a Docker host and a
    SLURM cluster (apptainer) without edits.
    """
    environ = os.environ if environ is None else environ
    if environ.get(MODE_ENV):
        mode, source = environ[MODE_ENV], MODE_ENV
    else:
        mode, source = (DEFAULT_MODE if config is None else _runner_value(config, "mode")), MODE_KEY
    mode = str(mode).strip().lower()
    if mode not in MODES:
        raise RunnerConfigError(f"{source}={mode!r} is not a runner mode; allowed values: {', '.join(MODES)}")
    image = environ.get(IMAGE_ENV) or (DEFAULT_IMAGE if config is None else _runner_value(config, "image"))
    return RunnerSettings(mode=mode, image=str(image))


def passthrough_names(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The default names plus any listed in CAPCURRICULUM_ENV_PASSTHROUGH, in order, without repeats."""
    environ = os.environ if environ is None else environ
    extra = [name.strip() for name in environ.get(PASSTHROUGH_ENV, "").split(",") if name.strip()]
    for name in extra:
        if "=" in name:
            raise RunnerConfigError(
                f"{PASSTHROUGH_ENV} lists variable names only, got {name.split('=')[0]}=...; "
                "values are read from the environment so they never reach the command line"
            )
    return tuple(dict.fromkeys([*DEFAULT_PASSTHROUGH, *extra]))


def extra_mounts(environ: Mapping[str, str] | None = None) -> tuple[str, ...]:
    environ = os.environ if environ is None else environ
    return tuple(path.strip() for path in environ.get(MOUNTS_ENV, "").split(",") if path.strip())


def apptainer_image_uri(image: str) -> str:
    """An .sif file (or any explicit URI) is used as given; a registry reference gets docker://."""
    if image.endswith(".sif") or "://" in image:
        return image
    return f"docker://{image}"


def build_command(
    argv: Sequence[str],
    *,
    mode: str,
    image: str = DEFAULT_IMAGE,
    workdir: str | os.PathLike[str] = ".",
    uid: int | None = None,
    gid: int | None = None,
    gpus: str | None = "all",
    env_passthrough: Iterable[str] = (),
    mounts: Iterable[str] = (),
) -> list[str]:
    """The command line that runs `argv` in `workdir` under the given runner mode.

    The workdir is mounted at its own path, so absolute paths that DVC hands out (DVC_ROOT, the
    MLflow SQLite path, the temp copy of a queued experiment) mean the same inside and out.
    `mounts` are further host directories, also mounted at their own paths.
    `gpus=None` runs without GPUs (docker omits --gpus, apptainer omits --nv).
    """
    argv = list(argv)
    if not argv:
        raise RunnerConfigError("nothing to run: the command after `--` is empty")
    if mode == "direct":
        return argv
    workdir = str(Path(workdir).resolve())
    # The mounted checkout's src/ goes first on sys.path, ahead of the copy of capcurriculum baked
    # into the image, so a node always runs the code that DVC hashed as its dependency.
    pythonpath = f"PYTHONPATH={workdir}/src"
    names = list(dict.fromkeys(env_passthrough))
    extra = [str(Path(path).expanduser().resolve()) for path in mounts]
    if mode == "docker":
        uid = os.getuid() if uid is None else uid
        gid = os.getgid() if gid is None else gid
        command = ["docker", "run", "--rm"]
        if gpus:
            command += ["--gpus", gpus]
        # --ipc=host: PyTorch data loaders and NCCL need more shared memory than Docker's 64 MB.
        command += ["--ipc=host", "-v", f"{workdir}:{workdir}"]
        for path in extra:
            command += ["-v", f"{path}:{path}"]
        command += ["-w", workdir, "--user", f"{uid}:{gid}"]
        # The host uid usually has no home in the image; Triton, vLLM and the HF hub cache under $HOME.
        command += ["-e", pythonpath, "-e", "HOME=/tmp"]
        for name in names:
            command += ["-e", name]  # `-e NAME` copies the value from docker's own environment
        return [*command, image, *argv]
    if mode == "apptainer":
        # --cleanenv: the host's venv (PATH, VIRTUAL_ENV, PYTHONPATH) must not leak in; the names to
        # pass arrive as APPTAINERENV_<NAME> in the environment (see runner_environment).
        command = ["apptainer", "exec"]
        if gpus:
            command.append("--nv")
        command += ["--cleanenv", "--bind", ",".join([workdir, *extra]), "--pwd", workdir, "--env", pythonpath]
        return [*command, apptainer_image_uri(image), *argv]
    raise RunnerConfigError(f"{MODE_KEY}={mode!r} is not a runner mode; allowed values: {', '.join(MODES)}")


def runner_environment(
    mode: str, env_passthrough: Iterable[str], environ: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The environment to exec the runner with.

    Apptainer has no `-e NAME` form: with --cleanenv only APPTAINERENV_<NAME> variables reach the
    container, so the values travel in the environment, never in the argv.
    """
    env = dict(os.environ if environ is None else environ)
    if mode == "apptainer":
        for name in env_passthrough:
            if name in env:
                env[f"APPTAINERENV_{name}"] = env[name]
    return env


def image_id(settings: RunnerSettings, *, resolve: bool = False) -> str:
    """What a DVC node should depend on: the image in container modes, `direct` otherwise.

    In direct mode the image is irrelevant, so changing CAPCURRICULUM_IMAGE must not re-run CPU runs.
    `resolve` (docker only) appends the local image's content id, so rebuilding a mutable tag
    (capcurriculum:gpu) still counts as a new image.
    """
    if settings.mode == "direct":
        return "direct"
    if settings.mode == "apptainer":
        return f"apptainer:{apptainer_image_uri(settings.image)}"
    identity = f"docker:{settings.image}"
    if resolve:
        inspect = ["docker", "image", "inspect", "--format", "{{.Id}}", settings.image]
        try:
            found = subprocess.run(inspect, capture_output=True, text=True, check=True, timeout=60)
        except (OSError, subprocess.CalledProcessError) as error:
            detail = getattr(error, "stderr", "") or error
            raise RunnerConfigError(f"{IMAGE_ENV}={settings.image!r}: cannot inspect the image ({detail})") from error
        identity += f"@{found.stdout.strip()}"
    return identity


def _load_config(path: str | None) -> Mapping | None:
    if path is None:
        return None
    import yaml

    try:
        return yaml.safe_load(Path(path).read_text()) or {}
    except FileNotFoundError as error:
        raise RunnerConfigError(f"--params {path}: no such file") from error


def main(args: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m capcurriculum.container", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--params", help="YAML file with a `runner: {mode, image}` section (env still wins)")
    commands = parser.add_subparsers(dest="action", required=True)
    run = commands.add_parser("run", help="run the command after `--` under the chosen runner")
    run.add_argument("--no-gpus", action="store_true", help="do not request GPUs from the container runtime")
    run.add_argument("argv", nargs=argparse.REMAINDER)
    ident = commands.add_parser("image-id", help="print the runner identity that nodes should depend on")
    ident.add_argument("--resolve", action="store_true", help="docker: append the local image id (sha256)")
    options = parser.parse_args(args)

    logging.basicConfig(level=os.environ.get("CAPCURRICULUM_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        settings = resolve_settings(_load_config(options.params))
        if options.action == "image-id":
            print(image_id(settings, resolve=options.resolve))
            return 0
        argv = options.argv[1:] if options.argv[:1] == ["--"] else options.argv
        names = passthrough_names()
        command = build_command(argv, mode=settings.mode, image=settings.image, workdir=os.getcwd(),
                                gpus=None if options.no_gpus else "all", env_passthrough=names,
                                mounts=extra_mounts())
    except RunnerConfigError as error:
        parser.exit(2, f"error: {error}\n")
    log.info("runner %s: %s", settings.mode, shlex.join(command))
    sys.stdout.flush()
    sys.stderr.flush()
    # exec, not subprocess: the node's exit code and signals (DVC's Ctrl-C) reach DVC unchanged.
    os.execvpe(command[0], command, runner_environment(settings.mode, names))
    return 0  # not reached


if __name__ == "__main__":
    sys.exit(main())
