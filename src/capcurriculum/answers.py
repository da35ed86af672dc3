"""Answer extraction, normalisation and matching — the one place the filter, the rewards and the
evaluation decide whether an answer is right, so the three can never disagree."""

from __future__ import annotations

import re
import threading
from functools import lru_cache

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}
_BOXED = "\\boxed{"
_BOX_OR_BRACE = re.compile(r"\\boxed\{|[{}]")

MAX_ANSWER_CHARS = 512
"""The longest boxed answer any grader here reads. A box holding more is no answer: nothing is copied
out of it, normalised or parsed. The reward's own guard (`reward.max_answer_chars`, 64 by default) is
stricter; benchmark golds and option texts are far shorter."""


def boxed_answers(text: str) -> list[str | None]:
    """The contents of the top-level balanced \\boxed{...} in `text`, in order, found in one pass.

    Braces are matched with one stack, and only while a box is open (outside every box a brace cannot
    close one, so the scan jumps to the next box with `str.find`): the work is linear in len(text)
    however many boxes are open, unclosed or nested. A box counts when its `{` finds its `}`; it is
    top-level when no other counted box holds it. An entry is None when that box is no answer: it
    holds another box (a policy that nests 3,000 boxes is not answering with the innermost) or runs
    past MAX_ANSWER_CHARS.
    """
    stack: list[int] = []  # one per `{` inside the outermost open box: where a box's content starts, or -1
    closed: list[tuple[int, int]] = []  # (content start, content end) of each balanced box, in closing order
    open_boxes, pos = 0, 0
    while True:
        if not open_boxes:
            stack.clear()
            pos = text.find(_BOXED, pos)
            if pos == -1:
                break
        m = _BOX_OR_BRACE.search(text, pos)
        if m is None:
            break
        pos = m.end()
        if m.group() == "}":
            if stack and (start := stack.pop()) >= 0:
                closed.append((start, m.start()))
                open_boxes -= 1
        elif m.group() == "{":
            stack.append(-1)
        else:
            stack.append(pos)
            open_boxes += 1
    top: list[tuple[int, int]] = []
    for start, end in reversed(closed):  # a box nested in another closes before it and starts after it
        if not top or end < top[-1][0]:
            top.append((start, end))
    out: list[str | None] = []
    for start, end in reversed(top):
        content = text[start:end] if end - start <= MAX_ANSWER_CHARS else None
        out.append(None if content is None or _BOXED in content else content.strip())
    return out


def extract_boxed(text: str) -> str | None:
    """The content of the last top-level balanced \\boxed{...} in `text` (see `boxed_answers`), or None."""
    found = boxed_answers(text)
    return found[-1] if found else None


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


# Golds that name no answer: a pointer to a figure or solution, "n/a", question marks. Matched after
# `normalize`, so case, articles and end punctuation do not matter.
_PLACEHOLDER_GOLD = re.compile(
    r"(?:see|refer to|(?:as )?shown in|given in)\s+(?:the\s+)?"
    r"(?:figure|fig|image|picture|diagram|graph|chart|table|solution|explanation|text|above|below)\b.*"
    r"|n/?a|\?+|-+")


def gold_is_gradeable(gold: object, answer_type: str) -> bool:
    """Whether any answer could be graded right against `gold`. The one guard the reward, the filter and
    the evaluation share: an ungradeable gold is never rewarded, never kept, never scored right, and
    each of them counts the items it met.

    Ungradeable: empty; a placeholder ("see figure", "n/a"); longer than MAX_ANSWER_CHARS (no extracted
    answer could equal it); a number-typed gold that is neither a number nor a closed expression
    math-verify can parse (that parse needs the main thread for its time limit; elsewhere only plain
    numbers count)."""
    return _gradeable(str(gold) if gold is not None else "", answer_type,
                      threading.current_thread() is threading.main_thread())


@lru_cache(maxsize=1 << 14)
def _gradeable(gold: str, answer_type: str, main_thread: bool) -> bool:
    g = normalize(gold)
    if not g or len(g) > MAX_ANSWER_CHARS or _PLACEHOLDER_GOLD.fullmatch(g):
        return False
    if answer_type != "number" or _as_number(g) is not None:
        return True
    if not main_thread:
        return False
    from math_verify import parse

    # a number-typed gold must parse to a closed expression (no free symbols, as in "x + 1")
    return any(getattr(x, "free_symbols", None) == set() for x in parse(f"${gold}$", parsing_timeout=2))
