"""An LLM judge on the project's OpenAI-compatible backend, with a SQLite cache that outlives runs.

    judge = Judge.from_config({"enabled": True, "base_url": "https://api.anthropic.com/v1",
                               "model": "claude-haiku-4-5", "api_key_env": "ANTHROPIC_API_KEY",
                               "timeout_s": 60, "max_retries": 3, "cache": "data/judge/cache.sqlite"})
    adapter.grade(item, response, judge=judge.equivalent)    # the benchmarks' `Judge` callable
    judge.stats  # {"requests", "calls", "cache_hits", "unavailable", "unparseable"}

The paper's judge is Claude-Haiku-4.5 (answer equivalence and perception/reasoning attribution).
Each answer is cached under sha256(model, prompt text, purpose), so a rerun, or a resumed run after a
crash, pays for nothing twice; a cache hit makes no HTTP call. A judge that cannot be reached or
errors gives a `Verdict` with status "unavailable" and the error text: callers count and report
those; they are never scored as wrong, and they are not cached, so a later run asks again.

The API key is read from the environment variable named by `api_key_env` and handed to the backend
only; it is never stored on the judge, in the cache, or in a log record (the backend scrubs it from
error texts).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self

from capcurriculum.generation.base import Request, SamplingConfig

if TYPE_CHECKING:
    from capcurriculum.evaluation.benchmarks.base import BenchItem

log = logging.getLogger(__name__)

PURPOSES = ("equivalence", "attribution", "extraction")  # extraction: evaluation/vlmevalkit.py
STAT_KEYS = ("requests", "calls", "cache_hits", "unavailable", "unparseable")
# The tail of a long response is what holds the final answer; the head is bounded to keep calls cheap.
MAX_RESPONSE_CHARS = 6000


def load_judge_prompt(name: str) -> str:
    """A prompt template shipped in capcurriculum/evaluation/prompts/<name>.txt."""
    path = resources.files("capcurriculum.evaluation").joinpath("prompts").joinpath(f"{name}.txt")
    if not path.is_file():
        raise FileNotFoundError(f"no judge prompt capcurriculum/evaluation/prompts/{name}.txt")
    return path.read_text("utf-8")


def clip_response(response: str, limit: int = MAX_RESPONSE_CHARS) -> str:
    """The response, or its head and tail with the middle marked as cut when it is too long."""
    if len(response) <= limit:
        return response
    head = limit // 4
    return response[:head] + "\n[... middle of the response omitted ...]\n" + response[-(limit - head):]


# --- configuration -------------------------------------------------------------------------------


@dataclass(frozen=True)
class JudgeConfig:
    """The `judge` config block. With enabled false nothing else is needed and nothing is read."""

    enabled: bool = False
    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = None  # the NAME of the variable holding the key; None: send no key
    timeout_s: float = 60.0
    max_retries: int = 3
    cache: str | None = None  # path of the SQLite cache file
    max_tokens: int = 256  # how long a judge reply may be (a verdict plus one sentence)
    backoff_s: float = 1.0  # first retry wait; doubles per retry (the backend's policy)

    REQUIRED = ("base_url", "model", "cache")

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "judge") -> JudgeConfig:
        """Validate a config mapping; every problem names its key as `<where>.<key>`."""
        if not isinstance(mapping, Mapping):
            raise TypeError(f"{where}: expected a mapping, got {type(mapping).__name__}")
        allowed = [k for k in cls.__dataclass_fields__]
        unknown = sorted(set(mapping) - set(allowed))
        if unknown:
            raise ValueError(f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(allowed)}")
        if "enabled" not in mapping:
            raise ValueError(f"{where}.enabled is missing: set it to true or false")
        spec = dict(mapping)
        enabled = spec["enabled"]
        if not isinstance(enabled, bool):
            # A config value, not an argument: ValueError like every other config problem.
            raise ValueError(f"{where}.enabled must be true or false, got {enabled!r}")  # noqa: TRY004
        if not enabled:
            return cls(**spec)
        problems = [f"{where}.{k} is missing" for k in cls.REQUIRED if not spec.get(k)]
        if spec.get("base_url") and not str(spec["base_url"]).startswith(("http://", "https://")):
            problems.append(f"{where}.base_url must be an http(s) URL, got {spec['base_url']!r}")
        for key in ("model", "cache"):
            if spec.get(key) is not None and not isinstance(spec[key], (str, os.PathLike)):
                problems.append(f"{where}.{key} must be a string, got {spec[key]!r}")
        env = spec.get("api_key_env")
        if env is not None and (not isinstance(env, str) or not env):
            problems.append(f"{where}.api_key_env must be the name of an environment variable or null")
        for key, lo, kind in (("timeout_s", 0, float), ("backoff_s", 0, float),
                              ("max_retries", 0, int), ("max_tokens", 1, int)):
            value = spec.get(key, getattr(cls, key))
            ok_type = isinstance(value, int) if kind is int else isinstance(value, (int, float))
            if isinstance(value, bool) or not ok_type or not math.isfinite(value) or value < lo or (
                    key == "timeout_s" and value == 0):
                problems.append(f"{where}.{key} must be a {'positive ' if key == 'timeout_s' else ''}"
                                f"{'integer' if kind is int else 'number'} >= {lo}, got {value!r}")
        if problems:
            raise ValueError("; ".join(problems))
        if "cache" in spec:
            spec["cache"] = os.fspath(spec["cache"])
        return cls(**spec)


# --- the cache -----------------------------------------------------------------------------------


def cache_key(model: str, prompt: str, purpose: str) -> str:
    """sha256 of (model, prompt, purpose); JSON-encoded so no two triples can collide by concatenation."""
    text = json.dumps([model, prompt, purpose], ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class JudgeCache:
    """Judge replies in one SQLite table, keyed by `cache_key`. Only replies (never keys or headers)
    are stored. Each write is its own committed transaction, so a killed run loses at most the reply
    in flight, and several processes may share the file (sqlite's locking; writers wait up to 30 s)."""

    SCHEMA = ("CREATE TABLE IF NOT EXISTS judge_cache (key TEXT PRIMARY KEY, model TEXT NOT NULL, "
              "purpose TEXT NOT NULL, reply TEXT NOT NULL, created_at REAL NOT NULL)")

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            with self._db:
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.execute(self.SCHEMA)
        except (OSError, sqlite3.Error) as e:
            raise ValueError(f"judge.cache: cannot open the SQLite cache {self.path}: {e}") from None

    def get(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT reply FROM judge_cache WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def put(self, key: str, model: str, purpose: str, reply: str) -> None:
        with self._lock, self._db:
            self._db.execute("INSERT OR REPLACE INTO judge_cache VALUES (?, ?, ?, ?, ?)",
                             (key, model, purpose, reply, time.time()))

    def __len__(self) -> int:
        with self._lock:
            return self._db.execute("SELECT COUNT(*) FROM judge_cache").fetchone()[0]

    def close(self) -> None:
        with self._lock:
            self._db.close()


# --- verdicts ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    """One judge reply: status "ok" with its `text`, or "unavailable" with the `error` text."""

    status: str
    text: str | None = None
    error: str | None = None
    cached: bool = False

    @property
    def ok(self) -> bool:
        return self.status == "ok"


_YES = {"yes", "true", "equivalent", "correct", "same"}
_NO = {"no", "false", "inequivalent", "incorrect", "different", "wrong"}


def json_objects(text: str) -> list[dict]:
    """JSON objects in a reply: fenced blocks first, then the outermost {...}, then the whole text."""
    candidates = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.DOTALL)
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    candidates.append(text.strip())
    found = []
    for cand in candidates:
        try:
            obj = json.loads(cand)
        except ValueError:
            continue
        if isinstance(obj, dict):
            found.append(obj)
    return found


def final_word(text: str) -> str | None:
    """The reply's last word, lower-cased, with markdown and punctuation stripped."""
    words = re.findall(r"[a-z]+", text.lower())
    return words[-1] if words else None


def parse_equivalence(text: str) -> bool | None:
    """True / False from `{"equivalent": ...}` or a final yes/no word; None when it says neither."""
    for obj in json_objects(text):
        for key in ("equivalent", "correct", "verdict", "answer"):
            value = obj.get(key)
            if isinstance(value, bool):
                return value
            if isinstance(value, str) and value.strip().lower() in _YES | _NO:
                return value.strip().lower() in _YES
    if re.search(r"\bnot\s+(equivalent|correct)\W*$", text.strip().lower()):
        return False  # "not equivalent" ends in a yes-word
    word = final_word(text)
    if word in _YES:
        return True
    if word in _NO:
        return False
    return None


# --- the judge -----------------------------------------------------------------------------------


class Judge:
    """Asks the judge model, through the cache. Build with `Judge.from_config(mapping)`.

    `stats`: requests (questions asked), calls (HTTP requests made, i.e. cache misses sent),
    cache_hits, unavailable (replies that could not be had) and unparseable (replies the caller
    could not read, reported through `count_unparseable`); `requests/<purpose>` splits the requests
    by what they were for (extraction, attribution, equivalence), for each purpose asked.
    """

    def __init__(self, config: JudgeConfig):
        self.config = config
        self._stats: Counter = Counter()
        self._lock = threading.Lock()
        self._backend = None
        self._cache: JudgeCache | None = None
        self._prompts: dict[str, str] = {}
        if not config.enabled:
            return
        if config.api_key_env is not None and not os.environ.get(config.api_key_env):
            raise ValueError(f"judge.api_key_env: environment variable {config.api_key_env} is not set or "
                             f"empty; export the judge's API key in it (or set judge.api_key_env: null "
                             f"for an endpoint without a key)")
        from capcurriculum.generation.openai_backend import OpenAIBackend

        self._cache = JudgeCache(config.cache)
        # The backend reads the key from the environment itself: the judge never holds it.
        self._backend = OpenAIBackend(base_url=config.base_url, model=config.model,
                                      api_key_env=config.api_key_env, timeout_s=config.timeout_s,
                                      max_retries=config.max_retries, backoff_s=config.backoff_s,
                                      max_backoff_s=max(config.backoff_s, 30.0), progress=False)
        self._sampling = SamplingConfig(max_new_tokens=config.max_tokens, temperature=0.0, seed=0)

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any] | JudgeConfig) -> Judge:
        config = mapping if isinstance(mapping, JudgeConfig) else JudgeConfig.from_mapping(mapping)
        return cls(config)

    @property
    def enabled(self) -> bool:
        return self.config.enabled

    @property
    def model(self) -> str | None:
        return self.config.model

    @property
    def served_models(self) -> dict[str, int]:
        """{the model name each reply reported (its version, where the endpoint gives one): replies}."""
        return self._backend.served_models if self._backend is not None else {}

    def __repr__(self) -> str:
        c = self.config
        return f"<Judge model={c.model!r} enabled={c.enabled} cache={c.cache!r}>"

    # -- counting ----------------------------------------------------------------------------------

    @property
    def stats(self) -> dict[str, int]:
        with self._lock:
            return {**{k: self._stats[k] for k in STAT_KEYS},
                    **{f"requests/{p}": self._stats[f"requests/{p}"] for p in PURPOSES if self._stats[f"requests/{p}"]}}

    def _count(self, key: str, n: int = 1) -> None:
        with self._lock:
            self._stats[key] += n

    def count_unparseable(self) -> None:
        """A caller could not read a reply (kept here so one dict reports everything about the judge)."""
        self._count("unparseable")

    # -- asking ------------------------------------------------------------------------------------

    def prompt(self, name: str) -> str:
        if name not in self._prompts:
            self._prompts[name] = load_judge_prompt(name)
        return self._prompts[name]

    def ask(self, prompt: str, purpose: str) -> Verdict:
        return self.ask_many([prompt], purpose)[0]

    def ask_many(self, prompts: Sequence[str], purpose: str) -> list[Verdict]:
        """One verdict per prompt, in order: cached replies first, the misses in one concurrent batch."""
        if purpose not in PURPOSES:
            raise ValueError(f"judge purpose {purpose!r} is not one of {', '.join(PURPOSES)}")
        self._count("requests", len(prompts))
        self._count(f"requests/{purpose}", len(prompts))
        if not self.enabled:
            self._count("unavailable", len(prompts))
            return [Verdict("unavailable", error="judge disabled (judge.enabled is false)")] * len(prompts)
        assert self._cache is not None and self._backend is not None
        model = self.config.model
        keys = [cache_key(model, p, purpose) for p in prompts]
        out: list[Verdict | None] = [None] * len(prompts)
        misses: dict[str, list[int]] = {}  # one call per distinct prompt, even if asked twice here
        for i, key in enumerate(keys):
            reply = self._cache.get(key)
            if reply is not None:
                out[i] = Verdict("ok", text=reply, cached=True)
                self._count("cache_hits")
            else:
                misses.setdefault(key, []).append(i)
        if misses:
            order = list(misses)
            requests = [Request.from_prompt(f"{purpose}-{k}", prompts[misses[k][0]]) for k in order]
            self._count("calls", len(requests))
            try:
                results = self._backend.generate(requests, self._sampling)
            except Exception as e:  # noqa: BLE001 - a judge failure must never stop an evaluation
                results = [None] * len(requests)
                failure = f"{type(e).__name__}: {e}"
            for key, result in zip(order, results):
                if result is not None and result.ok:
                    self._cache.put(key, model, purpose, result.texts[0])
                    verdict = Verdict("ok", text=result.texts[0])
                else:
                    error = result.error if result is not None else failure
                    verdict = Verdict("unavailable", error=error)
                    log.warning("judge %s (%s) unavailable: %s", model, purpose, error)
                for i in misses[key]:
                    out[i] = verdict
                    if not verdict.ok:
                        self._count("unavailable")
        return out  # type: ignore[return-value]

    # -- answer equivalence (the benchmarks' Judge callable) ---------------------------------------

    def equivalence_prompt(self, item: BenchItem, response: str) -> str:
        gold = item.gold
        if item.answer_type == "choice" and item.choices.get(item.gold):
            gold = f"{item.gold} ({item.choices[item.gold]})"
        return self.prompt("judge_equivalence").format(
            question=item.question, gold=gold, response=clip_response(response or ""))

    def equivalent(self, item: BenchItem, response: str) -> bool | None:
        """Whether `response` answers `item` correctly; None when the judge is unavailable or unclear."""
        verdict = self.ask(self.equivalence_prompt(item, response), "equivalence")
        if not verdict.ok:
            return None
        decision = parse_equivalence(verdict.text)
        if decision is None:
            self.count_unparseable()
            log.warning("judge: unparseable equivalence reply for %s %s: %r", item.benchmark, item.id,
                        verdict.text[:200])
        return decision

    __call__ = equivalent  # a Judge is itself a `benchmarks.base.Judge` callable

    # -- lifetime ----------------------------------------------------------------------------------

    def close(self) -> None:
        if self._backend is not None:
            self._backend.close()
        if self._cache is not None:
            self._cache.close()
            self._cache = None

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
