"""The source adapters: `SourceAdapter` (rows -> `SourceItem`s) and one subclass per source layout — Open-Reasoner-Zero
(D_text), VLAA-Thinking's GRPO split (D_vis), EasyR1-style files (geometry3k, the authors' stage files) and
the tiny profile's world.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from capcurriculum.answers import (
    choice_answer,
    is_letter,
    parse_choices,
)
from capcurriculum.data.schema import ANSWER_TYPES, Example
from capcurriculum.data.sources.rows import (
    _check_image,
    classify_answer,
    get_path,
    image_suffix,
    parse_difficulty,
    read_rows_file,
    safe_relpath,
)
from capcurriculum.data.sources.spec import (
    _MISSING,
    INVALID_ROW,
    MISSING_ANSWER,
    MISSING_IMAGE,
    MISSING_QUESTION,
    UNPARSEABLE_ANSWER,
    ImageRef,
    RowSet,
    Skip,
    SourceError,
    SourceItem,
    SourceSpec,
)

# ---------------------------------------------------------------------------------- adapters


class SourceAdapter:
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
        """SourceAdapter-specific validation of options (raise ValueError naming `where`)."""

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

    def parse(self, row: Mapping[str, Any], index: int, where: str, spec: SourceSpec, rows: RowSet) -> SourceItem:
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
        return SourceItem(ex, image, where)

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


class OrzMath(SourceAdapter):
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


class VlaaThinking(SourceAdapter):
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


class EasyR1(SourceAdapter):
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


class World(SourceAdapter):
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

    def parse(self, row: Mapping[str, Any], index: int, where: str, spec: SourceSpec, rows: RowSet) -> SourceItem:
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
        return SourceItem(ex, image, where)


