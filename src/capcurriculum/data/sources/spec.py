"""What configures a source and what loading it yields: `SourceSpec` (from a profile's plain dict), the skip
reasons and `Skip`, `SourceItem` / `SourceStats` / `SourceResult` / `RowSet`.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from capcurriculum.data.schema import Example
from capcurriculum.io import DataError

# Reasons a row is skipped (the keys of `SourceStats.skipped`).
MISSING_QUESTION = "missing_question"
MISSING_ANSWER = "missing_answer"
UNPARSEABLE_ANSWER = "unparseable_answer"
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"
INVALID_ROW = "invalid_row"
REASONS = (MISSING_QUESTION, MISSING_ANSWER, UNPARSEABLE_ANSWER, MISSING_IMAGE, CORRUPT_IMAGE, INVALID_ROW)
PROBLEMS_KEPT = 5  # first places recorded per skip reason

DEFAULT_CACHE = "~/.cache/capcurriculum/sources"  # or $CAPCURRICULUM_CACHE; shared by queued experiments
MAX_GOLD_CHARS = 300
_MISSING = object()


class SourceError(DataError):
    """A whole source that cannot be read as configured (wrong column, no rows, unknown option)."""


class Skip(Exception):
    """Raised by an adapter for one bad row: skipped and counted under `reason`."""

    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


# ---------------------------------------------------------------------------------- config


class AdapterSchema(Protocol):
    """What a spec needs of its adapter (`adapters.SourceAdapter` has it): its name, columns and options."""

    name: str
    columns: dict[str, str]
    optional_columns: dict[str, str]
    options: dict[str, Any]
    default_origin: bool

    def check_spec(self, spec: SourceSpec, where: str) -> None: ...


# Adapters by name, which every spec resolves its `adapter` key against (registry.py registers the built-in
# ones; it lives here, below the adapters, so that a spec can check its keys without importing them).
SOURCE_ADAPTERS: dict[str, Any] = {}


def register_adapter(adapter: Any) -> Any:
    """Register an adapter (an instance or a class to instantiate) under its name; returns the instance."""
    inst = adapter() if isinstance(adapter, type) else adapter
    if not inst.name:
        raise ValueError(f"{type(inst).__name__}: an adapter needs a name")
    SOURCE_ADAPTERS[inst.name] = inst
    return inst


def get_source_adapter(name: str, where: str = "adapter") -> Any:
    """The registered adapter called `name` (a `SourceAdapter`); a ValueError naming the known ones."""
    try:
        return SOURCE_ADAPTERS[name]
    except KeyError:
        raise ValueError(f"{where}: unknown adapter {name!r}; expected one of {', '.join(adapter_names())}") from None


def adapter_names() -> list[str]:
    return sorted(SOURCE_ADAPTERS)



COMMON_KEYS = {
    "adapter": "registered adapter name",
    "name": "label in stats and in the set's image folder (default: the adapter name)",
    "path": "local file or directory holding the source in its hub layout",
    "url": "file to download (once, into cache_dir)",
    "hub_id": "Hugging Face hub dataset id",
    "filename": "file inside the hub repo (or directory) to read",
    "revision": "hub revision (commit, tag or branch)",
    "split": "split to read",
    "columns": "field -> column (dotted path) overrides",
    "max_items": "keep at most this many items from this source (seeded sample, after dedupe)",
    "capability": "perc / text / vis, written into each example",
    "cache_dir": "where url downloads and extracted image archives go (hub files: also the HF cache)",
    "sha256": "pinned checksum of the downloaded file (url)",
    "verify_images": "decode every image, skipping corrupt ones",
    "max_answer_chars": "gold answers longer than this are unparseable",
}


@dataclass
class SourceSpec:
    """One configured source. Built from a plain dict by `SourceSpec.from_dict`."""

    adapter: str
    name: str
    path: str | None = None
    url: str | None = None
    hub_id: str | None = None
    filename: str | None = None
    revision: str | None = None
    split: str | None = None
    columns: dict[str, str] = field(default_factory=dict)
    max_items: int | None = None
    capability: str | None = None
    cache_dir: str | None = None  # None: $CAPCURRICULUM_CACHE or DEFAULT_CACHE; the HF cache for hub files
    sha256: str | None = None
    verify_images: bool = False
    max_answer_chars: int = MAX_GOLD_CHARS
    options: dict[str, Any] = field(default_factory=dict)  # adapter-specific keys (subsets, image_root, set)

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any] | SourceSpec, where: str = "source") -> SourceSpec:
        if isinstance(raw, SourceSpec):
            return raw
        raw = _plain(raw)
        if not isinstance(raw, Mapping):
            raise ValueError(f"{where}: expected a mapping with an 'adapter' key, got {type(raw).__name__}")  # noqa: TRY004
        if "adapter" not in raw:
            raise ValueError(f"{where}: missing key 'adapter' (one of {', '.join(adapter_names())})")
        adapter = get_source_adapter(str(raw["adapter"]), where=f"{where}.adapter")
        allowed = set(COMMON_KEYS) | set(adapter.options)
        unknown = sorted(set(raw) - allowed)
        if unknown:
            raise ValueError(
                f"{where}: unknown key(s) {', '.join(unknown)} for adapter {adapter.name!r}; "
                f"allowed: {', '.join(sorted(allowed))}"
            )
        columns = raw.get("columns") or {}
        if not isinstance(columns, Mapping) or not all(isinstance(v, str) for v in columns.values()):
            raise ValueError(f"{where}.columns: expected a mapping of field -> column name")
        bad = sorted(set(columns) - set(adapter.columns) - set(adapter.optional_columns))
        if bad:
            raise ValueError(
                f"{where}.columns: unknown field(s) {', '.join(bad)} for adapter {adapter.name!r}; "
                f"fields: {', '.join(sorted(set(adapter.columns) | set(adapter.optional_columns)))}"
            )
        max_items = raw.get("max_items")
        if max_items is not None and (isinstance(max_items, bool) or not isinstance(max_items, int) or max_items < 0):
            raise ValueError(f"{where}.max_items: expected a non-negative integer or null, got {max_items!r}")
        capability = raw.get("capability")
        if capability is not None and capability not in ("perc", "text", "vis"):
            raise ValueError(f"{where}.capability: expected perc, text or vis, got {capability!r}")
        if not any(raw.get(k) for k in ("path", "url", "hub_id")) and not adapter.default_origin:
            raise ValueError(f"{where}: adapter {adapter.name!r} needs one of path, url or hub_id")
        options = {k: raw.get(k, default) for k, default in adapter.options.items()}
        spec = cls(
            adapter=adapter.name,
            name=str(raw.get("name") or adapter.name),
            path=_opt_str(raw.get("path")),
            url=_opt_str(raw.get("url")),
            hub_id=_opt_str(raw.get("hub_id")),
            filename=_opt_str(raw.get("filename")),
            revision=_opt_str(raw.get("revision")),
            split=_opt_str(raw.get("split")),
            columns={str(k): str(v) for k, v in columns.items()},
            max_items=max_items,
            capability=capability,
            cache_dir=_opt_str(raw.get("cache_dir")),
            sha256=_opt_str(raw.get("sha256")),
            verify_images=bool(raw.get("verify_images", False)),
            max_answer_chars=int(raw.get("max_answer_chars") or MAX_GOLD_CHARS),
            options=options,
        )
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]*", spec.name):
            raise ValueError(f"{where}.name: {spec.name!r} must be letters, digits, '_', '-' or '.'")
        adapter.check_spec(spec, where)
        return spec

    @property
    def cache(self) -> Path:
        """Where url downloads and extracted archives go."""
        return Path(self.cache_dir or os.environ.get("CAPCURRICULUM_CACHE") or DEFAULT_CACHE).expanduser()

    @property
    def hf_cache(self) -> str | None:
        """cache_dir for huggingface_hub / datasets: theirs unless the spec names one."""
        return str(Path(self.cache_dir).expanduser() / "hub") if self.cache_dir else None

    def column(self, adapter: AdapterSchema, name: str) -> str | None:
        return self.columns.get(name, adapter.columns.get(name, adapter.optional_columns.get(name)))


def _plain(obj: Any) -> Any:
    """OmegaConf containers -> plain Python (profiles hand us DictConfig / ListConfig)."""
    try:
        from omegaconf import DictConfig, ListConfig, OmegaConf
    except ImportError:  # pragma: no cover - omegaconf is a dependency
        return obj
    if isinstance(obj, (DictConfig, ListConfig)):
        return OmegaConf.to_container(obj, resolve=True)
    return obj


def _opt_str(v: Any) -> str | None:
    return None if v is None or v == "" else str(v)


# ---------------------------------------------------------------------------------- results


@dataclass
class ImageRef:
    """An image a parsed example needs: a file on disk or bytes embedded in the source.

    `name` is its relative name inside the source's folder of the built set (`clevr_math/x.png`).
    """

    name: str
    path: Path | None = None
    data: bytes | None = None
    _sha: str | None = field(default=None, repr=False, compare=False)

    def read_bytes(self) -> bytes:
        if self.data is not None:
            return self.data
        assert self.path is not None
        return self.path.read_bytes()

    def sha256(self) -> str:
        if self._sha is None:
            h = hashlib.sha256()
            if self.data is not None:
                h.update(self.data)
            else:
                assert self.path is not None
                with open(self.path, "rb") as f:
                    while block := f.read(1 << 20):
                        h.update(block)
            self._sha = h.hexdigest()
        return self._sha


@dataclass
class SourceItem:
    """One parsed example, its image (if any) and where it came from (`file[row]`)."""

    example: Example
    image: ImageRef | None
    where: str


@dataclass
class SourceStats:
    name: str
    adapter: str
    files: list[str] = field(default_factory=list)
    rows: int = 0
    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    problems: dict[str, list[str]] = field(default_factory=dict)  # reason -> first "where: message"
    filtered: dict[str, int] = field(default_factory=dict)  # rows left out on purpose (other subsets)
    by_source: dict[str, int] = field(default_factory=dict)  # kept per Example.source label

    def skip(self, reason: str, where: str, message: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1
        kept = self.problems.setdefault(reason, [])
        if len(kept) < PROBLEMS_KEPT:
            kept.append(f"{where}: {message}")

    @property
    def skipped_total(self) -> int:
        return sum(self.skipped.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "adapter": self.adapter,
            "files": list(self.files),
            "rows": self.rows,
            "kept": self.kept,
            "skipped": dict(sorted(self.skipped.items())),
            "skipped_total": self.skipped_total,
            "problems": {k: list(v) for k, v in sorted(self.problems.items())},
            "filtered": dict(sorted(self.filtered.items())),
            "by_source": dict(sorted(self.by_source.items())),
        }


@dataclass
class SourceResult:
    spec: SourceSpec
    items: list[SourceItem]
    stats: SourceStats


@dataclass
class RowSet:
    """Raw rows of one source: (where, row) in file order, plus the files (or hub ids) read."""

    files: list[str]
    rows: list[tuple[str, Any]]
    base_dir: Path | None = None  # directory relative image paths resolve against, when local


