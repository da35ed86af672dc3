"""Rule-based answer extraction shared by the benchmark adapters.

Each adapter tries the response's last \\boxed{} first (`capcurriculum.answers.extract_boxed`, the
format trained models are taught), then these fallbacks. They follow the rule-based paths of
VLMEvalKit (`vlmeval/utils/matching_util.py` `can_infer_option` / `can_infer_text`,
`vlmeval/dataset/utils/yorn.py` `YOrN_Extraction`) so that an answer the official toolkit reads
without its LLM judge reads the same here.
"""

from __future__ import annotations

import math
import re
import string
from collections.abc import Mapping

from capcurriculum.answers import extract_boxed

LETTERS = string.ascii_uppercase

# "Answer: B", "The final answer is 12", "**Answer:** (C)": the last such line wins, because models
# restate the question's wording before they commit. The quantifiers after "is"/":" are possessive: with
# plain ones "Answer:" and 2,000 newlines backtracks cubically (30 s); these never give back a character.
_ANSWER_LINE = re.compile(r"(?:final\s+answer|answer)\s*+(?:is|:)\s*+\**+\s*+:?+\s*+([^\n]+)", re.IGNORECASE)
# VLMEvalKit's last resort for a choice: "the correct answer is **B**".
_VERBOSE_LETTER = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**\(?([A-H])\)?\**")
# An option marker: "A.", "A:", "(A)", "A)" at the start of a line or after a separator.
_OPTION_MARK = re.compile(r"(?:^|(?<=[\s,;]))\(?([A-H])(?:\)|[.:])\s*", re.MULTILINE)
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


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
    ans = re.sub(r"[.\s]+$", "", ans)
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
    return re.sub(r"[.\s]+$", "", bare) or None


def infer_choice(text: str, choices: Mapping[str, str]) -> str | None:
    """The option letter `text` commits to, or None.

    As VLMEvalKit's can_infer: exactly one option letter standing alone among the last few words,
    else "answer is X", else exactly one option text contained in a short reply.
    """
    if not text or not choices:
        return None
    mod = text
    for c in ".()[],:;!*#{}$\\":
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
    head = list(re.finditer(r"(?i)\b(?:choices|options)\b\s*:?", text))
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
    found = _NUMBER.findall(s)
    return parse_number(found[0]) if len(found) == 1 else None


def numbers_equal(a: float | None, b: float | None, tol: float = 1e-6) -> bool:
    return a is not None and b is not None and abs(a - b) <= tol * max(1.0, abs(b))
