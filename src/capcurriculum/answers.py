"""Answer extraction, normalisation and matching — the one place the filter, the rewards and the
evaluation decide whether an answer is right, so the three can never disagree."""

from __future__ import annotations

import re

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}
_BOXED = "\\boxed{"


def extract_boxed(text: str) -> str | None:
    """The content of the last balanced \\boxed{...} in `text`, or None."""
    start = text.rfind(_BOXED)
    while start != -1:
        depth, i = 1, start + len(_BOXED)
        while i < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[i], 0)
            i += 1
        if depth == 0:
            return text[start + len(_BOXED): i - 1].strip()
        start = text.rfind(_BOXED, 0, start)
    return None


def normalize(answer: str) -> str:
    """Lower-case, strip punctuation and articles, map number words to digits."""
    s = answer.strip().lower()
    s = re.sub(r"^\\text\{(.*)\}$", r"\1", s)
    s = re.sub(r"[.!?;,:\"'`]+$", "", s).strip()
    s = re.sub(r"^(the|a|an)\s+", "", s)
    s = re.sub(r"\s+", " ", s)
    return _NUMBER_WORDS.get(s, s)


def _as_number(s: str) -> float | None:
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


_PLAIN_DECIMAL = re.compile(r"[+-]?\d+(?:\.\d+)?")


def plain_decimal(answer: str) -> bool:
    """Whether `answer` normalises to a bare decimal number ("6", "-2.5", "1,000"): no exponent, fraction,
    unit or LaTeX, nothing another grader could read as a different value."""
    return _PLAIN_DECIMAL.fullmatch(normalize(answer).replace(",", "")) is not None


def _choice_letter(s: str) -> str:
    """'(b)', 'b.', 'b) red' -> 'b'; anything else unchanged."""
    m = re.fullmatch(r"\(?([a-z])\)?(?:[.)]?\s.*|[.)])?", s)
    return m.group(1) if m else s


def is_correct(pred: str | None, gold: str, answer_type: str = "text") -> bool:
    """Whether `pred` matches `gold`; numbers compare by value, text after normalisation."""
    if pred is None:
        return False
    p, g = normalize(pred), normalize(gold)
    if answer_type == "choice":
        p, g = _choice_letter(p), _choice_letter(g)
    if answer_type == "number":
        pn, gn = _as_number(p), _as_number(g)
        if pn is not None and gn is not None:
            return abs(pn - gn) <= 1e-6 * max(1.0, abs(gn))
    return p == g


def extract_answer(text: str | None) -> str | None:
    """The answer a response commits to: its last \\boxed{}, else a bare short reply.

    A reply with no box is accepted only when it is short (a word or number, as filter models
    answer a short question); a longer unboxed reply is unparseable, i.e. None.
    """
    if text is None:
        return None
    boxed = extract_boxed(text)
    if boxed is not None:
        return boxed
    bare = text.strip()
    if bare and "<think>" not in bare and len(bare.split()) <= 3:
        return bare
    return None
