"""D_text / D_vis source adapters: each turns one public source's raw rows into `Example`s.

A source is configured by a plain dict (a profile's `sets.text` / `sets.vis` lists), e.g.::

    {"adapter": "orz_math", "url": "https://.../orz_math_13k_collection_hard.json"}
    {"adapter": "vlaa_thinking", "hub_id": "UCSC-VLAA/VLAA-Thinking",
     "subsets": ["clevr_math", "geoqa170k", "math_puma", "arxivqa"]}
    {"adapter": "world", "path": "data/world", "set": "text_math", "split": "train"}

Where the rows come from is one of `path` (a local file or directory: tests, offline copies),
`url` (downloaded once into `cache_dir`, resumable and checksummed), or `hub_id` (the Hugging Face
hub). All three end in the same parsing code, so the fixtures under `tests/fixtures/sources/`,
which keep each source's real file layout, exercise the path the paper profile runs.

Column maps come from the config (`columns: {question: ..., answer: ...}`, dotted paths into
nested rows) with each adapter's real layout as the default. A column that no row of a source
has is a config error and raises `SourceError` naming the source and the column; a single bad
row (no question, no answer, an answer that cannot be graded, a missing image) is skipped and
counted by reason, with the first few places (`file[row]: why`) kept for the report.

`difficulty` is the source's own level when it has one (a `difficulty` column, or the authors'
`pass_rate`, turned into 1 - pass_rate so that larger is harder); otherwise None, for a later
node to fill from the base model's pass rate.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar

from capcurriculum.answers import (
    DECIMAL,
    balanced,
    choice_answer,
    is_letter,
    number_literal,
    parse_choices,
    strip_wrappers,
)
from capcurriculum.data.schema import ANSWER_TYPES, Example
from capcurriculum.io import DataError, iter_jsonl

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
MAX_ANSWER_CHARS = 300
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
    max_answer_chars: int = MAX_ANSWER_CHARS
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
        adapter = get_adapter(str(raw["adapter"]), where=f"{where}.adapter")
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
            max_answer_chars=int(raw.get("max_answer_chars") or MAX_ANSWER_CHARS),
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

    def column(self, adapter: Adapter, name: str) -> str | None:
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
class Item:
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
    items: list[Item]
    stats: SourceStats


@dataclass
class RowSet:
    """Raw rows of one source: (where, row) in file order, plus the files (or hub ids) read."""

    files: list[str]
    rows: list[tuple[str, Any]]
    base_dir: Path | None = None  # directory relative image paths resolve against, when local


# ---------------------------------------------------------------------------------- gold answers


def classify_answer(value: Any, max_chars: int = MAX_ANSWER_CHARS) -> tuple[str, str]:
    """A gold answer -> (canonical string, 'number' | 'text'); raises Skip when it cannot be graded.

    Plain integers and decimals (also `1,000`) are numbers; everything else (LaTeX, expressions,
    words) is text, left to the answer checker. Lists, dicts, booleans, NaN are unparseable.
    """
    if isinstance(value, bool) or value is None:
        raise Skip(UNPARSEABLE_ANSWER if value is not None else MISSING_ANSWER, f"gold answer {value!r}")
    if isinstance(value, int):
        return str(value), "number"
    if isinstance(value, float):
        if not math.isfinite(value):
            raise Skip(UNPARSEABLE_ANSWER, f"gold answer {value!r} is not finite")
        return (str(int(value)) if value.is_integer() else repr(value)), "number"
    if not isinstance(value, str):
        raise Skip(UNPARSEABLE_ANSWER, f"gold answer is a {type(value).__name__}, not text or a number")
    s = strip_wrappers(value)
    if not s:
        raise Skip(MISSING_ANSWER, "gold answer is empty")
    if not balanced(s):
        raise Skip(UNPARSEABLE_ANSWER, f"unbalanced braces in gold answer {_short(s)!r}")
    if len(s) > max_chars:
        raise Skip(UNPARSEABLE_ANSWER, f"gold answer is {len(s)} characters (> {max_chars})")
    number = number_literal(s)
    return (number, "number") if number is not None else (s, "text")


def parse_difficulty(value: Any, *, pass_rate: bool = False) -> float | None:
    """A source's level as a float (larger is harder): 3, '3', 'Level 3'; a pass rate p -> 1 - p."""
    if value is None or value is _MISSING or isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        v = float(value)
    else:
        m = DECIMAL.search(str(value))
        if not m:
            return None
        v = float(m.group(0))
    if not math.isfinite(v):
        return None
    return round(1.0 - v, 6) if pass_rate else v


