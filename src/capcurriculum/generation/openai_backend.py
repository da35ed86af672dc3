"""The `openai` backend: any OpenAI-compatible `/v1/chat/completions` endpoint (a judge, a served VLM).

Requests run on a thread pool (`max_concurrency` in flight at most). Each is retried on 5xx, 429,
timeouts and connection errors, with exponential backoff and jitter drawn from an RNG seeded by
(`seed`, request id), so a rerun waits the same; other 4xx are final. A body that is not what the
API promises becomes that request's `error="malformed response: ..."`. The API key is read from the
environment variable named by `api_key_env`, sent as `Authorization: Bearer ...`, and scrubbed from
every error text. Images travel as `data:image/jpeg;base64,...` URLs in `image_url` parts.

`stats` counts what happened: requests, HTTP calls, retries (and their reasons), successes, and
final errors by kind (timeout, connection, rate_limit, server, client, malformed, image).
"""

from __future__ import annotations

import base64
import io
import json
import logging
import os
import random
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Any

import requests as http
from tqdm.auto import tqdm

from capcurriculum.generation.base import (
    Backend,
    ImageCache,
    ImageError,
    Request,
    Result,
    SamplingConfig,
)

log = logging.getLogger(__name__)

_SNIPPET = 300
_sleep = time.sleep  # the backoff wait (a test hook)


class _Final(Exception):
    """A failure not worth retrying (kind, message)."""

    def __init__(self, kind: str, message: str):
        super().__init__(message)
        self.kind = kind


class _Retryable(Exception):
    def __init__(self, kind: str, message: str, retry_after: float | None = None):
        super().__init__(message)
        self.kind = kind
        self.retry_after = retry_after


def _retry_after(resp) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


def parse_completion(body: bytes | str, n: int) -> tuple[list[str], list[int], list[str]]:
    """texts, token counts and finish reasons from a chat-completions body; ValueError if malformed."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as e:
        raise ValueError(f"not JSON ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"expected a JSON object, got {type(data).__name__}")  # noqa: TRY004
    choices = data.get("choices")
    if not isinstance(choices, list) or not choices:
        raise ValueError("no 'choices' list" if not isinstance(choices, list) else "empty 'choices'")
    if len(choices) != n:
        raise ValueError(f"expected {n} choices, got {len(choices)}")
    indexed = []
    for k, ch in enumerate(choices):
        if not isinstance(ch, dict) or not isinstance(ch.get("message"), dict):
            raise ValueError(f"choice {k} has no 'message' object")  # noqa: TRY004
        content = ch["message"].get("content")
        if not isinstance(content, str):
            raise ValueError(f"choice {k} message content is {type(content).__name__}, not str")  # noqa: TRY004
        index = ch.get("index", k)
        if isinstance(index, bool) or not isinstance(index, int):
            raise ValueError(f"choice {k} index is not an int")  # noqa: TRY004
        reason = ch.get("finish_reason")
        indexed.append((index, content, reason if isinstance(reason, str) else "unknown"))
    indexed.sort(key=lambda t: t[0])
    texts = [c for _, c, _ in indexed]
    reasons = [r for _, _, r in indexed]
    usage = data.get("usage")
    tokens = usage.get("completion_tokens") if isinstance(usage, dict) else None
    if n == 1 and isinstance(tokens, int) and not isinstance(tokens, bool) and tokens >= 0:
        counts = [tokens]
    else:  # the API reports one total for all n choices, or nothing
        counts = [-1] * n
    return texts, counts, reasons


def served_model(body: bytes | str) -> str | None:
    """The "model" a chat-completions body names, or None when it names none."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return None
    model = data.get("model") if isinstance(data, dict) else None
    return model if isinstance(model, str) and model else None


