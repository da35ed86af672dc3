"""runtime: what every stage does before its work (logging, DeepSpeed's device)."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

NO_GPU = not any(Path("/dev").glob("nvidia[0-9]*"))
WARNING = "Setting accelerator to CPU"


def _import_deepspeed_after(setup: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    code = f"{setup}\nimport os, deepspeed\nprint('DS_ACCELERATOR=' + os.environ.get('DS_ACCELERATOR', '<unset>'))"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.skipif(not NO_GPU, reason="a machine with NVIDIA devices: DeepSpeed detects them itself")
def test_a_stage_on_a_cpu_machine_does_not_print_deepspeeds_accelerator_warning():
    env = {k: v for k, v in os.environ.items() if k != "DS_ACCELERATOR"}
    bare = _import_deepspeed_after("", env)
    assert WARNING in bare.stdout + bare.stderr, "DeepSpeed no longer warns: cpu_only_deepspeed can go"
    staged = _import_deepspeed_after("from capcurriculum.runtime import setup_logging; setup_logging()", env)
    assert staged.returncode == 0, staged.stderr[-2000:]
    assert WARNING not in staged.stdout + staged.stderr
    assert "DS_ACCELERATOR=cpu" in staged.stdout


def test_a_users_ds_accelerator_is_kept():
    env = {**os.environ, "DS_ACCELERATOR": "cpu"}
    code = ("import os; os.environ['DS_ACCELERATOR'] = 'mine'\nfrom capcurriculum.runtime import cpu_only_deepspeed\n"
            "cpu_only_deepspeed(); print(os.environ['DS_ACCELERATOR'])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=env)
    assert out.stdout.strip() == "mine", out.stderr[-2000:]