def _short(s: str, n: int = 60) -> str:
    return s if len(s) <= n else s[: n - 3] + "..."


# ---------------------------------------------------------------------------------- rows


def get_path(row: Any, path: str) -> Any:
    """row['a']['b'] for 'a.b' (list indices allowed); `_MISSING` when any step is absent."""
    cur = row
    for part in path.split("."):
        if isinstance(cur, Mapping):
            if part not in cur:
                return _MISSING
            cur = cur[part]
        elif isinstance(cur, (list, tuple)) and part.lstrip("-").isdigit():
            i = int(part)
            if not -len(cur) <= i < len(cur):
                return _MISSING
            cur = cur[i]
        else:
            return _MISSING
    return cur


def read_rows_file(path: Path, fmt: str | None = None) -> list[tuple[str, Any]]:
    """Rows of one local file: .json (a list, or {'data': [...]}) / .jsonl / .parquet."""
    fmt = fmt or _format_of(path)
    if fmt == "jsonl":
        return [(f"{path}:{line}", row) for line, row in iter_jsonl(path)]
    if fmt == "json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise DataError(path, "file not found") from None
        except json.JSONDecodeError as e:
            raise DataError(path, f"malformed JSON ({e.msg})", e.lineno) from None
        if isinstance(data, Mapping) and isinstance(data.get("data"), list):
            data = data["data"]
        if not isinstance(data, list):
            raise DataError(path, f"expected a JSON list of rows, got {type(data).__name__}")
        return [(f"{path}[{i}]", row) for i, row in enumerate(data)]
    if fmt == "parquet":
        import pyarrow.parquet as pq

        if not path.is_file():
            raise DataError(path, "file not found")
        table = pq.read_table(path)
        return [(f"{path}[{i}]", row) for i, row in enumerate(table.to_pylist())]
    raise DataError(path, f"unknown file format {fmt!r}; expected json, jsonl or parquet")


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    return {".json": "json", ".jsonl": "jsonl", ".jsonlines": "jsonl", ".parquet": "parquet"}.get(suffix, suffix)


def safe_relpath(name: str) -> str | None:
    """A source's relative image path made safe to join (leading '/' dropped), or None if it escapes."""
    s = str(name).replace("\\", "/").lstrip("/")
    parts = PurePosixPath(s).parts
    if not s or any(p in ("..", "") for p in parts) or re.match(r"^[A-Za-z]:", s):
        return None
    return "/".join(p for p in parts if p != ".")


_MAGIC = ((b"\x89PNG\r\n\x1a\n", ".png"), (b"\xff\xd8\xff", ".jpg"), (b"GIF8", ".gif"), (b"BM", ".bmp"))


def image_suffix(data: bytes, hint: str | None = None) -> str:
    for magic, ext in _MAGIC:
        if data.startswith(magic):
            return ext
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return ".webp"
    if hint and Path(hint).suffix:
        return Path(hint).suffix.lower()
    return ".img"


def _check_image(ref: ImageRef, where_hint: str) -> None:
    """Decode `ref` fully; raise Skip(CORRUPT_IMAGE) when PIL cannot."""
    import io

    from PIL import Image

    try:
        with Image.open(io.BytesIO(ref.read_bytes())) as im:
            im.load()
    except Exception as e:  # noqa: BLE001 - PIL raises many types for bad data
        raise Skip(CORRUPT_IMAGE, f"image {where_hint} cannot be decoded ({type(e).__name__}: {e})") from None


# ---------------------------------------------------------------------------------- adapters