class OpenAIBackend(Backend):
    """Chat completions over HTTP.

    Options: `base_url` (e.g. "http://127.0.0.1:8000/v1"; "/chat/completions" is appended),
    `model` (the served name; defaults to `model_ref`), `api_key_env` (name of the environment
    variable with the key; None sends no Authorization header), `timeout_s` (the whole request's deadline,
    connect to last byte, however slowly a server trickles), `max_retries`
    (retries after the first try), `backoff_s` (first wait; doubles each retry, jittered, capped at
    `max_backoff_s`), `max_concurrency`, `seed` (jitter RNG), `max_tokens_field` ("max_tokens" or
    "max_completion_tokens"), `jpeg_quality`, `extra_body` (merged into every request body, e.g.
    `{"top_k": 20}` for a vLLM server), `progress`.
    """

    name = "openai"

    def __init__(
        self,
        model_ref=None,
        *,
        base_url: str,
        model: str | None = None,
        api_key_env: str | None = "OPENAI_API_KEY",
        timeout_s: float = 120.0,
        max_retries: int = 5,
        backoff_s: float = 1.0,
        max_backoff_s: float = 60.0,
        max_concurrency: int = 8,
        seed: int = 0,
        max_tokens_field: str = "max_tokens",
        jpeg_quality: int = 95,
        extra_body: dict[str, Any] | None = None,
        progress: bool = True,
    ) -> None:
        problems = []
        if not isinstance(base_url, str) or not base_url.startswith(("http://", "https://")):
            problems.append(f"base_url must be an http(s) URL, got {base_url!r}")
        model = model if model is not None else (os.fspath(model_ref) if model_ref is not None else None)
        if not isinstance(model, str) or not model:
            problems.append("give the served model name as `model` (or as model_ref)")
        for key, value, lo in (
            ("timeout_s", timeout_s, 0),
            ("backoff_s", backoff_s, 0),
            ("max_backoff_s", max_backoff_s, 0),
        ):
            if (
                isinstance(value, bool)
                or not isinstance(value, (int, float))
                or value < lo
                or (key == "timeout_s" and value == 0)
            ):
                problems.append(
                    f"{key} must be a number {'> 0' if key == 'timeout_s' else '>= 0'}, got {value!r}"
                )
        for key, value, lo in (("max_retries", max_retries, 0), ("max_concurrency", max_concurrency, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < lo:
                problems.append(f"{key} must be an int >= {lo}, got {value!r}")
        if max_tokens_field not in ("max_tokens", "max_completion_tokens"):
            problems.append(
                f"max_tokens_field must be 'max_tokens' or 'max_completion_tokens', got {max_tokens_field!r}"
            )
        if extra_body is not None and not isinstance(extra_body, dict):
            problems.append("extra_body must be a mapping")
        if problems:
            raise ValueError("openai backend: " + "; ".join(problems))
        self._key: str | None = None
        if api_key_env is not None:
            key = os.environ.get(api_key_env)
            if not key:
                raise ValueError(
                    f"openai backend: environment variable {api_key_env} (api_key_env) is not set "
                    f"or empty; set it, or api_key_env: null for an endpoint without a key"
                )
            self._key = key
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.api_key_env = api_key_env
        self.timeout_s = float(timeout_s)
        self.max_retries = max_retries
        self.backoff_s = float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.max_concurrency = max_concurrency
        self.seed = seed
        self.max_tokens_field = max_tokens_field
        self.jpeg_quality = int(jpeg_quality)
        self.extra_body = dict(extra_body or {})
        self.progress = progress
        self._idle: list[http.Session] = []  # sessions (connection pools) between uses
        self._lock = threading.Lock()
        self._stats: Counter = Counter()
        self._errors: Counter = Counter()
        self._retry_reasons: Counter = Counter()
        self._served: Counter = Counter()  # the "model" each reply names (a dated version, where reported)
        self._closed = False

    def __repr__(self) -> str:  # never shows the key
        return f"<OpenAIBackend model={self.model!r} url={self.url!r}>"

    # -- bookkeeping -------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, Any]:
        """Counters since construction: requests, http_calls, retries, ok, errors (by kind),
        retry_reasons (by kind)."""
        with self._lock:
            return {
                "requests": self._stats["requests"],
                "http_calls": self._stats["http_calls"],
                "retries": self._stats["retries"],
                "ok": self._stats["ok"],
                "errors": dict(self._errors),
                "retry_reasons": dict(self._retry_reasons),
            }

    @property
    def served_models(self) -> dict[str, int]:
        """{model name a reply reported: replies}; an endpoint often answers with a dated version of the
        name asked for (e.g. claude-haiku-4-5-20251001), which is what a result should record."""
        with self._lock:
            return dict(self._served)

    def _count(self, key: str, counter: Counter | None = None) -> None:
        with self._lock:
            (counter if counter is not None else self._stats)[key] += 1

    def _redact(self, text: str) -> str:
        if self._key:
            text = text.replace(self._key, "***")
        return text

    def _acquire(self) -> http.Session:
        with self._lock:
            if self._idle:
                return self._idle.pop()
        return http.Session()

    def _release(self, s: http.Session) -> None:
        with self._lock:
            if not self._closed and len(self._idle) < self.max_concurrency:
                self._idle.append(s)
                return
        s.close()

    # -- building requests -------------------------------------------------------------------------

    def _data_url(self, src, cache: ImageCache, urls: dict, lock: threading.Lock) -> str:
        key = ("pil", id(src)) if not isinstance(src, (str, os.PathLike)) else ("path", os.fspath(src))
        with lock:
            url = urls.get(key)
            if url is None:
                img = cache.get(src)  # raises ImageError naming the path
                buf = io.BytesIO()
                img.save(buf, format="JPEG", quality=self.jpeg_quality)
                url = "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii")
                urls[key] = url
        return url

    def _messages(self, request: Request, cache, urls, lock) -> list[dict[str, Any]]:
        out = []
        for msg in request.messages:
            content = msg["content"]
            if not isinstance(content, str):
                content = [
                    {"type": "text", "text": p["text"]}
                    if p["type"] == "text"
                    else {
                        "type": "image_url",
                        "image_url": {"url": self._data_url(p["image"], cache, urls, lock)},
                    }
                    for p in content
                ]
            out.append({"role": msg["role"], "content": content})
        return out

    def _body(self, messages, sampling: SamplingConfig) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": messages,
            self.max_tokens_field: sampling.max_new_tokens,
            "temperature": float(sampling.temperature),
            "n": sampling.n,
        }
        if not sampling.greedy:
            body["top_p"] = float(sampling.top_p)
        if sampling.seed is not None:
            body["seed"] = sampling.seed
        body.update(self.extra_body)
        return body

    # -- one request -------------------------------------------------------------------------------

    def _call(self, body_bytes: bytes, n: int) -> tuple[list[str], list[int], list[str]]:
        headers = {"Content-Type": "application/json"}
        if self._key:
            headers["Authorization"] = f"Bearer {self._key}"
        self._count("http_calls")
        session = self._acquire()
        outcome: dict[str, Any] = {}

        def post() -> None:
            try:
                outcome["resp"] = session.post(self.url, data=body_bytes, headers=headers, timeout=self.timeout_s)
            except Exception as e:  # noqa: BLE001 - handed to the caller below
                outcome["error"] = e
            finally:
                self._release(session)

        # requests' timeout bounds each socket read, so a server that trickles a byte a second never
        # trips it; the worker bounds the whole request. Past the deadline it is abandoned (it ends
        # with its own read timeout or the server) and the call is a timeout, retried as configured.
        worker = threading.Thread(target=post, name="openai-call", daemon=True)
        worker.start()
        worker.join(self.timeout_s)
        if worker.is_alive():
            raise _Retryable("timeout", f"no whole response within {self.timeout_s:g} s")
        e = outcome.get("error")
        if isinstance(e, http.Timeout):
            raise _Retryable("timeout", f"timed out after {self.timeout_s:g} s ({type(e).__name__})")
        if isinstance(e, http.ConnectionError | http.exceptions.ChunkedEncodingError):
            raise _Retryable("connection", f"connection error: {type(e).__name__}: {e}")
        if isinstance(e, http.RequestException):
            raise _Final("client", f"request error: {type(e).__name__}: {e}")
        if e is not None:
            raise e
        resp = outcome["resp"]
        status = resp.status_code
        if status == 429:
            raise _Retryable("rate_limit", f"HTTP 429: {resp.text[:_SNIPPET]}", _retry_after(resp))
        if status >= 500:
            raise _Retryable("server", f"HTTP {status}: {resp.text[:_SNIPPET]}", _retry_after(resp))
        if status >= 400:
            raise _Final("client", f"HTTP {status}: {resp.text[:_SNIPPET]}")
        if not 200 <= status < 300:
            raise _Final("malformed", f"malformed response: unexpected HTTP {status}")
        try:
            parsed = parse_completion(resp.content, n)
        except ValueError as e:
            raise _Final(
                "malformed", f"malformed response: {e}; body starts {resp.text[:_SNIPPET]!r}"
            ) from None
        served = served_model(resp.content)
        if served is not None:
            self._count(served, self._served)
        return parsed

    def _one(self, request: Request, sampling: SamplingConfig, cache, urls, lock) -> Result:
        self._count("requests")
        try:
            body = json.dumps(self._body(self._messages(request, cache, urls, lock), sampling)).encode(
                "utf-8"
            )
        except ImageError as e:
            self._count("image", self._errors)
            return Result.failed(request.id, str(e))
        rng = random.Random(f"{self.seed}:{request.id}")
        attempt = 0
        while True:
            try:
                texts, counts, reasons = self._call(body, sampling.n)
                self._count("ok")
                return Result(id=request.id, texts=texts, n_tokens=counts, finish_reasons=reasons)
            except _Final as e:
                self._count(e.kind, self._errors)
                return Result.failed(request.id, self._redact(str(e)))
            except _Retryable as e:
                if attempt >= self.max_retries or self._closed:
                    self._count(e.kind, self._errors)
                    tries = attempt + 1
                    return Result.failed(request.id, self._redact(f"{e} (gave up after {tries} tries)"))
                delay = min(self.max_backoff_s, self.backoff_s * 2**attempt) * (0.5 + rng.random())
                if e.retry_after is not None:
                    delay = max(delay, min(e.retry_after, self.max_backoff_s))
                self._count("retries")
                self._count(e.kind, self._retry_reasons)
                log.debug(
                    "request %s: %s; retry %d in %.2f s", request.id, self._redact(str(e)), attempt + 1, delay
                )
                _sleep(delay)
                attempt += 1
            except Exception as e:  # noqa: BLE001 - never lose the batch to one request
                self._count("internal", self._errors)
                return Result.failed(request.id, self._redact(f"{type(e).__name__}: {e}"))

    def _generate(self, requests: list[Request], sampling: SamplingConfig) -> list[Result]:
        if self._closed:
            raise RuntimeError("this openai backend is closed")
        cache, urls, lock = ImageCache(), {}, threading.Lock()
        results: list[Result | None] = [None] * len(requests)
        workers = min(self.max_concurrency, len(requests))
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="openai") as pool:
            futures = {
                pool.submit(self._one, r, sampling, cache, urls, lock): i for i, r in enumerate(requests)
            }
            for fut in tqdm(
                as_completed(futures),
                total=len(futures),
                desc="openai generate",
                unit="req",
                disable=not self.progress,
                leave=False,
            ):
                results[futures[fut]] = fut.result()
        return results  # type: ignore[return-value]

    def close(self) -> None:
        with self._lock:
            self._closed = True
            sessions, self._idle = self._idle, []
        for s in sessions:
            s.close()
