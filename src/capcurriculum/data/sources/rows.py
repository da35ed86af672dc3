"""Reading a source's files: rows out of json / jsonl / parquet, dotted column paths, safe relative paths,
image sniffing; and a row's gold answer and level as the sets store them (the answer's reading is
`capcurriculum.answers`').
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from pathlib import Path, PurePosixPath
from typing import Any

from capcurriculum.answers import (
    DECIMAL,
    balanced,
    number_literal,
    strip_wrappers,
)
from capcurriculum.data.sources.spec import (
    _MISSING,
    CORRUPT_IMAGE,
    MAX_GOLD_CHARS,
    MISSING_ANSWER,
    UNPARSEABLE_ANSWER,
    ImageRef,
    Skip,
)
from capcurriculum.io import DataError, iter_jsonl

# ---------------------------------------------------------------------------------- gold answers


def classify_answer(value: Any, max_chars: int = MAX_GOLD_CHARS) -> tuple[str, str]:
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


