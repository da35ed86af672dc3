"""The DeepSpeed and accelerate configs under conf/: DeepSpeed's own config class accepts each JSON once
accelerate has filled its "auto" values, the accelerate YAMLs load and point at them, and (slow) a
real `accelerate launch --use_deepspeed` trains a tiny net with each on the CPU."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DS_DIR = REPO / "conf" / "deepspeed"
ACCELERATE_DIR = REPO / "conf" / "accelerate"
STAGES = {"zero2": 2, "zero3": 3}

# DeepSpeedPlugin reads these; a developer's shell must not change what the test sees.
ACCELERATE_ENV = ("ACCELERATE_", "DS_ACCELERATOR")


@pytest.fixture
def clean_accelerate_env(monkeypatch):
    for name in list(os.environ):
        if name.startswith(ACCELERATE_ENV):
            monkeypatch.delenv(name)


def _autos(node, path=""):
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _autos(value, f"{path}{key}.")
    elif node == "auto":
        yield path.rstrip(".")


def filled_like_accelerate(config_file: Path, *, micro_batch: int = 4, accumulation: int = 2,
                           world_size: int = 1) -> dict:
    """The config dict DeepSpeed receives from `accelerate launch` + `Accelerator.prepare`.

    Uses accelerate's own DeepSpeedPlugin for the parsing, the mixed-precision fill and the "auto"
    replacement (`deepspeed_config_process`), with the values `_prepare_deepspeed` computes from the
    DataLoader, the GradientAccumulationPlugin and the process count.
    """
    from accelerate.utils import DeepSpeedPlugin

    plugin = DeepSpeedPlugin(hf_ds_config=str(config_file))
    plugin.set_mixed_precision("bf16")
    plugin.deepspeed_config_process(must_match=False, **{
        "gradient_accumulation_steps": accumulation,
        "train_micro_batch_size_per_gpu": micro_batch,
        "train_batch_size": micro_batch * accumulation * world_size,
        "gradient_clipping": 1.0,
        "zero_optimization.stage3_gather_16bit_weights_on_model_save": False,
    })
    config = dict(plugin.deepspeed_config)
    config["steps_per_print"] = 2**31 - 1  # accelerate sets float("inf"), which DeepSpeed's model rejects
    return config


@pytest.mark.parametrize("name", sorted(STAGES))
def test_deepspeed_accepts_the_filled_config(name, clean_accelerate_env):
    from deepspeed.runtime.config import DeepSpeedConfig

    config_file = DS_DIR / f"{name}.json"
    raw = json.loads(config_file.read_text())
    assert raw["zero_optimization"]["stage"] == STAGES[name], config_file
    config = filled_like_accelerate(config_file)
    assert list(_autos(config)) == [], f"{config_file.name}: 'auto' left that accelerate does not fill"

    ds = DeepSpeedConfig(config)  # pydantic models: unknown or misspelt ZeRO keys fail here
    assert ds.zero_optimization_stage == STAGES[name]
    assert ds.zero_enabled
    assert ds.bfloat16_config.enabled and not ds.float16_config.enabled
    assert (ds.train_micro_batch_size_per_gpu, ds.gradient_accumulation_steps, ds.train_batch_size) == (4, 2, 8)
    assert ds.gradient_clipping == 1.0


@pytest.mark.parametrize("name", sorted(STAGES))
def test_configs_need_no_deepspeed_op_compiled_at_run_time(name):
    # The CUDA image's runtime has no nvcc (Dockerfile): a DeepSpeed "optimizer" block (FusedAdam) or an offload
    # to the CPU (DeepSpeedCPUAdam) would JIT-compile an op there and fail. The stage builds its own torch AdamW.
    config = json.loads((DS_DIR / f"{name}.json").read_text())
    assert "optimizer" not in config and "scheduler" not in config
    zero = config["zero_optimization"]
    for key in ("offload_optimizer", "offload_param"):
        assert zero.get(key, {"device": "none"})["device"] == "none", f"{name}.json: {key} needs DeepSpeedCPUAdam"


def test_hidden_size_keys_are_numbers():
    # accelerate can fill these "auto"s only from model.config.hidden_size, which nested VLM configs
    # (Qwen-VL: text_config.hidden_size) and plain nn.Modules lack.
    for config_file in DS_DIR.glob("*.json"):
        zero = json.loads(config_file.read_text())["zero_optimization"]
        for key in ("reduce_bucket_size", "stage3_prefetch_bucket_size", "stage3_param_persistence_threshold"):
            assert zero.get(key, 0) != "auto", f"{config_file.name}: zero_optimization.{key}"


@pytest.mark.parametrize("name", sorted(STAGES))
def test_accelerate_config_loads_and_points_at_its_json(name, clean_accelerate_env):
    from accelerate.commands.config.config_args import load_config_from_file

    config_file = ACCELERATE_DIR / f"{name}.yaml"
    config = load_config_from_file(str(config_file))
    assert config.distributed_type == "DEEPSPEED", config_file
    ds_file = REPO / config.deepspeed_config["deepspeed_config_file"]
    assert ds_file == DS_DIR / f"{name}.json" and ds_file.is_file(), config_file
    # accelerate refuses a deepspeed_config_file next to these (they belong in the JSON).
    clashing = {"gradient_accumulation_steps", "gradient_clipping", "zero_stage", "offload_optimizer_device",
                "offload_param_device", "zero3_save_16bit_model", "mixed_precision"}
    assert not clashing & set(config.deepspeed_config), config_file
    # mixed_precision too: accelerate launch counts a config file's mixed_precision as a DeepSpeed field and refuses
    # it beside the JSON (the README's GPU command failed on exactly this)
    assert config.mixed_precision is None, config_file
    for key in ("num_processes", "num_machines", "machine_rank", "main_process_ip", "main_process_port"):
        assert getattr(config, key) is not None, f"{config_file.name}: {key}"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.slow
@pytest.mark.timeout(900)
@pytest.mark.parametrize("name", sorted(STAGES))
def test_accelerate_launch_deepspeed_cpu(name, tmp_path):
    """~80 s per config on 2 cores; the first run also JIT-compiles DeepSpeed's shm comm op (~2 min,
    cached under ~/.cache/torch_extensions)."""
    summary_file = tmp_path / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith(ACCELERATE_ENV)}
    command = [
        sys.executable, "-m", "accelerate.commands.launch",
        "--num_processes", "1", "--num_machines", "1", "--mixed_precision", "bf16", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()),  # parallel runs must not fight over 29500
        "--use_deepspeed", "--deepspeed_config_file", str(DS_DIR / f"{name}.json"),
        str(REPO / "tests" / "deepspeed_probe_script.py"), str(summary_file),
    ]
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=880,
                            check=False)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-5000:]
    summary = json.loads(summary_file.read_text())
    assert summary["engine"] == "DeepSpeedEngine"
    assert summary["zero_stage"] == STAGES[name]
    assert summary["param_dtype"] == "torch.bfloat16"
    assert len(summary["losses"]) == 4 and summary["losses"][-1] < summary["losses"][0]
