"""Training state on disk without pickle: optimizer state and RNG states as safetensors, the rest JSON.

    save_optimizer(opt, dir)                       # optimizer.safetensors + optimizer.json
    opt.load_state_dict(load_optimizer(dir))
    save_resume(dir, model, processor, opt, state)  # a whole resumable point, written atomically
    resumed = load_resume(dir, fingerprint)         # None when absent or from other inputs
    restore_resume(dir, model, opt)                 # weights, optimizer, this process's RNG
Each takes `accelerator=` under `accelerate launch` (all processes call it) and `engine=` with DeepSpeed.
"""

from __future__ import annotations

import logging
import os
import random
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from capcurriculum.io import DataError, check_safetensors, read_json, sha256_file, write_json

log = logging.getLogger(__name__)


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
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        tensors["cuda"] = torch.cuda.get_rng_state()
    return tensors, [v, list(state), gauss]


def set_rng_state(tensors: dict[str, torch.Tensor], py_state: Any) -> None:
    torch.set_rng_state(tensors["torch"])
    if "cuda" in tensors:
        torch.cuda.set_rng_state(tensors["cuda"])
    random.setstate((py_state[0], tuple(py_state[1]), py_state[2]))


def _ranks(accelerator) -> tuple[int, int]:
    return (accelerator.process_index, accelerator.num_processes) if accelerator is not None else (0, 1)


def _barrier(accelerator) -> None:
    if accelerator is not None:
        accelerator.wait_for_everyone()


def _deepspeed(accelerator) -> bool:
    return accelerator is not None and accelerator.state.deepspeed_plugin is not None


def save_resume(out_dir: str | Path, model, processor, opt: torch.optim.Optimizer, state: dict[str, Any], *,
                accelerator=None, engine=None) -> None:
    """One resumable point: weights, optimizer, every process's RNG and `state` (step, data position, history,
    fingerprint). All processes call it under accelerate: each writes its own RNG (DeepSpeed: and its
    optimizer partition, through `engine.save_checkpoint`) into one temporary directory that the main
    process renames onto `out_dir` once all have written, so a kill at any moment leaves the last whole point."""
    from capcurriculum.models.tiny import save_pretrained_dir

    out_dir = Path(out_dir)
    rank, world = _ranks(accelerator)
    tmp = out_dir.with_name(f".{out_dir.name}.partial")
    if rank == 0:
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
    _barrier(accelerator)
    if _deepspeed(accelerator):  # ZeRO partitions the optimizer: each process saves its own share
        engine.save_checkpoint(str(tmp / "deepspeed"), tag="resume")
    tensors, py_state = rng_state()
    save_file(tensors, str(tmp / f"rng_{rank}.safetensors"))
    write_json(tmp / f"rng_{rank}.json", py_state)
    if rank == 0:
        save_pretrained_dir(model, processor, tmp / "model")
        if not _deepspeed(accelerator):  # data parallel: every process holds the same optimizer state
            save_optimizer(opt, tmp / "optimizer")
        write_json(tmp / "state.json", {**state, "processes": world})
    _barrier(accelerator)
    if rank == 0:
        write_json(tmp / MANIFEST, manifest(tmp))  # once every process has written
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    _barrier(accelerator)


MANIFEST = "manifest.json"
# DeepSpeed's own partitions (the optimizer's fp32 state, ~12 bytes a parameter over all ranks: ~100 GB for 8B) are
# recorded by size only: hashing them at every resumable point would add minutes; the weights, optimizer (one
# process), RNG and state are hashed (~15 s for 16 GB of bf16 weights).
SIZE_ONLY = ("deepspeed",)


def manifest(point: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {"bytes", "sha256"}} of every file of a resumable point (sha256 None: size only)."""
    out = {}
    for path in sorted(p for p in point.rglob("*") if p.is_file() and p.name != MANIFEST):
        rel = path.relative_to(point).as_posix()
        out[rel] = {"bytes": path.stat().st_size,
                    "sha256": None if rel.split("/", 1)[0] in SIZE_ONLY else sha256_file(path)}
    return out


def damage(in_dir: Path) -> str | None:
    """Why a saved point cannot be loaded, naming the file, or None: a file the manifest recorded at save that is
    missing or differs from it (size, sha256), or a safetensors or JSON file that does not parse."""
    try:
        recorded = read_json(in_dir / MANIFEST) if (in_dir / MANIFEST).exists() else {}
        for rel, want in recorded.items():
            path = in_dir / rel
            if not path.is_file():
                raise DataError(path, "missing: the resumable point's manifest recorded it at save")
            if path.stat().st_size != want["bytes"]:
                raise DataError(path, f"{path.stat().st_size} bytes, {want['bytes']} recorded at save (truncated?)")
            if want["sha256"] is not None and sha256_file(path) != want["sha256"]:
                raise DataError(path, "sha256 differs from the one recorded at save (changed on disk)")
        for path in sorted(in_dir.rglob("*")):
            if path.suffix == ".safetensors":
                check_safetensors(path)
            elif path.suffix == ".json":
                read_json(path)
    except DataError as e:
        return str(e)
    return None


def load_resume(in_dir: str | Path, fingerprint: str, *, accelerator=None) -> dict[str, Any] | None:
    """The saved state if `in_dir` holds a complete point made from the same inputs by as many processes,
    else None (and the main process removes what is there: never resume across inputs). A damaged point
    (a file truncated by a full disk, say) is set aside as `<in_dir>.damaged` with a warning naming the
    file, and None is returned: the stage starts again rather than failing on every re-run."""
    in_dir = Path(in_dir)
    rank, world = _ranks(accelerator)
    why = damage(in_dir) if in_dir.is_dir() else None
    if why is not None:
        _barrier(accelerator)  # every process has looked before the main one moves it
        if rank == 0:
            aside = in_dir.with_name(in_dir.name + ".damaged")
            shutil.rmtree(aside, ignore_errors=True)
            os.replace(in_dir, aside)
            log.warning("resume point %s is damaged (%s); set aside as %s, starting this stage again",
                        in_dir, why, aside)
        _barrier(accelerator)
        return None
    state = read_json(in_dir / "state.json") if (in_dir / "state.json").exists() else None
    whole = state is not None and state.get("processes", 1) == world and all(
        (in_dir / f"rng_{r}.safetensors").exists() for r in range(world))
    if state is not None and (state.get("fingerprint") != fingerprint or not whole):
        state = None
        _barrier(accelerator)  # every process has read before the main one removes
        if rank == 0:
            shutil.rmtree(in_dir)
    _barrier(accelerator)
    return state


def restore_resume(in_dir: str | Path, model, opt: torch.optim.Optimizer, *, accelerator=None,
                   engine=None) -> None:
    """Weights, optimizer and this process's RNG from a point `load_resume` accepted."""
    from capcurriculum.models.loading import load_model_and_processor

    in_dir = Path(in_dir)
    rank, _ = _ranks(accelerator)
    if _deepspeed(accelerator):
        engine.load_checkpoint(str(in_dir / "deepspeed"), tag="resume")
    else:
        saved, _ = load_model_and_processor(in_dir / "model")
        model.load_state_dict(saved.state_dict())
        opt.load_state_dict(load_optimizer(in_dir / "optimizer"))
    set_rng_state(load_file(str(in_dir / f"rng_{rank}.safetensors")), read_json(in_dir / f"rng_{rank}.json"))
