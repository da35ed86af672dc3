"""DOCCI reader: `docci_descriptions.jsonlines` plus `images/<image_file>` (DESIGN.md section 4).

The real release (splits train / test / qual_dev / qual_test) and the project's synthetic world
(splits pretrain / train / test) share this layout, so one loader serves both. Every line is
validated; a bad one either raises `DataError` naming `file:line` and what is wrong
(``on_error="raise"``) or is skipped, logged as a warning (file:line, reason) and counted by
reason (``on_error="skip"``).
"""

from __future__ import annotations

import json
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from capcurriculum.io import DataError, json_problem, utf8_problem

log = logging.getLogger(__name__)

DESCRIPTIONS_FILE = "docci_descriptions.jsonlines"
IMAGES_DIR = "images"
FIELDS: tuple[str, ...] = ("example_id", "split", "image_file", "description")

OnError = Literal["raise", "skip"]

# Reasons a line (or image) is skipped; the keys of `DocciCorpus.skipped`.
BAD_ENCODING = "bad_encoding"
MALFORMED_JSON = "malformed_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_FIELD = "missing_field"
WRONG_TYPE = "wrong_type"
EMPTY_FIELD = "empty_field"
UNSAFE_PATH = "unsafe_image_path"
DUPLICATE_ID = "duplicate_id"
MISSING_IMAGE = "missing_image"
CORRUPT_IMAGE = "corrupt_image"


@dataclass(frozen=True)
class DocciRecord:
    example_id: str
    split: str
    image_file: str
    description: str
    image_path: Path

    def to_dict(self) -> dict[str, str]:
        return {
            "example_id": self.example_id,
            "split": self.split,
            "image_file": self.image_file,
            "description": self.description,
            "image_path": str(self.image_path),
        }


@dataclass
class DocciCorpus:
    root: Path
    records: list[DocciRecord]
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count
    problems: list[tuple[str, str]] = field(default_factory=list)  # ("file:line", reason message)

    def __len__(self) -> int:
        return len(self.records)

    def __iter__(self) -> Iterator[DocciRecord]:
        return iter(self.records)

    @property
    def n_skipped(self) -> int:
        return sum(self.skipped.values())

    def split_counts(self) -> dict[str, int]:
        return dict(Counter(r.split for r in self.records))

    def by_split(self, split: str) -> list[DocciRecord]:
        return [r for r in self.records if r.split == split]

    def to_dataset(self):
        """A `datasets.Dataset` with the four DOCCI fields plus `image_path` (str)."""
        import datasets

        columns = (*FIELDS, "image_path")
        features = datasets.Features({c: datasets.Value("string") for c in columns})
        rows = [r.to_dict() for r in self.records]
        return datasets.Dataset.from_dict({c: [row[c] for row in rows] for c in columns}, features=features)


class _Bad(Exception):
    def __init__(self, reason: str, message: str):
        super().__init__(message)
        self.reason = reason
        self.message = message


def _check_on_error(on_error: str) -> None:
    if on_error not in ("raise", "skip"):
        raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}")


def _validate(obj: Any) -> dict[str, str]:
    if not isinstance(obj, dict):
        raise _Bad(NOT_AN_OBJECT, f"expected a JSON object, got {type(obj).__name__}")
    missing = [k for k in FIELDS if k not in obj or obj[k] is None]
    if missing:
        raise _Bad(MISSING_FIELD, f"missing field(s) {', '.join(missing)}")
    for k in FIELDS:
        v = obj[k]
        if not isinstance(v, str):
            raise _Bad(WRONG_TYPE, f"field {k} must be a string, got {type(v).__name__} ({v!r:.60})")
        if not v.strip():
            raise _Bad(EMPTY_FIELD, f"field {k} is empty")
    image_file = obj["image_file"]
    parts = PurePosixPath(image_file.replace("\\", "/")).parts
    if image_file.startswith(("/", "\\")) or ".." in parts or (parts and ":" in parts[0]):
        raise _Bad(UNSAFE_PATH, f"image_file {image_file!r} must be a relative path inside {IMAGES_DIR}/")
    return {k: obj[k] for k in FIELDS}


