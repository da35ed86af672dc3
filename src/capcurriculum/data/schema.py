"""The one example schema every training and evaluation set uses (DESIGN.md section 2)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

AnswerType = Literal["choice", "number", "text"]
ANSWER_TYPES: tuple[str, ...] = ("choice", "number", "text")
REQUIRED = ("id", "question", "answer", "answer_type", "source")


@dataclass
class Example:
    id: str
    question: str
    answer: str
    answer_type: AnswerType
    source: str
    image: str | None = None  # path relative to the set's image root, or None for text-only items
    choices: list[str] | None = None  # for answer_type == "choice": option texts, answer is a letter
    difficulty: float | None = None  # larger is harder; the source's level or a measured pass rate
    capability: str | None = None  # perc / text / vis: which curriculum set it belongs to
    meta: dict[str, Any] = field(default_factory=dict)  # what the source needs beyond the schema

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, row: dict[str, Any], where: str = "<row>") -> Example:
        missing = [k for k in REQUIRED if k not in row or row[k] is None]
        if missing:
            raise ValueError(f"{where}: missing field(s) {', '.join(missing)}")
        if row["answer_type"] not in ANSWER_TYPES:
            raise ValueError(
                f"{where}: answer_type {row['answer_type']!r} is not one of {', '.join(ANSWER_TYPES)}"
            )
        known = {f for f in cls.__dataclass_fields__}
        extra = {k: v for k, v in row.items() if k not in known}
        kwargs = {k: v for k, v in row.items() if k in known}
        if extra:
            kwargs["meta"] = {**kwargs.get("meta", {}), **extra}
        kwargs["answer"] = str(kwargs["answer"])
        return cls(**kwargs)
