"""Answer extraction, normalisation and matching — the one place the filter, the rewards and the
evaluation decide whether an answer is right, so the three can never disagree.

Sections: boxes (what a trained response commits to); normalisation and matching (`is_correct`,
`matches` with its math-verify fallback); gradeability (`gold_is_gradeable`); golds as the training
sets write them (`strip_wrappers`, `number_literal`, `parse_choices`, `choice_answer`); and the
rule-based fallbacks the benchmark adapters read a free-form response with (`answer_line`,
`infer_choice`, `parse_options`, `yes_no`, `single_number`, ...). Every answer regex is compiled once,
here; where two look alike, the comment above them says why both exist.
"""

from __future__ import annotations

import logging
import math
import re
import string
import threading
from collections.abc import Mapping, Sequence
from functools import lru_cache

log = logging.getLogger(__name__)

LETTERS = string.ascii_uppercase
"""Option letters in order: the n-th option of a question is LETTERS[n]."""

_NUMBER_WORDS = {w: str(i) for i, w in enumerate(
    ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven", "twelve"])}
BOXED = "\\boxed{"
_BOX_OR_BRACE = re.compile(r"\\boxed\{|[{}]")

MAX_ANSWER_CHARS = 512
"""The longest boxed answer any grader here reads. A box holding more is no answer: nothing is copied
out of it, normalised or parsed. The reward's own guard (`reward.max_answer_chars`, 64 by default) is
stricter; benchmark golds and option texts are far shorter."""


# ------------------------------------------------------------------------------ boxes


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
            pos = text.find(BOXED, pos)
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
        out.append(None if content is None or BOXED in content else content.strip())
    return out


def extract_boxed(text: str) -> str | None:
    """The content of the last top-level balanced \\boxed{...} in `text` (see `boxed_answers`), or None."""
    found = boxed_answers(text)
    return found[-1] if found else None


# ------------------------------------------------------------------------------ normalisation and matching

_TEXT_WRAPPER = re.compile(r"^\\text\{(.*)\}$")
_END_PUNCTUATION = re.compile(r"[.!?;,:\"'`]+$")
_ARTICLE = re.compile(r"^(the|a|an)\s+")
_SPACES = re.compile(r"\s+")


def normalize(answer: str) -> str:
    """Lower-case, strip punctuation and articles, map number words to digits."""
    s = answer.strip().lower()
    s = _TEXT_WRAPPER.sub(r"\1", s)
    s = _END_PUNCTUATION.sub("", s).strip()
    s = _ARTICLE.sub("", s)
    s = _SPACES.sub(" ", s)
    return _NUMBER_WORDS.get(s, s)


def _as_number(s: str) -> float | None:
    """A normalised answer's value for `is_correct`: Python's float() once commas go ("1e3" and "inf" too).
    `parse_number` below is the benchmarks' looser reading ("50%", "3/4", "$2")."""
    try:
        return float(s.replace(",", ""))
    except ValueError:
        return None


# Three number patterns, because three questions are asked of a string:
#   DECIMAL         a bare decimal, no exponent or grouping ("-2.5"): the values every grader reads alike
#                   (`plain_decimal`), and the level a source writes ("Level 3": data.sources.parse_difficulty);
#   _NUMBER_LITERAL a gold answer the sets store as a number: a float literal ("1e3", "5.", ".5") or one
#                   grouped in thousands ("1,000.5"; the grouping is dropped) — `number_literal`;
#   _NUMBER_IN_TEXT a number somewhere in a free-form reply ("14 cm", "3/4", "1,2"), read loosely as
#                   VLMEvalKit's benchmarks do — `single_number`.
DECIMAL = re.compile(r"[-+]?\d+(?:\.\d+)?")
_NUMBER_LITERAL = re.compile(r"[-+]?(?:\d{1,3}(?:,\d{3})+(?:\.\d+)?|(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?)")
_NUMBER_IN_TEXT = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


def plain_decimal(answer: str) -> bool:
    """Whether `answer` normalises to a bare decimal number ("6", "-2.5", "1,000"): no exponent, fraction,
    unit or LaTeX, nothing another grader could read as a different value."""
    return DECIMAL.fullmatch(normalize(answer).replace(",", "")) is not None


# The letter a *normalised* (lower-case) choice answer names: "(b)", "b.", "b) red", "b red". Golds as the
# sets read them are matched before normalisation by _LETTER_ANSWER below, which is stricter ("A frog"
# is a text answer there, not option A).
_NORMALISED_LETTER = re.compile(r"\(?([a-z])\)?(?:[.)]?\s.*|[.)])?")


def _choice_letter(s: str) -> str:
    """'(b)', 'b.', 'b) red' -> 'b'; anything else unchanged."""
    m = _NORMALISED_LETTER.fullmatch(s)
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
            return numbers_equal(pn, gn)
    return p == g


def numbers_equal(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    """Equal within `tol`, relative to `b` (the gold) once it exceeds 1; None equals nothing."""
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))


_LATEX_HINT = re.compile(r"[\\^_{}/]|\d")


def matches(pred: str | None, gold: str, answer_type: str, *, math_verify: bool = True, timeout_s: int = 2) -> bool:
    """The matcher the reward, the filter and the in-domain evaluation share: `is_correct`, then (for a
    gold that looks like LaTeX or holds a digit) math-verify's equivalence, on the main thread only (its
    time limits are SIGALRM-based: elsewhere a pathological answer could hang the caller)."""
    if pred is None:
        return False
    if is_correct(pred, gold, answer_type):
        return True
    if answer_type == "number" and plain_decimal(pred) and plain_decimal(gold):
        # is_correct compared the two values; math-verify would compare the same ones (and costs ~0.2 s a
        # GRPO step of 1,024 completions, most of them wrong numbers)
        return False
    if math_verify and answer_type != "choice" and _LATEX_HINT.search(gold):
        try:
            return _math_verify(pred, gold, timeout_s)
        except Exception as e:  # noqa: BLE001 - a grader crash is a wrong answer, logged, never a dead caller
            log.debug("math-verify failed on %r vs %r: %s", pred, gold, e)
    return False


def _math_verify(pred: str, gold: str, timeout_s: int) -> bool:
    if threading.current_thread() is not threading.main_thread():
        return False  # its timeouts are SIGALRM-based: without them a pathological answer could hang us
    return math_verify_equal(pred, gold, timeout_s)


@lru_cache(maxsize=1 << 16)
def math_verify_equal(pred: str, gold: str, timeout_s: int) -> bool:
    """math-verify's verdict (main thread only). Memoised: a group's G samples often repeat an answer,
    and parsing is ~0.5 ms a call."""
    from math_verify import parse, verify

    g = parse(f"${gold}$", parsing_timeout=timeout_s)
    p = parse(f"${pred}$", parsing_timeout=timeout_s)
    return bool(g and p and verify(g, p, timeout_seconds=timeout_s))


def final_answer(response: str) -> tuple[str | None, int]:
    """(the last boxed answer after the reasoning, how many distinct boxed answers are there).

    A box that is no answer (nested, over-long: `boxed_answers`) is None and counts as one more
    distinct answer, so it can neither be the answer nor agree with one."""
    tail = response.rsplit("</think>", 1)[1] if "</think>" in response else response
    answers = boxed_answers(tail)
    distinct = {normalize(a) if a is not None else None for a in set(answers)}
    return (answers[-1] if answers else None), len(distinct)


def committed_answer(response: str | None) -> str | None:
    """The answer a response commits to, as the reward, the filter and the in-domain evaluation read it:
    the last top-level \\boxed{} after the reasoning; None when there is none, or when the boxes there
    disagree (a response that hedges between two answers commits to neither)."""
    if response is None:
        return None
    answer, n_distinct = final_answer(response)
    return answer if n_distinct <= 1 else None


def extract_answer(text: str | None) -> str | None:
    """The answer a filter model's reply commits to: `committed_answer` when it boxes one, else a bare
    short reply.

    A reply with no box is accepted only when it is short (a word or number, as filter models
    answer a short question); a longer unboxed reply is unparseable, i.e. None.
    """
    if text is None:
        return None
    answer, n_distinct = final_answer(text)
    if n_distinct:  # it boxes: the boxes decide (None when they disagree or are no answer), as committed_answer
        return answer if n_distinct == 1 else None
    bare = text.strip()
    if bare and "<think>" not in bare and len(bare.split()) <= 3:
        return bare
    return None


# ------------------------------------------------------------------------------ gradeability

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


# ------------------------------------------------------------------------------ golds as the sets write them

# Options written into a training source's question: a trailing block of lines "A: x" / "A) x" / "A. x" /
# "(A) x" (GeoQA, ArxivQA, ORZ; full-width ：and ． too), or one trailing line "(A) x (B) y". The
# benchmarks' questions are read by `parse_options` with _OPTION_MARK instead: there the list follows an
# "Options:" header and may run inline ("A: x, B: y"), which in a source's stem would catch "point A: ...".
_OPTION_LINE = re.compile(r"^\s*\(?([A-H])\s*(?:\)|\.|:|：|．)\s*(.*?)\s*$")
_INLINE_OPTION = re.compile(r"\(([A-H])\)\s*")
# A gold answer naming an option: "C", "(C)", "C) text", "C. text", "C:". `is_letter` asks the narrower
# question whether the answer is the letter and nothing else (_BARE_LETTER).
_LETTER_ANSWER = re.compile(r"^\s*(?:\(([A-H])\)|([A-H])(?:[\.\):]\s*.*)?)\s*$", re.DOTALL)
_BARE_LETTER = re.compile(r"\(?[A-H]\)?")


def strip_wrappers(text: str) -> str:
    """Drop wrappers that are not part of the answer: `$...$`, a whole `\\boxed{...}`, outer space."""
    s = text.strip()
    for _ in range(3):
        before = s
        if len(s) >= 2 and s.startswith("$") and s.endswith("$"):
            s = s.strip("$").strip()
        if s.startswith(BOXED) and s.endswith("}") and balanced(s[len(BOXED):-1]):
            s = s[len(BOXED):-1].strip()
        if s == before:
            break
    return s


def balanced(s: str) -> bool:
    """Whether every `}` in `s` closes a `{` and every `{` is closed."""
    depth = 0
    for ch in s:
        depth += {"{": 1, "}": -1}.get(ch, 0)
        if depth < 0:
            return False
    return depth == 0


def number_literal(s: str) -> str | None:
    """`s` as the sets store a number gold ("1,000" -> "1000", "2.5", "1e3"), or None when it is no plain
    number literal (LaTeX, an expression, words: text answers, left to the matcher)."""
    return s.replace(",", "") if _NUMBER_LITERAL.fullmatch(s) else None


def parse_choices(question: str) -> list[str] | None:
    """Option texts written into a question, or None.

    Recognises a trailing block of lines `A: x` / `A) x` / `A. x` / `(A) x` (GeoQA, ArxivQA, ORZ),
    and a single trailing line `(A) x (B) y ...`. Letters must run A, B, C, ... without gaps.
    """
    lines = question.rstrip().splitlines()
    options: list[tuple[str, str]] = []
    for line in reversed(lines):
        m = _OPTION_LINE.match(line)
        if not m:
            break
        options.append((m.group(1), m.group(2)))
    options.reverse()
    if len(options) >= 2 and "".join(letter for letter, _ in options) == LETTERS[: len(options)]:
        return [text for _, text in options]
    if lines:
        parts = _INLINE_OPTION.split(lines[-1])
        # parts: [before, 'A', textA, 'B', textB, ...]
        letters = parts[1::2]
        if len(letters) >= 2 and "".join(letters) == LETTERS[: len(letters)]:
            return [t.strip() for t in parts[2::2]]
    return None


def choice_answer(answer: str, choices: Sequence[str]) -> str | None:
    """The option letter `answer` names (`C`, `(C)`, `C) text`, or exactly one option's text)."""
    m = _LETTER_ANSWER.match(answer)
    if m:
        letter = m.group(1) or m.group(2)
        return letter if LETTERS.index(letter) < len(choices) else None
    norm = _option_text(answer)
    hits = [i for i, c in enumerate(choices) if _option_text(c) == norm]
    return LETTERS[hits[0]] if len(hits) == 1 else None


def is_letter(answer: str) -> bool:
    """Whether `answer` is an option letter A-H and nothing else ("C", "(C)")."""
    return bool(_BARE_LETTER.fullmatch(answer.strip()))


def _option_text(s: str) -> str:
    return _SPACES.sub(" ", strip_wrappers(s)).strip().rstrip(".").casefold()


# ------------------------------------------------------------------------------ reading a free-form reply
# The benchmark adapters try the response's last \boxed{} first (`extract_boxed`, the format trained
# models are taught), then these fallbacks. They follow the rule-based paths of VLMEvalKit
# (`vlmeval/utils/matching_util.py` `can_infer_option` / `can_infer_text`, `vlmeval/dataset/utils/yorn.py`
# `YOrN_Extraction`) so that an answer the official toolkit reads without its LLM judge reads the same here.
# (evaluation/vlmevalkit.py re-implements those rules verbatim, A-D "answer is" included, to compare with.)

# "Answer: B", "The final answer is 12", "**Answer:** (C)": the last such line wins, because models
# restate the question's wording before they commit. The quantifiers after "is"/":" are possessive: with
# plain ones "Answer:" and 2,000 newlines backtracks cubically (30 s); these never give back a character.
_ANSWER_LINE = re.compile(r"(?:final\s+answer|answer)\s*+(?:is|:)\s*+\**+\s*+:?+\s*+([^\n]+)", re.IGNORECASE)
# VLMEvalKit's last resort for a choice: "the correct answer is **B**".
_VERBOSE_LETTER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**\(?([A-H])\)?\**")
# An option marker in a benchmark question: "A.", "A:", "(A)", "A)" at the start of a line or after a
# separator (see _OPTION_LINE for the training sources' stricter layout).
_OPTION_MARK = re.compile(r"(?:^|(?<=[\s,;]))\(?([A-H])(?:\)|[.:])\s*", re.MULTILINE)
_OPTIONS_HEADER = re.compile(r"(?i)\b(?:choices|options)\b\s*:?")
_TRAILING_DOTS = re.compile(r"[.\s]+$")
_CHOICE_PUNCTUATION = ".()[],:;!*#{}$\\"  # replaced by spaces before looking for a lone option letter


def final_part(response: str) -> str:
    """The text after the last </think>: reasoning mentions every option, the answer follows it."""
    tail = response.rsplit("</think>", 1)
    return tail[-1] if len(tail) == 2 else response


def answer_line(response: str) -> str | None:
    """What follows the last "Answer:" / "answer is", trimmed of markdown and end punctuation."""
    hits = _ANSWER_LINE.findall(final_part(response))
    if not hits:
        return None
    ans = hits[-1].strip().strip("*").strip()
    ans = _TRAILING_DOTS.sub("", ans)
    return ans or None


def boxed_or_answer_line(response: str) -> str | None:
    """The shared first two steps: last \\boxed{}, else the last "Answer: X" line."""
    boxed = extract_boxed(response)
    return boxed if boxed is not None else answer_line(response)


def short_reply(response: str, max_words: int = 3) -> str | None:
    """A bare reply of a few words (a model told to answer directly), else None."""
    bare = final_part(response).strip()
    if not bare or "<think>" in bare or len(bare.split()) > max_words:
        return None
    return _TRAILING_DOTS.sub("", bare) or None


def infer_choice(text: str, choices: Mapping[str, str]) -> str | None:
    """The option letter `text` commits to, or None.

    As VLMEvalKit's can_infer: exactly one option letter standing alone among the last few words,
    else "answer is X", else exactly one option text contained in a short reply.
    """
    if not text or not choices:
        return None
    mod = text
    for c in _CHOICE_PUNCTUATION:
        mod = mod.replace(c, " ")
    words = mod.split()
    found = [ch for ch in choices if ch in words]
    if len(found) == 1 and words.index(found[0]) > len(words) - 5:
        return found[0]
    m = _VERBOSE_LETTER.search(text)
    if m and m.group(1).upper() in choices:
        return m.group(1).upper()
    total = sum(len(str(v)) for v in choices.values())
    if len(text) <= 2 * total:
        low = text.lower()
        hits = [k for k, v in choices.items() if str(v).strip() and str(v).strip().lower() in low]
        if len(hits) == 1:
            return hits[0]
    return None


def parse_options(text: str) -> dict[str, str]:
    """Options written inside a question ("A. x\\nB. y", "Options: A: x, B: y", "(A) x (B) y").

    Parsing starts at the last "Choices"/"Options" header when there is one, and accepts markers
    only in order A, B, C, ... so a stray "point A:" in the stem does not start the list.
    """
    head = list(_OPTIONS_HEADER.finditer(text))
    body = text[head[-1].end():] if head else text
    marks, expected = [], 0
    for m in _OPTION_MARK.finditer(body):
        if m.group(1) == LETTERS[expected]:
            marks.append(m)
            expected += 1
    if len(marks) < 2:
        return {}
    out = {}
    for i, m in enumerate(marks):
        end = marks[i + 1].start() if i + 1 < len(marks) else len(body)
        chunk = body[m.end():end]
        if i + 1 == len(marks):
            chunk = chunk.split("\n", 1)[0]
        out[m.group(1)] = chunk.strip().rstrip(",;").strip()
    return out


def yes_no(text: str | None) -> str | None:
    """"yes" / "no" when exactly one of the two words occurs (VLMEvalKit's YOrN rule), else None."""
    if not text:
        return None
    s = text.lower()
    for c in string.punctuation:
        s = s.replace(c, " ")
    words = s.split()
    if "yes" in words and "no" not in words:
        return "yes"
    if "no" in words and "yes" not in words:
        return "no"
    return None


def parse_number(s: str | None) -> float | None:
    """A plain finite number, "1,234", "3/4" or "50%"; None for anything else."""
    if s is None:
        return None
    t = s.strip().replace(",", "").rstrip("%").strip().lstrip("$")
    try:
        if "/" in t:
            num, den = t.split("/", 1)
            value = float(num) / float(den)
        else:
            value = float(t)
    except (ValueError, ZeroDivisionError):
        return None
    return value if math.isfinite(value) else None  # 400 nines is inf, and int(inf) raises


def single_number(s: str | None) -> float | None:
    """The value of `s` if it is a number, or of the one number inside it ("14 cm", "$1.45")."""
    value = parse_number(s)
    if value is not None or s is None:
        return value
    found = _NUMBER_IN_TEXT.findall(s)
    return parse_number(found[0]) if len(found) == 1 else None