def load_docci(
    root: str | Path,
    splits: Sequence[str] | None = None,
    *,
    check_images: bool = True,
    on_error: OnError = "raise",
) -> DocciCorpus:
    """Read `root/docci_descriptions.jsonlines`, keeping the records of `splits` (all when None).

    Each line must be a JSON object with non-empty string fields example_id, split, image_file and
    description; example ids are unique across the whole file (every split); with `check_images`
    the image `root/images/<image_file>` of each kept record must exist. A violation raises
    `DataError` ("<file>:<line>: <what>") or, with on_error="skip", drops the line and counts it
    in `corpus.skipped[reason]` and `corpus.problems`. Requesting a split the file does not hold
    raises ValueError listing the splits present.
    """
    _check_on_error(on_error)
    root = Path(root)
    path = root / DESCRIPTIONS_FILE
    if not path.is_file():
        raise DataError(path, "file not found")
    if isinstance(splits, str):
        splits = [splits]
    wanted = None if splits is None else set(splits)

    records: list[DocciRecord] = []
    skipped: Counter[str] = Counter()
    problems: list[tuple[str, str]] = []
    seen: dict[str, int] = {}  # example_id -> line it was first seen on
    present: set[str] = set()

    def bad(lineno: int, reason: str, message: str) -> None:
        if on_error == "raise":
            raise DataError(path, message, lineno) from None
        skipped[reason] += 1
        problems.append((f"{path}:{lineno}", message))
        log.warning("%s:%d: skipped (%s): %s", path, lineno, reason, message)

    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8-sig" if lineno == 1 else "utf-8")
            except UnicodeDecodeError as e:
                bad(lineno, BAD_ENCODING, utf8_problem(e))
                continue
            if not line.strip():
                continue
            try:
                try:
                    obj = json.loads(line)
                except json.JSONDecodeError as e:
                    raise _Bad(MALFORMED_JSON, json_problem(e)) from None
                row = _validate(obj)
                eid = row["example_id"]
                if eid in seen:
                    raise _Bad(DUPLICATE_ID, f"duplicate example_id {eid!r} (first on line {seen[eid]})")
                seen[eid] = lineno
                present.add(row["split"])
                if wanted is not None and row["split"] not in wanted:
                    continue
                image_path = root / IMAGES_DIR / row["image_file"]
                if check_images and not image_path.is_file():
                    raise _Bad(MISSING_IMAGE, f"image file {row['image_file']} not found at {image_path}")
            except _Bad as b:
                bad(lineno, b.reason, b.message)
                continue
            records.append(DocciRecord(**row, image_path=image_path))

    if wanted is not None:
        unknown = sorted(wanted - present)
        if unknown:
            raise ValueError(
                f"{path}: unknown split(s) {', '.join(unknown)}; "
                f"splits present: {', '.join(sorted(present)) or '(none)'}"
            )
    return DocciCorpus(root=root, records=records, skipped=dict(skipped), problems=problems)


def open_image(record: DocciRecord | str | Path):
    """Decode a record's image (or an image path) fully and return it as an RGB `PIL.Image.Image`.

    A missing, truncated or undecodable file raises `DataError` naming it.
    """
    from PIL import Image

    path = Path(record.image_path if isinstance(record, DocciRecord) else record)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: a truncated JPEG only fails here
            return img.convert("RGB")
    except FileNotFoundError:
        raise DataError(path, "image file not found") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(path, f"cannot decode image ({type(e).__name__}: {e})") from None


def verify_images(corpus: DocciCorpus, on_error: OnError = "raise", *, progress: bool = True) -> DocciCorpus:
    """Decode every image of `corpus`; return a corpus without the undecodable ones.

    With on_error="raise" the first bad image raises `DataError` naming it; with "skip" it is
    dropped and counted under `skipped["corrupt_image"]` (or "missing_image") and in `problems`.
    The input corpus is not modified.
    """
    from tqdm.auto import tqdm

    _check_on_error(on_error)
    kept: list[DocciRecord] = []
    skipped = Counter(corpus.skipped)
    problems = list(corpus.problems)
    for rec in tqdm(corpus.records, desc="verify DOCCI images", unit="img", disable=not progress):
        try:
            open_image(rec).close()
        except DataError as e:
            if on_error == "raise":
                raise
            reason = MISSING_IMAGE if not rec.image_path.exists() else CORRUPT_IMAGE
            skipped[reason] += 1
            problems.append((str(rec.image_path), f"{reason}: {e} (example_id {rec.example_id})"))
            log.warning("%s: skipped (%s): %s (example_id %s)", rec.image_path, reason, e, rec.example_id)
            continue
        kept.append(rec)
    return DocciCorpus(root=corpus.root, records=kept, skipped=dict(skipped), problems=problems)
