"""`make_backend`: a backend from its config mapping. Apart from base.py so that the backends, which import
base.py's types, and the one function that imports the backends do not import each other."""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from capcurriculum.generation.base import BACKENDS, Backend


def _backend_class(name: str):
    if name == "hf":
        from capcurriculum.generation.hf import HFBackend

        return HFBackend
    if name == "vllm":
        from capcurriculum.generation.vllm_backend import VLLMBackend

        return VLLMBackend
    if name == "openai":
        from capcurriculum.generation.openai_backend import OpenAIBackend

        return OpenAIBackend
    raise ValueError(f"unknown backend {name!r}: 'backend' must be one of {', '.join(BACKENDS)}")


def make_backend(spec: Mapping[str, Any], model_ref=None) -> Backend:
    """Build a backend from a config mapping `{"backend": "hf" | "vllm" | "openai", **options}`.

    `model_ref` is what the model is (a directory, a model_ref.json directory or a hub id); for
    `openai` it is the served model's name unless the spec gives `model`. An unknown backend or
    option is a ValueError that names the allowed values. Only the chosen backend is imported.
    """
    if not isinstance(spec, Mapping):
        raise TypeError(f"backend spec must be a mapping with a 'backend' key, got {type(spec).__name__}")
    options = dict(spec)
    if "backend" not in options:
        raise ValueError(f"backend spec has no 'backend' key; set backend to one of {', '.join(BACKENDS)}")
    name = options.pop("backend")
    if not isinstance(name, str) or name not in BACKENDS:
        raise ValueError(f"unknown backend {name!r}: 'backend' must be one of {', '.join(BACKENDS)}")
    cls = _backend_class(name)
    params = inspect.signature(cls.__init__).parameters
    allowed = [p for p, v in params.items() if p not in ("self", "model_ref") and v.kind == v.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for backend {name!r}; allowed: {sorted(allowed)}")
    return cls(model_ref, **options)
