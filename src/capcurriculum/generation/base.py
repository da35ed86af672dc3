"""One interface for asking a model something: requests in, results out, in order, never lost.

    backend = make_backend({"backend": "hf", "batch_size": 16}, "data/models/base")
    with backend:
        results = backend.generate(
            [Request.from_prompt("q1", "How many circles?", image="data/raw/images/1.jpg")],
            SamplingConfig(max_new_tokens=64),
        )
    results[0].texts[0], results[0].n_tokens[0], results[0].error

Every node that queries a model (perception-question generation, the differential filter,
evaluation, judging) goes through a `Backend`: `hf` (transformers `generate`), `vllm` (offline
`vllm.LLM`) or `openai` (any OpenAI-compatible `/v1/chat/completions` endpoint). A request that
fails (an unreadable image, a prompt too long, an HTTP error after its retries) comes back as a
`Result` with `error` set; the other requests of the call are unaffected.

Messages use the transformers/Qwen chat format: `{"role": ..., "content": str | [parts]}` with parts
`{"type": "text", "text": ...}` and `{"type": "image", "image": <path or PIL.Image>}`.
"""

from __future__ import annotations

import logging
import math
import os
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

from PIL import Image

log = logging.getLogger(__name__)

ROLES = ("system", "user", "assistant")
PART_TYPES = ("text", "image")


# --- requests, sampling, results -----------------------------------------------------------------


def _check_messages(messages: Any, rid: str) -> None:
    where = f"request {rid!r}"
    if not isinstance(messages, Sequence) or isinstance(messages, (str, bytes)) or not messages:
        raise ValueError(f"{where}: messages must be a non-empty list of {{'role', 'content'}} dicts")
    for i, msg in enumerate(messages):
        if not isinstance(msg, Mapping) or "role" not in msg or "content" not in msg:
            raise ValueError(
                f"{where}: message {i} must be a dict with 'role' and 'content', got {msg!r:.200}"
            )
        if msg["role"] not in ROLES:
            raise ValueError(
                f"{where}: message {i} has role {msg['role']!r}; expected one of {', '.join(ROLES)}"
            )
        content = msg["content"]
        if isinstance(content, str):
            continue
        if not isinstance(content, Sequence) or isinstance(content, bytes):
            raise ValueError(f"{where}: message {i} content must be a str or a list of parts")  # noqa: TRY004
        for j, part in enumerate(content):
            if not isinstance(part, Mapping) or part.get("type") not in PART_TYPES:
                raise ValueError(
                    f"{where}: message {i} part {j} must be a dict with type one of {', '.join(PART_TYPES)}, "
                    f"got {part!r:.200}"
                )
            if part["type"] == "text" and not isinstance(part.get("text"), str):
                raise ValueError(f"{where}: message {i} part {j}: a text part needs a str 'text'")
            if part["type"] == "image":
                img = part.get("image")
                if not isinstance(img, (str, os.PathLike, Image.Image)) or (isinstance(img, str) and not img):
                    raise ValueError(
                        f"{where}: message {i} part {j}: an image part needs 'image' = a path or a "
                        f"PIL.Image, got {img!r:.200}"
                    )


@dataclass(frozen=True)
class Request:
    """One conversation to complete. `id` is echoed in the Result; ids must be unique within a call."""

    messages: list[dict[str, Any]]
    id: str

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not self.id:
            raise ValueError(f"Request.id must be a non-empty str, got {self.id!r}")
        _check_messages(self.messages, self.id)

    @classmethod
    def from_prompt(
        cls,
        id: str,
        text: str,
        image: str | os.PathLike | Image.Image | None = None,
        system: str | None = None,
    ) -> Request:
        """A single user turn: the image (if any) first, then the text; an optional system turn."""
        content: list[dict[str, Any]] = []
        if image is not None:
            content.append({"type": "image", "image": image})
        content.append({"type": "text", "text": text})
        messages: list[dict[str, Any]] = [{"role": "system", "content": system}] if system is not None else []
        messages.append({"role": "user", "content": content})
        return cls(messages=messages, id=id)

    def image_sources(self) -> list[str | os.PathLike | Image.Image]:
        return [
            part["image"]
            for msg in self.messages
            if not isinstance(msg["content"], str)
            for part in msg["content"]
            if part["type"] == "image"
        ]


@dataclass(frozen=True)
class SamplingConfig:
    """How to sample: `temperature` 0 means greedy (then `top_p` is ignored and all n texts agree).

    `seed` makes sampling reproducible: the same requests, config and backend options give the same
    texts. None draws fresh randomness.
    """

    max_new_tokens: int = 256
    temperature: float = 0.0
    top_p: float = 1.0
    n: int = 1
    seed: int | None = 0

    def __post_init__(self) -> None:
        problems = []
        if (
            isinstance(self.max_new_tokens, bool)
            or not isinstance(self.max_new_tokens, int)
            or self.max_new_tokens < 1
        ):
            problems.append(f"max_new_tokens must be an int >= 1, got {self.max_new_tokens!r}")
        if (
            isinstance(self.temperature, bool)
            or not isinstance(self.temperature, (int, float))
            or not math.isfinite(self.temperature)
            or self.temperature < 0
        ):
            problems.append(
                f"temperature must be a finite number >= 0 (0 = greedy), got {self.temperature!r}"
            )
        if (
            isinstance(self.top_p, bool)
            or not isinstance(self.top_p, (int, float))
            or not 0 < self.top_p <= 1
        ):
            problems.append(f"top_p must be in (0, 1], got {self.top_p!r}")
        if isinstance(self.n, bool) or not isinstance(self.n, int) or self.n < 1:
            problems.append(f"n must be an int >= 1, got {self.n!r}")
        if self.seed is not None and (
            isinstance(self.seed, bool) or not isinstance(self.seed, int) or self.seed < 0
        ):
            problems.append(f"seed must be an int >= 0 or None, got {self.seed!r}")
        if problems:
            raise ValueError("SamplingConfig: " + "; ".join(problems))

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @classmethod
    def from_mapping(cls, spec: Mapping[str, Any] | None) -> SamplingConfig:
        """From a config mapping (params.yaml); an unknown key is a ValueError naming the allowed ones."""
        spec = dict(spec or {})
        allowed = [f.name for f in fields(cls)]
        unknown = sorted(set(spec) - set(allowed))
        if unknown:
            raise ValueError(f"unknown sampling option(s) {unknown}; allowed: {allowed}")
        return cls(**spec)


