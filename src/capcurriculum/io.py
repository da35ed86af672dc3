"""Atomic writes, JSON-lines reading with file:line errors, and content hashes.

Every artifact a DVC node writes goes through here, so a killed node never leaves a half-written
file behind for DVC to cache: bytes go to a temporary sibling first and are renamed into place.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any


class DataError(ValueError):
    """Bad input data, with the file (and line) that holds it."""

    def __init__(self, path: str | os.PathLike, message: str, line: int | None = None):
        where = f"{path}:{line}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = str(path)
        self.line = line


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path next to `path`; rename it onto `path` only if the block succeeds.

    Works for files and directories alike (the caller creates what it needs at the yielded path).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    target = tmp / path.name
    try:
        yield target
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path)
        elif path.exists() or path.is_symlink():
            path.unlink()
        os.replace(target, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_text(path: str | os.PathLike, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | os.PathLike, obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n")


def write_jsonl(path: str | os.PathLike, rows: Iterable[dict]) -> int:
    """Write rows as JSON lines atomically; returns the number written."""
    n = 0
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, sort_keys=True) + "\n")
            n += 1
    return n


def json_problem(e: json.JSONDecodeError) -> str:
    """'malformed JSON (<json's reason> at column <n>)'; json's own reason may end in a dangling " at"
    ("Unterminated string starting at"), which would read "at at column"."""
    return f"malformed JSON ({e.msg.removesuffix(' at')} at column {e.colno})"


def utf8_problem(e: UnicodeDecodeError) -> str:
    return f"not valid UTF-8 ({e.reason} at byte {e.start + 1} of the line)"


def iter_jsonl(path: str | os.PathLike) -> Iterator[tuple[int, dict]]:
    """Yield (line number, object) for each non-blank line; a bad line (undecodable bytes included)
    raises DataError naming it."""
    path = Path(path)
    if not path.exists():
        raise DataError(path, "file not found")
    with open(path, "rb") as f:  # bytes, decoded a line at a time, so a bad byte is named by its line
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                raise DataError(path, utf8_problem(e), lineno) from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise DataError(path, json_problem(e), lineno) from None
            if not isinstance(obj, dict):
                raise DataError(path, f"expected a JSON object, got {type(obj).__name__}", lineno)
            yield lineno, obj


def read_jsonl(path: str | os.PathLike) -> list[dict]:
    return [obj for _, obj in iter_jsonl(path)]


def read_json(path: str | os.PathLike) -> Any:
    path = Path(path)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise DataError(path, "file not found") from None
    except json.JSONDecodeError as e:
        raise DataError(path, f"malformed JSON ({e.msg})", e.lineno) from None


def check_safetensors(path: str | os.PathLike) -> None:
    """Raise DataError naming `path` unless it is a whole safetensors file: an 8-byte header length, a
    JSON header of that length, and exactly the data bytes its tensors' offsets end at. Reads the
    header only (safetensors' own error, "incomplete metadata", names no file)."""
    path = Path(path)
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        n = int.from_bytes(head, "little") if len(head) == 8 else -1
        if n < 0 or 8 + n > size:
            raise DataError(path, f"damaged safetensors: {size} bytes, too short for its header (truncated?)")
        try:
            header = json.loads(f.read(n))
            end = max((int(t["data_offsets"][1]) for k, t in header.items() if k != "__metadata__"), default=0)
        except (ValueError, TypeError, KeyError, IndexError) as e:
            raise DataError(path, f"damaged safetensors: unreadable header ({e})") from None
    if 8 + n + end != size:
        raise DataError(path, f"damaged safetensors: its tensors need {8 + n + end} bytes, the file has {size}"
                              " (truncated?)")


def sha256_file(path: str | os.PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
