"""Training state on disk without pickle: optimizer state and RNG states as safetensors, the rest JSON.

    save_optimizer(opt, dir)                       # optimizer.safetensors + optimizer.json
    opt.load_state_dict(load_optimizer(dir))
    save_resume(dir, model, processor, opt, state)  # a whole resumable point, written atomically
    resumed = load_resume(dir, fingerprint)         # None when absent or from other inputs
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from capcurriculum.io import atomic_path, read_json, write_json


def save_optimizer(opt: torch.optim.Optimizer, out_dir: str | Path) -> None:
    sd = opt.state_dict()
    tensors, meta = {}, {"param_groups": sd["param_groups"], "state": {}}
    for idx, st in sd["state"].items():
        meta["state"][str(idx)] = []
        for k, v in st.items():
            if torch.is_tensor(v):
                tensors[f"{idx}.{k}"] = v.contiguous()
                meta["state"][str(idx)].append(k)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    save_file(tensors, str(out_dir / "optimizer.safetensors"))
    write_json(out_dir / "optimizer.json", meta)


def load_optimizer(in_dir: str | Path) -> dict[str, Any]:
    in_dir = Path(in_dir)
    meta = read_json(in_dir / "optimizer.json")
    tensors = load_file(str(in_dir / "optimizer.safetensors"))
    state = {int(i): {k: tensors[f"{i}.{k}"] for k in keys} for i, keys in meta["state"].items()}
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> tuple[dict[str, torch.Tensor], Any]:
    v, state, gauss = random.getstate()
    return {"torch": torch.get_rng_state()}, [v, list(state), gauss]


def set_rng_state(tensors: dict[str, torch.Tensor], py_state: Any) -> None:
    torch.set_rng_state(tensors["torch"])
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))


def save_resume(out_dir: str | Path, model, processor, opt: torch.optim.Optimizer, state: dict[str, Any]) -> None:
    """One resumable point: weights, optimizer, RNG and `state` (step, data position, history, fingerprint)."""
    from capcurriculum.models.tiny import save_pretrained_dir

    with atomic_path(out_dir) as tmp:
        tmp.mkdir(parents=True)
        save_pretrained_dir(model, processor, tmp / "model")
        save_optimizer(opt, tmp / "optimizer")
        tensors, py_state = rng_state()
        save_file(tensors, str(tmp / "rng.safetensors"))
        (tmp / "state.json").write_text(json.dumps({**state, "python_rng": py_state}), encoding="utf-8")


def load_resume(in_dir: str | Path, fingerprint: str) -> dict[str, Any] | None:
    """The saved state if `in_dir` holds a complete point made from the same inputs, else None."""
    in_dir = Path(in_dir)
    if not (in_dir / "state.json").exists():
        return None
    state = read_json(in_dir / "state.json")
    if state.get("fingerprint") != fingerprint:
        shutil.rmtree(in_dir)  # another config's leftovers: never resume across inputs
        return None
    return state