@dataclass
class Result:
    """The answer to one Request: `n` texts with their token counts, or `error` (then texts is empty).

    `n_tokens` counts generated tokens including the end-of-turn token when the model emitted it;
    -1 where the backend cannot tell (an OpenAI endpoint reports one total for n > 1).
    `finish_reasons`: "stop" (end of turn) or "length" (hit max_new_tokens), per text.
    """

    id: str
    texts: list[str] = field(default_factory=list)
    n_tokens: list[int] = field(default_factory=list)
    error: str | None = None
    finish_reasons: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.error is None

    @property
    def text(self) -> str:
        """The first text (raises if the request failed)."""
        if self.error is not None:
            raise RuntimeError(f"request {self.id!r} failed: {self.error}")
        return self.texts[0]

    @classmethod
    def failed(cls, id: str, error: str) -> Result:
        return cls(id=id, error=error)


# --- images --------------------------------------------------------------------------------------


class ImageError(ValueError):
    """An image part that cannot be read; the message names the path."""


class ImageCache:
    """Loads each image once (keyed by path; PIL images by identity) and converts it to RGB.

    A failure is remembered too, so a bad path named by several requests fails each of them
    with the same message without being re-read.
    """

    def __init__(self) -> None:
        self._images: dict[Any, Image.Image | ImageError] = {}

    def get(self, src: str | os.PathLike | Image.Image) -> Image.Image:
        key: Any = ("pil", id(src)) if isinstance(src, Image.Image) else ("path", os.fspath(src))
        hit = self._images.get(key)
        if hit is None:
            hit = self._load(src)
            self._images[key] = hit
        if isinstance(hit, ImageError):
            raise hit
        return hit

    @staticmethod
    def _load(src) -> Image.Image | ImageError:
        if isinstance(src, Image.Image):
            return src if src.mode == "RGB" else src.convert("RGB")
        path = os.fspath(src)
        try:
            with Image.open(path) as im:
                return im.convert("RGB")
        except Exception as e:  # noqa: BLE001 - any reader failure is this request's error
            return ImageError(f"cannot read image {path}: {type(e).__name__}: {e}")

    def __len__(self) -> int:
        return len(self._images)


def template_messages(request: Request) -> list[dict[str, Any]]:
    """The messages with each image part reduced to `{"type": "image"}` (what chat templates render)."""
    out = []
    for msg in request.messages:
        content = msg["content"]
        if not isinstance(content, str):
            content = [
                {"type": "image"} if p["type"] == "image" else {"type": "text", "text": p["text"]}
                for p in content
            ]
        out.append({"role": msg["role"], "content": content})
    return out


def load_request_images(request: Request, cache: ImageCache) -> list[Image.Image]:
    """The request's images in order, RGB; raises ImageError naming the first unreadable path."""
    return [cache.get(src) for src in request.image_sources()]


def error_text(e: BaseException, limit: int = 500) -> str:
    msg = f"{type(e).__name__}: {e}" if not isinstance(e, ImageError) else str(e)
    return msg if len(msg) <= limit else msg[:limit] + "..."


# --- the backend interface -----------------------------------------------------------------------


class Backend(ABC):
    """generate(requests, sampling) -> one Result per request, in request order.

    Subclasses implement `_generate` (given validated, non-empty requests) and `close`.
    Backends are context managers; `close()` releases the model / engine / connections and is
    idempotent.
    """

    name: str = "backend"

    def generate(self, requests: Sequence[Request], sampling: SamplingConfig | None = None) -> list[Result]:
        sampling = sampling or SamplingConfig()
        if not isinstance(sampling, SamplingConfig):
            raise TypeError(f"sampling must be a SamplingConfig, got {type(sampling).__name__}")
        requests = list(requests)
        seen: set[str] = set()
        for r in requests:
            if not isinstance(r, Request):
                raise TypeError(f"requests must be Request objects, got {type(r).__name__}")
            if r.id in seen:
                raise ValueError(f"duplicate request id {r.id!r}: ids must be unique within a call")
            seen.add(r.id)
        if not requests:
            return []
        results = self._generate(requests, sampling)
        if [r.id for r in results] != [r.id for r in requests]:  # pragma: no cover - a backend bug
            raise RuntimeError(f"{self.name} backend returned results out of order or incomplete")
        n_err = sum(not r.ok for r in results)
        if n_err:
            first = next(r for r in results if not r.ok)
            log.warning(
                "%s: %d of %d requests failed (first: %s: %s)",
                self.name,
                n_err,
                len(results),
                first.id,
                first.error,
            )
        return results

    @abstractmethod
    def _generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Result]: ...

    def close(self) -> None:
        """Release what the backend holds. Safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name}>"


BACKENDS = ("hf", "vllm", "openai")
