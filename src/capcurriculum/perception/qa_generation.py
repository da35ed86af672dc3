"""Perception questions from captions: an LLM writes them (prompt files, robust parsing), and in the
CPU profiles a template path reads them off the world's ground truth as well.

Nothing is lost quietly: every caption's raw LLM output that cannot be parsed is kept for
inspection, and every dropped question is counted by the rule that dropped it.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from capcurriculum.answers import DECIMAL, normalize
from capcurriculum.data.schema import Example

QTYPES = ("color", "count", "spatial", "size", "shape", "attribute", "presence")
QA_OPTION_LETTERS = "ABCD"


def load_qa_prompt(name: str) -> str:
    """A prompt template shipped in capcurriculum/perception/prompts/ (or a path to one's own)."""
    if Path(name).is_file():
        return Path(name).read_text(encoding="utf-8")
    packaged = resources.files("capcurriculum.perception").joinpath("prompts").joinpath(f"{name}.txt")
    if not packaged.is_file():
        raise FileNotFoundError(f"perception.generation.prompt: no prompt file {name!r} (neither a path nor "
                                f"a packaged prompt in capcurriculum/perception/prompts/)")
    return packaged.read_text("utf-8")


@dataclass
class ParseOutcome:
    items: list[dict[str, Any]] = field(default_factory=list)
    error: str | None = None


def _json_candidates(text: str) -> Iterable[str]:
    fenced = re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    yield from fenced
    start, end = text.find("["), text.rfind("]")
    if 0 <= start < end:
        yield text[start:end + 1]
    yield text.strip()


def parse_generation(text: str) -> ParseOutcome:
    """Questions from one LLM output: a JSON list (fenced or bare), or `Q: ... A: ...` lines."""
    for cand in _json_candidates(text):
        try:
            obj = json.loads(cand)
        except (json.JSONDecodeError, ValueError):
            continue
        if isinstance(obj, dict):
            obj = obj.get("questions", [obj])
        if isinstance(obj, list):
            items = [o for o in obj if isinstance(o, dict)]
            if items or not obj:  # an empty list is a valid "nothing to ask about this caption"
                return ParseOutcome(items)
    pairs = re.findall(r"Q(?:uestion)?\s*[:.]\s*(.+?)\s*\n\s*A(?:nswer)?\s*[:.]\s*(.+)", text)
    if pairs:
        return ParseOutcome([{"question": q.strip(), "answer": a.strip()} for q, a in pairs])
    return ParseOutcome(error="no JSON list and no 'Q: ... A: ...' pairs" if text.strip() else "empty output")


def validate_item(item: dict[str, Any], fmt: str, max_words: int) -> tuple[dict[str, Any] | None, str | None]:
    """(clean item, None) or (None, the rule that drops it)."""
    q, a = item.get("question"), item.get("answer")
    if not isinstance(q, str) or not q.strip():
        return None, "missing_question"
    if not isinstance(a, (str, int, float)) or isinstance(a, bool) or not str(a).strip():
        return None, "missing_answer"
    q, a = q.strip(), str(a).strip()
    qtype = str(item.get("type", "attribute")).strip().lower()
    qtype = qtype if qtype in QTYPES else "attribute"
    if fmt == "mcq":
        choices = item.get("choices")
        if not isinstance(choices, list) or len(choices) != 4 or not all(isinstance(c, (str, int, float)) for c in choices):
            return None, "bad_choices"
        choices = [str(c).strip() for c in choices]
        letter = a.upper().strip("(). ")
        if letter not in QA_OPTION_LETTERS:
            return None, "bad_answer_letter"
        if len({normalize(c) for c in choices}) != 4:
            return None, "duplicate_choices"
        return {"question": q, "answer": letter, "choices": choices, "qtype": qtype}, None
    if len(a.split()) > max_words:
        return None, "answer_too_long"
    number = DECIMAL.fullmatch(normalize(a))
    return {"question": q, "answer": normalize(a), "choices": None, "qtype": qtype,
            "answer_type": "number" if number else "text"}, None


def format_mcq_question(question: str, choices: Sequence[str]) -> str:
    return question + "\n" + "\n".join(f"{QA_OPTION_LETTERS[i]}. {c}" for i, c in enumerate(choices))


class CandidateCollector:
    """Accumulates candidates across captions, dropping duplicates per image with counts."""

    def __init__(self, fmt: str, max_words: int):
        if fmt not in ("short", "mcq"):
            raise ValueError(f"perception.generation.format: expected 'short' or 'mcq', got {fmt!r}")
        self.fmt, self.max_words = fmt, max_words
        self.examples: list[Example] = []
        self.unparseable: list[dict[str, Any]] = []
        self.dropped: Counter = Counter()
        self._seen: set[tuple[str, str]] = set()

    def add_output(self, record, text: str | None, error: str | None, generator: str) -> None:
        if error is not None or text is None:
            self.unparseable.append({"example_id": record.example_id, "error": error or "no output", "output": text})
            self.dropped["generation_error"] += 1
            return
        outcome = parse_generation(text)
        if outcome.error:
            self.unparseable.append({"example_id": record.example_id, "error": outcome.error, "output": text})
            self.dropped["unparseable_output"] += 1
            return
        if not outcome.items:
            self.dropped["no_questions"] += 1
        for item in outcome.items:
            self.add_item(record, item, generator)

    def add_item(self, record, item: dict[str, Any], generator: str) -> None:
        clean, why = validate_item(item, self.fmt, self.max_words)
        if why:
            self.dropped[why] += 1
            return
        key = (record.example_id, normalize(clean["question"]))
        if key in self._seen:
            self.dropped["duplicate"] += 1
            return
        self._seen.add(key)
        is_mcq = clean["choices"] is not None
        self.examples.append(Example(
            id=f"{record.example_id}_{generator}{len(self.examples):06d}",
            question=format_mcq_question(clean["question"], clean["choices"]) if is_mcq else clean["question"],
            answer=clean["answer"], answer_type="choice" if is_mcq else clean["answer_type"],
            source=f"perception/{generator}", image=record.image_file, choices=clean["choices"],
            capability="perc", meta={"qtype": clean["qtype"], "scene_id": record.example_id, "generator": generator}))

    def metrics(self) -> dict[str, float]:
        gen = Counter(e.meta["generator"] for e in self.examples)
        return {"candidates": len(self.examples), "unparseable_outputs": len(self.unparseable),
                **{f"candidates/{k}": v for k, v in gen.items()},
                **{f"dropped/{k}": v for k, v in sorted(self.dropped.items())}}
