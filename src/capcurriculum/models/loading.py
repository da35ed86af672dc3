"""Loading a model by reference: a `from_pretrained` directory, a `model_ref.json` pointer, or a hub id.

The paper profile names hub checkpoints (Qwen3-VL-8B, ...) without copying 16 GB into DVC: its base
model node writes a directory holding only `model_ref.json` (`{"hub_id": ..., "revision": ...}`).
Everything that loads a model goes through `resolve_model_ref`, so a DVC output directory, a hub
id and a local checkpoint are interchangeable wherever a model is named.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from capcurriculum.io import DataError, check_safetensors, read_json, sha256_text, write_json

MODEL_REF_FILE = "model_ref.json"

# owner/name or a bare name, as the hub spells repository ids.
_HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")

_DTYPES = {
    "float32": "float32", "fp32": "float32", "float": "float32",
    "bfloat16": "bfloat16", "bf16": "bfloat16",
    "float16": "float16", "fp16": "float16", "half": "float16",
    "auto": "auto",
}


class ModelRefError(ValueError):
    """A model reference that names nothing loadable; the message names the path or id."""


def write_model_ref(out_dir: str | os.PathLike, hub_id: str, revision: str | None = None) -> Path:
    """Write `out_dir/model_ref.json` pointing at `hub_id` (at `revision`, if given); returns its path.
    `hub_id` may also be a local `from_pretrained` directory (a pre-downloaded copy, a stand-in): the pointer
    then holds its absolute path and a fingerprint of its files (names, sizes, mtimes), so DVC sees a change."""
    if isinstance(hub_id, os.PathLike) or (isinstance(hub_id, str) and _looks_like_path(hub_id)):
        local = Path(hub_id).expanduser().resolve()
        if not (local / "config.json").is_file():
            raise ModelRefError(f"{local}: not a from_pretrained directory (no config.json)")
        files = sorted(f for f in local.rglob("*") if f.is_file())
        stamp = "\n".join(f"{f.relative_to(local)} {f.stat().st_size} {f.stat().st_mtime_ns}" for f in files)
        ref = {"path": str(local), "fingerprint": sha256_text(stamp)}
    elif not isinstance(hub_id, str) or not _HUB_ID.match(hub_id):
        raise ModelRefError(f"not a hub id: {hub_id!r} (expected 'owner/name' or a local model directory)")
    else:
        if revision is not None and (not isinstance(revision, str) or not revision.strip()):
            raise ModelRefError(f"revision must be a non-empty string or None, got {revision!r}")
        ref = {"hub_id": hub_id, "revision": revision}
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / MODEL_REF_FILE
    write_json(path, ref)
    return path


def _read_model_ref(path: Path) -> tuple[str, str | None]:
    try:
        ref = read_json(path)
    except DataError as e:
        raise ModelRefError(str(e)) from None
    if not isinstance(ref, dict):
        raise ModelRefError(f"{path}: expected a JSON object with 'hub_id'")
    if "path" in ref:  # a local directory named where a hub id goes (write_model_ref)
        local = Path(str(ref["path"]))
        if not (local / "config.json").is_file():
            raise ModelRefError(f"{path}: points at {local}, which is not a from_pretrained directory (no config.json)")
        return str(local), None
    hub_id, revision = ref.get("hub_id"), ref.get("revision")
    if not isinstance(hub_id, str) or not _HUB_ID.match(hub_id):
        raise ModelRefError(f"{path}: 'hub_id' must be a hub id like 'Qwen/Qwen3-VL-8B-Instruct', got {hub_id!r}")
    if revision is not None and not isinstance(revision, str):
        raise ModelRefError(f"{path}: 'revision' must be a string or null, got {revision!r}")
    return hub_id, revision or None


def _looks_like_path(ref: str) -> bool:
    return ref.startswith((".", "/", "~")) or "\\" in ref or ref.count("/") > 1


def resolve_model_ref(ref: str | os.PathLike) -> tuple[str, str | None]:
    """Turn a model reference into `(source, revision)` for `from_pretrained`, touching no network.

    - a directory with config.json -> (that directory, None);
    - a directory with model_ref.json (or that file itself) -> (hub_id, revision) from it;
    - a string shaped like a hub id that is not an existing path -> (hub_id, None).
    A directory with neither file, or a path that does not exist, raises ModelRefError naming it.
    """
    raw = os.fspath(ref)
    path = Path(raw).expanduser()
    if path.is_dir():
        if (path / "config.json").is_file():
            return str(path), None
        if (path / MODEL_REF_FILE).is_file():
            return _read_model_ref(path / MODEL_REF_FILE)
        raise ModelRefError(
            f"{path}: not a model directory (it has neither config.json nor {MODEL_REF_FILE}); "
            f"expected a from_pretrained checkpoint or a pointer written by write_model_ref()"
        )
    if path.is_file():
        if path.name == MODEL_REF_FILE:
            return _read_model_ref(path)
        raise ModelRefError(f"{path}: a model reference must be a directory or a {MODEL_REF_FILE}, not a file")
    if isinstance(ref, Path) or _looks_like_path(raw) or not _HUB_ID.match(raw):
        raise ModelRefError(f"{raw}: no such model directory (and not a hub id like 'owner/name')")
    return raw, None


def _torch_dtype(dtype):
    import torch

    if isinstance(dtype, torch.dtype):
        return dtype
    name = _DTYPES.get(str(dtype).lower().removeprefix("torch."))
    if name is None:
        raise ValueError(f"unknown dtype {dtype!r}; use one of {sorted(set(_DTYPES.values()))}")
    return name if name == "auto" else getattr(torch, name)


def load_processor(ref: str | os.PathLike, *, trust_remote_code: bool = False, padding_side: str | None = "left"):
    """The processor of a model reference, with the tokenizer padding on `padding_side`."""
    from transformers import AutoProcessor

    source, revision = resolve_model_ref(ref)
    processor = AutoProcessor.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    tokenizer = getattr(processor, "tokenizer", processor)
    if padding_side is not None:
        tokenizer.padding_side = padding_side
    return processor


def load_model_and_processor(
    ref: str | os.PathLike,
    *,
    dtype="float32",
    device: str = "cpu",
    trust_remote_code: bool = False,
    padding_side: str | None = "left",
    **model_kwargs,
):
    """Load `(model, processor)` from a reference (see `resolve_model_ref`), in eval mode. A text-only
    checkpoint (no vision config) loads as a causal LM, and its "processor" is its tokenizer.

    `dtype`: "float32" / "bfloat16" / "float16" / "auto" or a torch dtype. `padding_side`
    (default "left", what generation and TRL's GRPO need for Qwen3-VL) is set on the tokenizer;
    None keeps the checkpoint's. Extra keyword arguments go to `from_pretrained` (e.g.
    `attn_implementation`; the project's `sdpa_gqa` also batches the vision tower's attention, see
    models/attention.py).
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForImageTextToText

    source, revision = resolve_model_ref(ref)
    if Path(source).is_dir():  # a damaged weights file is named by its path, not "incomplete metadata"
        for weights in sorted(Path(source).glob("*.safetensors")):
            check_safetensors(weights)
    processor = load_processor(ref, trust_remote_code=trust_remote_code, padding_side=padding_side)
    config = AutoConfig.from_pretrained(source, revision=revision, trust_remote_code=trust_remote_code)
    # a vision-language checkpoint (Qwen3-VL, Qwen2.5-VL), or a text-only LLM (the QA writer, Qwen2.5-72B)
    auto = AutoModelForImageTextToText if hasattr(config, "vision_config") else AutoModelForCausalLM
    model = auto.from_pretrained(
        source,
        config=config,
        revision=revision,
        dtype=_torch_dtype(dtype),
        trust_remote_code=trust_remote_code,
        **model_kwargs,
    )
    if device is not None and "device_map" not in model_kwargs:
        model = model.to(device)
    if model_kwargs.get("attn_implementation") == "sdpa_gqa":
        from capcurriculum.models.attention import batch_vision_attention

        batch_vision_attention(model)
    model.eval()
    return model, processor


def _first_submodule(model, names):
    for name in names:
        try:
            return model.get_submodule(name)
        except AttributeError:
            continue
    return None


_VISION_NAMES = ("model.visual", "visual", "model.vision_tower", "vision_tower", "model.vision_model", "vision_model")
_LANGUAGE_NAMES = ("model.language_model", "language_model", "model.text_model")


def count_parameters(model) -> dict[str, int]:
    """Parameter counts for logging: total, trainable, vision tower, language model, lm_head, other.

    Shared (tied) tensors count once. `vision` includes the merger and deepstack mergers; `other`
    is whatever sits outside the vision tower, language model and lm_head (zero for Qwen3-VL).
    """
    seen: set[int] = set()

    def count(module) -> int:
        if module is None:
            return 0
        total = 0
        for p in module.parameters():
            if id(p) not in seen:
                seen.add(id(p))
                total += p.numel()
        return total

    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    vision = count(_first_submodule(model, _VISION_NAMES))
    language = count(_first_submodule(model, _LANGUAGE_NAMES))
    head = count(getattr(model, "lm_head", None))
    return {
        "total": total,
        "trainable": trainable,
        "vision": vision,
        "language_model": language,
        "lm_head": head,
        "other": total - vision - language - head,
    }

