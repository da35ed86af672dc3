"""What every stage CLI does first: logging, seeding, threads, and where its run record goes."""

from __future__ import annotations

import logging
import os
import random
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # settings reads the config; runtime only takes what it built
    from capcurriculum.settings.train import LauncherSettings

RUNS_DIR = Path("data/runs")


def cpu_only_deepspeed() -> None:
    """On a machine without NVIDIA devices, tell DeepSpeed it is on the CPU (DS_ACCELERATOR=cpu) before anything
    imports it: otherwise every node that imports transformers' or TRL's DeepSpeed glue prints "Setting
    accelerator to CPU. If you have GPU or other accelerator, we were unable to detect it.", a warning nobody can
    act on. A value the user set is kept; a GPU machine (/dev/nvidia*) is left to DeepSpeed's own detection."""
    if "DS_ACCELERATOR" not in os.environ and not any(Path("/dev").glob("nvidia[0-9]*")):
        os.environ["DS_ACCELERATOR"] = "cpu"
METRICS_DIR = Path("data/metrics")


def setup_logging(level: str | None = None) -> None:
    cpu_only_deepspeed()
    logging.basicConfig(level=level or os.environ.get("CAPCURRICULUM_LOG", "INFO"),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    for noisy in ("alembic", "mlflow.store", "urllib3", "filelock", "httpx"):
        logging.getLogger(noisy).setLevel(logging.WARNING)


# The libraries whose arithmetic or data handling a node's numbers depend on.
RECORDED_PACKAGES = ("torch", "transformers", "accelerate", "trl", "numpy", "pillow", "tokenizers", "math-verify")
# CPU features that choose torch's kernels, and with them the order of float sums.
RECORDED_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
# Environment variables that cap torch's (ATen's) and oneDNN's instruction sets below the processor's.
ISA_CAP_VARS = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA")


def cpu_info() -> dict[str, str]:
    """The first processor's block of /proc/cpuinfo (model name, family, flags or, on ARM, Features); empty where
    there is none (macOS, Windows)."""
    info: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if not line.strip():
                break
            key, _, value = line.partition(":")
            info.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    return info


def machine_record() -> dict[str, object]:
    """What a node ran on: package versions, CPU model and kernel-choosing flags, threads, GPUs. A seed fixes
    a node's numbers on one such machine; pre-training on another CPU or torch lands elsewhere (float sums in
    another order), so runs that disagree can be told apart by this record."""
    import platform
    from importlib import metadata

    import torch

    packages = {}
    for name in RECORDED_PACKAGES:
        try:  # torch's own version string carries its build tag (+cpu, +cu130); its metadata may not
            packages[name] = torch.__version__ if name == "torch" else metadata.version(name)
        except metadata.PackageNotFoundError:
            packages[name] = None
    info = cpu_info()
    # A virtual machine may name only the vendor ("AMD EPYC"); family/model/stepping tell generations apart.
    cpu = info.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in info:
        cpu += f" (family {info['cpu family']}, model {info.get('model')}, stepping {info.get('stepping')})"
    flags = set(info.get("flags", "").split())
    gpus = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    return {"python": platform.python_version(), "packages": packages, "cpu": cpu,
            "cpu_flags": sorted(f for f in RECORDED_CPU_FLAGS if f in flags),
            # the kernel sets torch ran with, and the variables that cap them below what the processor has
            "cpu_capability": torch.backends.cpu.get_cpu_capability(),
            "cpu_isa_caps": {k: os.environ[k] for k in ISA_CAP_VARS if k in os.environ}, "cpu_count": os.cpu_count(),
            "torch_threads": torch.get_num_threads(), "gpus": gpus}


def seed_everything(seed: int) -> None:
    import torch

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def dag_nodes(params: Mapping[str, Any], dvc_yaml: str | Path = "dvc.yaml") -> list[tuple[str, dict, dict[str, str]]]:
    """dvc.yaml's nodes as DVC expands them under `params` (params.yaml's content), in dvc.yaml's order: a
    `foreach` over a literal list or mapping, or over `${dotted.key}` of the params, gives one `<group>@<key>`
    node per entry, with the `${key}`, `${item}` and `${item.<field>}` its `do` substitutes (`substitute`)."""
    import yaml

    out: list[tuple[str, dict, dict[str, str]]] = []
    for name, stage in (yaml.safe_load(Path(dvc_yaml).read_text()).get("stages") or {}).items():
        if "foreach" not in stage:
            out.append((name, stage, {}))
            continue
        items = stage["foreach"]
        if isinstance(items, str) and items.startswith("${") and items.endswith("}"):
            ref, items = items[2:-1], params
            for part in ref.split("."):
                if not isinstance(items, Mapping) or part not in items:
                    raise KeyError(f"{dvc_yaml}: stage {name!r} loops over ${{{ref}}}, which the params lack")
                items = items[part]
        pairs = [(str(i), i) for i in items] if isinstance(items, list) else list((items or {}).items())
        out += [(f"{name}@{k}", stage["do"], {"${key}": str(k), "${item}": str(v),
                                               **{f"${{item.{f}}}": str(x) for f, x in
                                                  (v.items() if isinstance(v, Mapping) else ())}}) for k, v in pairs]
    return out


def substitute(text: str, subs: Mapping[str, str]) -> str:
    for k, v in subs.items():
        text = text.replace(k, v)
    return text


def declared_run_records(node: str, dvc_yaml: str | Path = "dvc.yaml",
                         params: str | Path | Mapping[str, Any] = "params.yaml") -> list[Path]:
    """The run records (data/runs/*.json) that `node` depends on in dvc.yaml, in the DAG's order: the one list of
    which nodes a report node covers, so that what it reads is what DVC knows it reads. A dependency on the folder
    data/runs itself stands for every record the DAG's nodes write under `params` (a node merged.enabled adds
    included; the stale record of one it removed, left in the folder, not)."""
    import yaml

    stage = (yaml.safe_load(Path(dvc_yaml).read_text()).get("stages") or {}).get(node)
    if stage is None:
        raise KeyError(f"{dvc_yaml}: no stage {node!r}")
    records: list[Path] = []
    for dep in stage.get("deps") or []:
        dep = str(dep).rstrip("/")
        if dep == RUNS_DIR.as_posix():
            values = params if isinstance(params, Mapping) else yaml.safe_load(Path(params).read_text()) or {}
            records += [Path(p) for _, stage, subs in dag_nodes(values, dvc_yaml) for p in _outs(stage, subs)
                        if p.startswith(f"{RUNS_DIR.as_posix()}/")]
        elif dep.startswith(f"{RUNS_DIR.as_posix()}/"):
            records.append(Path(dep))
    if not records:
        raise ValueError(f"{dvc_yaml}: stage {node!r} lists no {RUNS_DIR.as_posix()}/*.json among its deps")
    return records


def _outs(stage: Mapping[str, Any], subs: Mapping[str, str]) -> list[str]:
    return [substitute(next(iter(o)) if isinstance(o, dict) else str(o), subs) for o in stage.get("outs") or []]


def run_file(node: str) -> Path:
    """The node's MLflow run record: a DVC output, so a run-cache restore brings it back."""
    return RUNS_DIR / f"{node}.json"


def launched_accelerator():
    """An `accelerate.Accelerator` when a launcher (`accelerate launch`, train.launcher; torchrun) started
    this process with DeepSpeed or as one of several (it sets ACCELERATE_USE_DEEPSPEED / WORLD_SIZE); None
    for a plain `python` run. Without CUDA the processes are CPU data parallel over gloo."""
    deepspeed = os.environ.get("ACCELERATE_USE_DEEPSPEED", "").lower() == "true"
    if not deepspeed and int(os.environ.get("WORLD_SIZE", "1")) < 2:
        return None
    _die_with_launcher()
    from datetime import timedelta

    import torch
    from accelerate import Accelerator
    from accelerate.utils import InitProcessGroupKwargs

    # The main process evaluates alone before and after training while the others wait in a collective.
    # Without CUDA, DeepSpeed's processes talk over gloo: named here, because accelerate finds no backend for a CPU
    # under DeepSpeed and would count one process in each (each then trains alone and writes the node's outputs)
    cuda = torch.cuda.is_available()
    wait = InitProcessGroupKwargs(timeout=timedelta(hours=4), backend="gloo" if deepspeed and not cuda else None)
    accelerator = Accelerator(cpu=not (deepspeed or cuda), kwargs_handlers=[wait])
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if accelerator.num_processes != world:
        raise RuntimeError(f"accelerate counts {accelerator.num_processes} process(es) of the launcher's {world}")
    return accelerator


LAUNCHER_PID = "CAPCURRICULUM_LAUNCHER_PID"


def relaunch_accelerate(launcher: LauncherSettings, argv: list[str]) -> None:
    """Re-run this script under `accelerate launch` when train.launcher asks for it (kind: accelerate) and no
    launcher started it already: the DVC node's `python stages/train.py <node>` becomes
    `accelerate launch --config_file <config_file> --num_processes N --num_machines M <args...> <argv>`.
    Returns only when there is nothing to do (kind: python, or already launched)."""
    if launcher.kind == "python":
        return
    if "WORLD_SIZE" in os.environ or os.environ.get("ACCELERATE_USE_DEEPSPEED") or "LOCAL_RANK" in os.environ:
        return
    cmd = accelerate_command(launcher, argv)
    logging.getLogger(__name__).info("train.launcher: %s", " ".join(cmd))
    sys.stdout.flush()
    sys.stderr.flush()
    os.environ[LAUNCHER_PID] = str(os.getpid())  # exec keeps the pid: the launcher is the workers' parent
    os.execv(sys.executable, cmd)


def accelerate_command(launcher: LauncherSettings, argv: list[str]) -> list[str]:
    """train.launcher (kind: accelerate) as a command line; `args`: accelerate launch's own flags, passed on
    (e.g. --machine_rank and --main_process_ip on a multi-node job, --use_cpu on a machine without GPUs)."""
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if launcher.config_file:
        cmd += ["--config_file", launcher.config_file]
    cmd += ["--num_processes", str(launcher.num_processes), "--num_machines", str(launcher.num_machines)]
    return [*cmd, *launcher.args, *argv]


def _die_with_launcher() -> None:
    """torchrun (and `accelerate launch` with DeepSpeed, through it) starts each worker in a session of its
    own, so a SIGKILL of the launcher (by DVC, a test, the OOM killer) would leave the workers training and
    writing the node's outputs. On Linux the kernel kills this worker when its launcher dies; a launcher
    already gone kills it now."""
    if "TORCHELASTIC_RUN_ID" not in os.environ or not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    launcher = int(os.environ.get(LAUNCHER_PID, os.getppid()))
    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != launcher:
        os.kill(os.getpid(), signal.SIGKILL)
