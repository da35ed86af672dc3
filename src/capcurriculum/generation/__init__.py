"""One interface for asking a model something, three backends: hf, vllm, openai.

    from capcurriculum.generation import Request, SamplingConfig, make_backend

    with make_backend({"backend": "vllm", "dtype": "float32"}, "data/models/base") as backend:
        results = backend.generate([Request.from_prompt("q1", "How many circles?", image=path)],
                                   SamplingConfig(max_new_tokens=64, temperature=0))

Results come back in request order, one per request; a failed request is a Result with `error`
set. Backends are imported only when made (vllm and torch are heavy; a judge needs neither).
"""

from capcurriculum.generation.base import (
    BACKENDS,
    Backend,
    ImageCache,
    ImageError,
    Request,
    Result,
    SamplingConfig,
    template_messages,
)
from capcurriculum.generation.factory import make_backend

_LAZY = {
    "HFBackend": "capcurriculum.generation.hf",
    "VLLMBackend": "capcurriculum.generation.vllm_backend",
    "OpenAIBackend": "capcurriculum.generation.openai_backend",
}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BACKENDS",
    "Backend",
    "HFBackend",
    "ImageCache",
    "ImageError",
    "OpenAIBackend",
    "Request",
    "Result",
    "SamplingConfig",
    "VLLMBackend",
    "make_backend",
    "template_messages",
]