class Adapter:
    """Base adapter: generic column mapping and answer typing; subclasses say where rows live.

    `columns` are the fields the source must have (a wrong name raises `SourceError`),
    `optional_columns` ones it may have (difficulty, id); `options` extra config keys with defaults.
    """

    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    capability: ClassVar[str | None] = None
    columns: ClassVar[dict[str, str]] = {"question": "question", "answer": "answer"}
    optional_columns: ClassVar[dict[str, str]] = {}
    options: ClassVar[dict[str, Any]] = {}
    default_origin: ClassVar[bool] = False  # True when no path/url/hub_id is needed (a default exists)
    letter_needs_choices: ClassVar[bool] = False  # a letter answer without options is unparseable
    default_filename: ClassVar[str | None] = None
    default_url: ClassVar[str | None] = None
    default_hub_id: ClassVar[str | None] = None
    default_split: ClassVar[str | None] = None

    def check_spec(self, spec: SourceSpec, where: str) -> None:
        """Adapter-specific validation of options (raise ValueError naming `where`)."""

    # ---- rows
    def load_rows(self, spec: SourceSpec) -> RowSet:
        if spec.path:
            return self.local_rows(spec, Path(spec.path))
        if spec.url or (self.default_url and not spec.hub_id):
            return self.url_rows(spec, spec.url or self.default_url)  # type: ignore[arg-type]
        return self.hub_rows(spec)

    def local_rows(self, spec: SourceSpec, path: Path) -> RowSet:
        if path.is_dir():
            name = spec.filename or self.default_filename
            if not name:
                raise SourceError(path, f"source {spec.name!r}: a directory needs 'filename'")
            path = path / name
        if not path.exists():
            raise SourceError(path, f"source {spec.name!r}: file not found")
        return RowSet([str(path)], read_rows_file(path), base_dir=path.parent)

    def url_rows(self, spec: SourceSpec, url: str) -> RowSet:
        from capcurriculum.data.download import download_file

        dest = spec.cache / spec.name / (spec.filename or Path(url.split("?")[0]).name)
        download_file(url, dest, sha256=spec.sha256)
        rows = read_rows_file(dest)
        return RowSet([url], [(w.replace(str(dest), url, 1), r) for w, r in rows], base_dir=dest.parent)

    def hub_rows(self, spec: SourceSpec) -> RowSet:
        hub_id = spec.hub_id or self.default_hub_id
        if not hub_id:
            raise SourceError(spec.name, f"source {spec.name!r}: needs one of path, url or hub_id")
        filename = spec.filename or self.default_filename
        if filename:
            from huggingface_hub import hf_hub_download

            local = Path(
                hf_hub_download(hub_id, filename, repo_type="dataset", revision=spec.revision,
                                cache_dir=spec.hf_cache)
            )
            rows = read_rows_file(local)
            label = f"{hub_id}/{filename}"
            return RowSet([label], [(w.replace(str(local), label, 1), r) for w, r in rows], base_dir=local.parent)
        import datasets

        split = spec.split or self.default_split or "train"
        ds = datasets.load_dataset(hub_id, split=split, revision=spec.revision, cache_dir=spec.hf_cache)
        table = ds.data.table  # raw arrow storage: images stay {bytes, path}, not decoded
        label = f"{hub_id}@{split}"
        return RowSet([label], [(f"{label}[{i}]", r) for i, r in enumerate(table.to_pylist())])

    # ---- per row
    def flatten(self, row: Any, where: str) -> Mapping[str, Any]:
        """A raw row as a mapping the column paths index into."""
        if not isinstance(row, Mapping):
            raise Skip(INVALID_ROW, f"expected an object, got {type(row).__name__}")
        return row

    def include(self, row: Mapping[str, Any], spec: SourceSpec) -> str | None:
        """None to parse the row, or a label under which it is filtered out on purpose."""
        return None

    def parse(self, row: Mapping[str, Any], index: int, where: str, spec: SourceSpec, rows: RowSet) -> Item:
        question = self.question(row, spec)
        raw_answer = get_path(row, spec.column(self, "answer"))  # type: ignore[arg-type]
        if raw_answer is _MISSING or raw_answer is None or (isinstance(raw_answer, str) and not raw_answer.strip()):
            raise Skip(MISSING_ANSWER, f"no answer in column {spec.column(self, 'answer')!r}")
        answer, answer_type, choices = self.gold(raw_answer, question, row, spec)
        image = self.image(row, index, spec, rows)
        if image is not None and spec.verify_images:
            _check_image(image, image.name)
        source = self.source_label(row, spec)
        diff_col = spec.column(self, "difficulty")
        difficulty = None
        if diff_col:
            difficulty = parse_difficulty(get_path(row, diff_col), pass_rate=self.difficulty_is_pass_rate(spec))
        ex = Example(
            id=self.example_id(row, index, spec, source),
            question=question,
            answer=answer,
            answer_type=answer_type,  # type: ignore[arg-type]
            source=source,
            image=image.name if image else None,
            choices=choices,
            difficulty=difficulty,
            capability=spec.capability or self.capability,
            meta=self.meta(row, spec),
        )
        return Item(ex, image, where)

    def question(self, row: Mapping[str, Any], spec: SourceSpec) -> str:
        col = spec.column(self, "question")
        q = get_path(row, col)  # type: ignore[arg-type]
        if q is _MISSING or q is None:
            raise Skip(MISSING_QUESTION, f"no question in column {col!r}")
        if not isinstance(q, str):
            raise Skip(MISSING_QUESTION, f"question in column {col!r} is a {type(q).__name__}, not text")
        q = q.replace("<image>", "").strip()
        if not q:
            raise Skip(MISSING_QUESTION, f"empty question in column {col!r}")
        return q

    def gold(
        self, raw: Any, question: str, row: Mapping[str, Any], spec: SourceSpec
    ) -> tuple[str, str, list[str] | None]:
        answer, kind = classify_answer(raw, spec.max_answer_chars)
        choices = parse_choices(question)
        if choices and kind == "text":
            letter = choice_answer(answer, choices)
            if letter:
                return letter, "choice", choices
            if is_letter(answer):
                raise Skip(UNPARSEABLE_ANSWER, f"answer {answer!r} is not one of the {len(choices)} options")
        if self.letter_needs_choices and is_letter(answer):
            raise Skip(UNPARSEABLE_ANSWER, f"answer {answer!r} is an option letter but no options were found")
        return answer, kind, None

    def image(self, row: Mapping[str, Any], index: int, spec: SourceSpec, rows: RowSet) -> ImageRef | None:
        return None

    def source_label(self, row: Mapping[str, Any], spec: SourceSpec) -> str:
        return spec.name

    def example_id(self, row: Mapping[str, Any], index: int, spec: SourceSpec, source: str) -> str:
        col = spec.column(self, "id")
        value = get_path(row, col) if col else _MISSING
        if value is _MISSING or value is None or str(value).strip() == "":
            return f"{source}-{index:05d}"
        value = str(value).strip()
        return value if value.startswith(f"{source}-") else f"{source}-{value}"

    def difficulty_is_pass_rate(self, spec: SourceSpec) -> bool:
        return False

    def meta(self, row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
        return {}

    # ---- shared image helpers
    def image_from_value(
        self, value: Any, *, name_stem: str, roots: Sequence[Path], what: str
    ) -> ImageRef:
        """An image column value -> ImageRef: a relative path (resolved against `roots`), a
        `{bytes, path}` struct (embedded), or a list of those (the first is used)."""
        if isinstance(value, (list, tuple)):
            if not value:
                raise Skip(MISSING_IMAGE, f"{what} is an empty list")
            value = value[0]
        if value is None or value is _MISSING or value == "":
            raise Skip(MISSING_IMAGE, f"no {what}")
        if isinstance(value, Mapping):
            data = value.get("bytes")
            if data:
                data = bytes(data)
                return ImageRef(name=f"{name_stem}{image_suffix(data, value.get('path'))}", data=data)
            value = value.get("path")
            if not value:
                raise Skip(MISSING_IMAGE, f"{what} has neither bytes nor a path")
        if not isinstance(value, str):
            raise Skip(MISSING_IMAGE, f"{what} is a {type(value).__name__}, not a path or image bytes")
        rel = safe_relpath(value)
        if rel is None:
            raise Skip(MISSING_IMAGE, f"{what} {value!r} is not a safe relative path")
        for root in roots:
            p = root / rel
            if p.is_file():
                return ImageRef(name=rel, path=p)
        raise Skip(MISSING_IMAGE, f"{what} {value!r} not found under {', '.join(str(r) for r in roots) or '(no root)'}")


# ---- D_text: Open-Reasoner-Zero


class OrzMath(Adapter):
    """Open-Reasoner-Zero's `orz_math_13k_collection_hard.json`: a JSON list whose items are
    conversations `[{"from": "human", "value": q}, {"from": "assistant", "ground_truth": {"value": a}}]`.
    Columns index the conversation by role (`human.value`, `assistant.ground_truth.value`)."""

    name = "orz_math"
    description = "ORZ-Math-13k (D_text): Open-Reasoner-Zero's hard math collection"
    capability = "text"
    columns: ClassVar[dict[str, str]] = {"question": "human.value", "answer": "assistant.ground_truth.value"}
    optional_columns: ClassVar[dict[str, str]] = {"difficulty": "", "id": ""}
    default_origin = True
    default_filename = "orz_math_13k_collection_hard.json"
    default_url = (
        "https://raw.githubusercontent.com/Open-Reasoner-Zero/Open-Reasoner-Zero/main/data/"
        "orz_math_13k_collection_hard.json"
    )

    def flatten(self, row: Any, where: str) -> Mapping[str, Any]:
        if not isinstance(row, list) or not all(isinstance(t, Mapping) for t in row):
            raise Skip(INVALID_ROW, f"expected a list of conversation turns, got {type(row).__name__}")
        turns: dict[str, Any] = {}
        for turn in row:
            role = turn.get("from")
            if isinstance(role, str) and role not in turns:
                turns[role] = turn
        return turns


# ---- D_vis: VLAA-Thinking's GRPO split


VLAA_SUBSETS = {  # config name -> (image folder / id prefix in VLAA-Thinking, Example.source label)
    "clevr_math": ("clevr_math", "clevr_math"),
    "geoqa170k": ("geoqa170k", "geoqa170k"),
    "math_puma": ("synthesis", "math_puma"),
    "arxivqa": ("arxivqa", "arxivqa"),
    "docvqa": ("docvqa", "docvqa"),
    "vizwiz": ("vizwiz", "vizwiz"),
    "allava_laion": ("allava_laion", "allava_laion"),
    "coco": ("coco", "llava_cot_coco"),
    "vg": ("vg", "llava_cot_vg"),
}
VLAA_PAPER_SUBSETS = ("clevr_math", "geoqa170k", "math_puma", "arxivqa")  # D_vis in the paper
_ID_PREFIX = {"allava": "allava_laion", "synthesis": "synthesis"}
_PUMA_ANSWER = re.compile(r"†\s*Answer\s*[:：]\s*(.+?)\s*$", re.DOTALL)


class VlaaThinking(Adapter):
    """`UCSC-VLAA/VLAA-Thinking`'s GRPO split: one JSON list (`VLAA-Thinking-GRPO-25K.json`) of
    `{id, image, question, gt, ds_answer, caption, meta}` from nine sources; images are relative
    paths (`clevr_math/CLEVR_train_027977.png`) under `images/`, shipped as `images/<folder>.tar.gz`.
    The subset is the folder (id prefix): clevr_math, geoqa170k, synthesis (Math PUMA), arxivqa, ...
    Multiple-choice options are written into `question` (GeoQA `A: x`, ArxivQA `A) x`), `gt` is the
    letter; Math PUMA's `gt` may be a worked solution ending in `†Answer: ...`."""

    name = "vlaa_thinking"
    description = "VLAA-Thinking GRPO split (D_vis): CLEVR-Math, GeoQA170K, Math PUMA, ArxivQA"
    capability = "vis"
    columns: ClassVar[dict[str, str]] = {"question": "question", "answer": "gt", "image": "image"}
    optional_columns: ClassVar[dict[str, str]] = {"id": "id", "difficulty": ""}
    options: ClassVar[dict[str, Any]] = {"subsets": list(VLAA_PAPER_SUBSETS), "image_root": None}
    default_origin = True
    letter_needs_choices = True
    default_hub_id = "UCSC-VLAA/VLAA-Thinking"
    default_filename = "VLAA-Thinking-GRPO-25K.json"

    def check_spec(self, spec: SourceSpec, where: str) -> None:
        subsets = spec.options.get("subsets")
        if isinstance(subsets, str):
            subsets = [s.strip() for s in subsets.split(",") if s.strip()]
        if not isinstance(subsets, list) or not subsets:
            raise ValueError(f"{where}.subsets: expected a non-empty list of {', '.join(VLAA_SUBSETS)}")
        bad = [s for s in subsets if s not in VLAA_SUBSETS]
        if bad:
            raise ValueError(f"{where}.subsets: unknown {', '.join(map(str, bad))}; expected {', '.join(VLAA_SUBSETS)}")
        spec.options["subsets"] = list(subsets)

    def _folders(self, spec: SourceSpec) -> dict[str, str]:
        return {VLAA_SUBSETS[s][0]: VLAA_SUBSETS[s][1] for s in spec.options["subsets"]}

    def load_rows(self, spec: SourceSpec) -> RowSet:
        rows = super().load_rows(spec)
        root = spec.options.get("image_root")
        if root:
            rows.base_dir = Path(root)
        elif spec.path:
            base = Path(spec.path) if Path(spec.path).is_dir() else Path(spec.path).parent
            rows.base_dir = base / "images"
        else:  # hub: fetch and extract the image archives of the chosen subsets (real path, untested here)
            rows.base_dir = self._fetch_images(spec)
        return rows

    def _fetch_images(self, spec: SourceSpec) -> Path:
        from huggingface_hub import hf_hub_download

        from capcurriculum.data.download import extract_tarball

        root = spec.cache / spec.name / "images"
        for folder in self._folders(spec):
            if folder in ("coco", "vg"):
                raise SourceError(
                    spec.name, f"source {spec.name!r}: {folder} images are not on the hub; set image_root"
                )
            archive = hf_hub_download(
                spec.hub_id or self.default_hub_id, f"images/{folder}.tar.gz", repo_type="dataset",
                revision=spec.revision, cache_dir=spec.hf_cache,
            )
            extract_tarball(archive, root / folder, strip_top=folder)
        return root

    def subset_folder(self, row: Mapping[str, Any]) -> str | None:
        rid = row.get("id")
        if isinstance(rid, str) and "-" in rid:
            prefix = rid.split("-", 1)[0]
            return _ID_PREFIX.get(prefix, prefix)
        image = row.get("image")
        if isinstance(image, str):
            rel = safe_relpath(image)
            if rel and "/" in rel:
                return rel.split("/", 1)[0]
        return None

    def include(self, row: Mapping[str, Any], spec: SourceSpec) -> str | None:
        folder = self.subset_folder(row)
        return None if folder in self._folders(spec) else (folder or "unknown")

    def source_label(self, row: Mapping[str, Any], spec: SourceSpec) -> str:
        return self._folders(spec)[self.subset_folder(row)]  # type: ignore[index]

    def gold(self, raw: Any, question: str, row: Mapping[str, Any], spec: SourceSpec):
        if isinstance(raw, str) and self.subset_folder(row) == "synthesis":
            m = _PUMA_ANSWER.search(raw)
            if m:
                raw = m.group(1).strip().rstrip(".").strip()
            elif "\n" in raw.strip():
                raise Skip(UNPARSEABLE_ANSWER, "Math PUMA solution without a '†Answer:' line")
        return super().gold(raw, question, row, spec)

    def image(self, row: Mapping[str, Any], index: int, spec: SourceSpec, rows: RowSet) -> ImageRef | None:
        col = spec.column(self, "image")
        roots = [rows.base_dir] if rows.base_dir else []
        return self.image_from_value(
            get_path(row, col), name_stem=f"{index:06d}", roots=roots, what=f"image (column {col!r})"
        )

    def example_id(self, row: Mapping[str, Any], index: int, spec: SourceSpec, source: str) -> str:
        rid = row.get("id")
        if isinstance(rid, str) and "-" in rid:
            return f"{source}-{rid.split('-', 1)[1]}"
        return super().example_id(row, index, spec, source)

    def meta(self, row: Mapping[str, Any], spec: SourceSpec) -> dict[str, Any]:
        meta = {"source_id": row.get("id"), "subset": self.subset_folder(row)}
        extra = row.get("meta")
        if isinstance(extra, Mapping) and isinstance(extra.get("text_question"), str):
            meta["text_question"] = extra["text_question"]  # Math PUMA: the question with the figure in words
        return meta


def _vlaa_alias(subset: str) -> type[VlaaThinking]:
    """`clevr_math`, `geoqa170k`, ... : VLAA-Thinking restricted to one subset (each reads the whole
    JSON; one `vlaa_thinking` entry with `subsets: [...]` reads it once)."""
    return type(
        f"Vlaa_{subset}",
        (VlaaThinking,),
        {
            "name": subset,
            "description": f"VLAA-Thinking GRPO split, {subset} only",
            "options": {"subsets": [subset], "image_root": None},
        },
    )


# ---- EasyR1-style parquet / jsonl (geometry3k; the authors' released stage files)


class EasyR1(Adapter):
    """EasyR1's dataset layout: `problem` (may hold `<image>`), `answer`, `images` (a list of
    `{bytes, path}` structs in parquet, or relative paths in jsonl), optionally `pass_rate`
    (difficulty = 1 - pass_rate). Local: a file, or a directory of `<split>-*.parquet` /
    `data/<split>-*.parquet`; hub: `datasets.load_dataset(hub_id, split=...)`."""

    name = "easyr1"
    description = "EasyR1-style rows: problem / answer / images (+ pass_rate)"
    capability = None
    columns: ClassVar[dict[str, str]] = {"question": "problem", "answer": "answer"}
    optional_columns: ClassVar[dict[str, str]] = {"image": "images", "id": "index", "difficulty": "pass_rate"}
    options: ClassVar[dict[str, Any]] = {"image_root": None}

    def local_rows(self, spec: SourceSpec, path: Path) -> RowSet:
        if path.is_dir() and not spec.filename:
            split = spec.split or self.default_split or "train"
            files = sorted(path.glob(f"{split}-*.parquet")) or sorted(path.glob(f"data/{split}-*.parquet"))
            files = files or sorted(path.glob(f"{split}.jsonl")) or sorted(path.glob(f"{split}.json"))
            if not files:
                raise SourceError(path, f"source {spec.name!r}: no {split}-*.parquet or {split}.jsonl here")
            out: list[tuple[str, Any]] = []
            for f in files:
                out.extend(read_rows_file(f))
            return RowSet([str(f) for f in files], out, base_dir=path)
        return super().local_rows(spec, path)

    def load_rows(self, spec: SourceSpec) -> RowSet:
        rows = super().load_rows(spec)
        if spec.options.get("image_root"):
            rows.base_dir = Path(spec.options["image_root"])
        return rows

    def image(self, row: Mapping[str, Any], index: int, spec: SourceSpec, rows: RowSet) -> ImageRef | None:
        col = spec.column(self, "image")
        value = get_path(row, col) if col else _MISSING
        if value is _MISSING or value is None or (isinstance(value, (list, tuple, str)) and not value):
            if (spec.capability or self.capability) == "vis":
                raise Skip(MISSING_IMAGE, f"no image in column {col!r}")
            return None  # a text-only row (images: [])
        split = spec.split or self.default_split or "train"
        roots = [rows.base_dir] if rows.base_dir else []
        return self.image_from_value(
            value, name_stem=f"{split}-{index:05d}", roots=roots, what=f"image (column {col!r})"
        )

    def example_id(self, row: Mapping[str, Any], index: int, spec: SourceSpec, source: str) -> str:
        col = spec.column(self, "id")
        value = get_path(row, col) if col else _MISSING
        if value is _MISSING or value is None or str(value).strip() == "":
            split = spec.split or self.default_split or "train"
            return f"{source}-{split}-{index:05d}"
        return super().example_id(row, index, spec, source)

    def difficulty_is_pass_rate(self, spec: SourceSpec) -> bool:
        return spec.column(self, "difficulty") == "pass_rate"


class Geometry3k(EasyR1):
    """`hiyouga/geometry3k` (EasyR1's example set; validation during training): parquet splits
    train 2,101 / validation 300 / test 601 with `images` (one embedded image), `problem`
    (starting with `<image>`), `answer` (a value such as `3` or `\\frac{40}{3}`)."""

    name = "geometry3k"
    description = "hiyouga/geometry3k (validation during training)"
    capability = "vis"
    columns: ClassVar[dict[str, str]] = {"question": "problem", "answer": "answer", "image": "images"}
    optional_columns: ClassVar[dict[str, str]] = {"id": "", "difficulty": ""}
    default_origin = True
    default_hub_id = "hiyouga/geometry3k"
    default_split = "test"


# ---- tiny profile: the synthetic world


class World(Adapter):
    """The synthetic world's sets, already in the schema: `<path>/<set>_<split>.jsonl`, images under
    `<path>/vis_images/` (the tiny profile's D_text = text_math, D_vis = vis_math). Pass-through
    with validation: every row must be a valid `Example` whose image exists."""

    name = "world"
    description = "the synthetic world's text_math / vis_math / perception sets (tiny profile)"
    capability = None
    columns: ClassVar[dict[str, str]] = {"id": "id", "question": "question", "answer": "answer", "answer_type": "answer_type"}
    optional_columns: ClassVar[dict[str, str]] = {"image": "image", "difficulty": "difficulty"}
    options: ClassVar[dict[str, Any]] = {"set": "text_math", "image_root": None}

    def check_spec(self, spec: SourceSpec, where: str) -> None:
        if spec.columns:
            raise ValueError(f"{where}.columns: the world adapter reads the schema as is; no column map")
        if not spec.path:
            raise ValueError(f"{where}.path: the world adapter reads a built world directory (e.g. data/world)")
        if not re.fullmatch(r"[a-z_]+", str(spec.options.get("set"))):
            raise ValueError(f"{where}.set: expected a set name such as text_math or vis_math")

    def local_rows(self, spec: SourceSpec, path: Path) -> RowSet:
        split = spec.split or "train"
        file = path / (spec.filename or f"{spec.options['set']}_{split}.jsonl") if path.is_dir() else path
        if not file.is_file():
            raise SourceError(file, f"source {spec.name!r}: world set file not found (is the world built?)")
        root = Path(spec.options["image_root"]) if spec.options.get("image_root") else file.parent / "vis_images"
        return RowSet([str(file)], read_rows_file(file, "jsonl"), base_dir=root)

    def parse(self, row: Mapping[str, Any], index: int, where: str, spec: SourceSpec, rows: RowSet) -> Item:
        q, a = row.get("question"), row.get("answer")
        if not isinstance(q, str) or not q.strip():
            raise Skip(MISSING_QUESTION, "empty or missing question")
        if a is None or str(a).strip() == "":
            raise Skip(MISSING_ANSWER, "empty or missing answer")
        if row.get("answer_type") not in ANSWER_TYPES:
            raise Skip(UNPARSEABLE_ANSWER, f"answer_type {row.get('answer_type')!r} is not one of {ANSWER_TYPES}")
        try:
            ex = Example.from_dict(dict(row), where)
        except (TypeError, ValueError) as e:
            raise Skip(INVALID_ROW, str(e)) from None
        if ex.answer_type == "choice" and (not ex.choices or not is_letter(ex.answer)):
            raise Skip(UNPARSEABLE_ANSWER, f"choice answer {ex.answer!r} without options")
        image = None
        if ex.image:
            image = self.image_from_value(ex.image, name_stem=ex.id, roots=[rows.base_dir], what="image")  # type: ignore[list-item]
            if spec.verify_images:
                _check_image(image, image.name)
        if spec.capability:
            ex.capability = spec.capability
        return Item(ex, image, where)


# ---------------------------------------------------------------------------------- registry


ADAPTERS: dict[str, Adapter] = {}


def register_adapter(adapter: Adapter | type[Adapter]) -> Adapter:
    inst = adapter() if isinstance(adapter, type) else adapter
    if not inst.name:
        raise ValueError(f"{type(inst).__name__}: an adapter needs a name")
    ADAPTERS[inst.name] = inst
    return inst


def get_adapter(name: str, where: str = "adapter") -> Adapter:
    try:
        return ADAPTERS[name]
    except KeyError:
        raise ValueError(f"{where}: unknown adapter {name!r}; expected one of {', '.join(adapter_names())}") from None


def adapter_names() -> list[str]:
    return sorted(ADAPTERS)


for _cls in (OrzMath, VlaaThinking, EasyR1, Geometry3k, World):
    register_adapter(_cls)
for _subset in VLAA_PAPER_SUBSETS:
    register_adapter(_vlaa_alias(_subset))


# ---------------------------------------------------------------------------------- loading


def load_rows(spec: Mapping[str, Any] | SourceSpec) -> RowSet:
    """The raw rows of a configured source (from `path`, `url` or `hub_id`), unparsed."""
    spec = SourceSpec.from_dict(spec)
    return get_adapter(spec.adapter).load_rows(spec)


def _check_columns(adapter: Adapter, spec: SourceSpec, flat: list[Mapping[str, Any]], rows: RowSet) -> None:
    """Raise SourceError when a needed column (or one the config names) is in no row at all."""
    fields = dict(adapter.columns)
    fields.update({k: v for k, v in spec.columns.items()})
    where = rows.files[0] if len(rows.files) == 1 else ", ".join(rows.files)
    if not flat:
        raise SourceError(where, f"source {spec.name!r}: no readable rows")
    for fld, col in fields.items():
        if not col:
            continue
        if not any(get_path(r, col) is not _MISSING for r in flat):
            seen = sorted({k for r in flat[:50] for k in r})
            raise SourceError(
                where,
                f"source {spec.name!r} (adapter {adapter.name}): column {col!r} for {fld} is missing "
                f"from all {len(flat)} rows; columns present: {', '.join(map(str, seen))}",
            )


def load_source(spec: Mapping[str, Any] | SourceSpec, rows: RowSet | None = None) -> SourceResult:
    """Parse one configured source into items, skipping and counting bad rows by reason."""
    spec = SourceSpec.from_dict(spec)
    adapter = get_adapter(spec.adapter)
    rows = rows if rows is not None else adapter.load_rows(spec)
    stats = SourceStats(spec.name, adapter.name, files=list(rows.files), rows=len(rows.rows))
    flat: list[tuple[int, str, Mapping[str, Any]]] = []
    for index, (where, raw) in enumerate(rows.rows):
        try:
            flat.append((index, where, adapter.flatten(raw, where)))
        except Skip as s:
            stats.skip(s.reason, where, s.message)
    _check_columns(adapter, spec, [r for _, _, r in flat], rows)
    items: list[Item] = []
    for index, where, row in flat:
        label = adapter.include(row, spec)
        if label is not None:
            stats.filtered[label] = stats.filtered.get(label, 0) + 1
            continue
        try:
            item = adapter.parse(row, index, where, spec, rows)
        except Skip as s:
            stats.skip(s.reason, where, s.message)
            continue
        items.append(item)
        stats.by_source[item.example.source] = stats.by_source.get(item.example.source, 0) + 1
    stats.kept = len(items)
    return SourceResult(spec, items, stats)


def load_sources(specs: Iterable[Mapping[str, Any] | SourceSpec]) -> Iterator[SourceResult]:
    for i, spec in enumerate(specs):
        yield load_source(SourceSpec.from_dict(spec, where=f"sources[{i}]"))
