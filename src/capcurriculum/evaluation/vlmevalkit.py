"""VLMEvalKit's extraction protocol (`evaluation.protocol: vlmevalkit`), the one the paper's table used.

Read from open-compass/VLMEvalKit (snapshot e8e78f0, 2026-08) for facts only; no code is copied:

- **think-split** (`vlmeval/inference.py`, the SPLIT_THINK environment variable): only when it is set,
  the prediction becomes what follows the last `</think>`; otherwise the whole response is read.
  Here it is `evaluation.split_think`.
- **rule first** ("prefetch"): multiple choice by `can_infer` (`vlmeval/utils/matching_util.py`: one
  option letter standing alone among the last five words, the refusal phrases and a lone "Z" read as
  Z, "answer is X" for A-D, else exactly one option text inside a short answer); WeMath without a
  judge by its own rule (`wemath.py` load_and_process_data: the first character after the last
  "Answer", or of the whole prediction when it has none); yes/no by `YOrN_Extraction`
  (`vlmeval/dataset/utils/yorn.py`, words split after `vlmeval/smp/misc.py` process_punctuation); MathVista free form by `int()`/`float()` of the
  whole prediction, accepted only when it equals the answer (`vlmeval/dataset/utils/mathvista.py`
  post_check); MathVision free form by `is_equal` of the whole prediction and the answer
  (`vlmeval/dataset/utils/mathv.py`).
- **LLM extraction where the rule fails**, for multiple choice and free form alike: the judge gets the
  question, the options and the prediction and answers a letter (`multiple_choice.py`
  extract_answer_from_item / build_prompt, WeMath's own prompt), Yes/No/Unknown (`yorn.py`
  YOrN_match_prompt), or the extracted value (`mathvista.py` / `mathv.py` build_*_gpt4_prompt with
  five in-context examples). The prompts here are the project's own wording of those tasks
  (`evaluation/prompts/extract_*.txt`); their sha256 is recorded with every result.
- **the benchmark's own comparison**: letters equal (multiple choice; MathVista compares with the
  gold option letter); MathVista free form `int(x) == int(gold)` / `float(x) == float(gold)`, no
  rounding, and list or text answers never equal (post_check leaves the prediction as `str(None)`);
  MathVision `is_equal`: the same string lower-cased, the same value, or the same latex2sympy value
  where latex2sympy's reading prints as plain arithmetic (it is eval()ed: "sqrt(2)" has no value).

Where this differs from VLMEvalKit, on purpose:
- a judge that cannot be reached (after `judge.max_retries`) stops the evaluation with
  `JudgeUnavailable`, naming the endpoint and the first error: no item is scored wrong because the
  judge was down, and the replies that did come are in the judge's cache, so a rerun asks only for
  the rest. VLMEvalKit retries and then draws a random option (multiple choice) or scores it wrong.
- a reply that names no option leaves the item **unextracted** (`extraction`: "llm_unparsed"),
  wrong, counted and listed in the summary, as VLMEvalKit scores a failed extraction.
- without a judge every item is graded by the rule alone, and what fell through is counted and
  listed ("fell_through"); VLMEvalKit does the same for multiple choice and yes/no but refuses to
  score MathVista and MathVision without a working judge.
- the judge is asked once at temperature 0 (VLMEvalKit retries up to 5 times at rising temperature).
- MathVerse and LogicVista keep their adapters' grading (rule plus equivalence judge), which already
  follows VLMEvalKit's judge-for-everything scoring of those two.
- RealWorldQA rows whose gold is not an option letter (VLMEvalKit's own TSV makes every row multiple
  choice) are free form: MathVision's comparison, the value extraction prompt.
"""

from __future__ import annotations

import ast
import hashlib
import logging
import math
import operator
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from typing import Any

from .benchmarks.base import Adapter, BenchItem
from .benchmarks.wemath import wemath_letter
from .judge import clip_response, load_judge_prompt

log = logging.getLogger(__name__)

PROTOCOL = "vlmevalkit"
PROMPTS = {"choice": "extract_choice", "yesno": "extract_yesno", "value": "extract_value"}
# benchmarks graded by their adapters under this protocol too (see the module docstring)
ADAPTER_GRADED = ("mathverse", "logicvista")
YES_NO = ("pope", "hallusionbench")
LISTED = 200  # ids of fallen-through / unextracted items kept in a summary (the records hold them all)


def prompt_hashes() -> dict[str, str]:
    """{prompt file name: sha256 of its text}: the extraction prompts, recorded with every result."""
    return {name: hashlib.sha256(load_judge_prompt(name).encode("utf-8")).hexdigest()
            for name in sorted(PROMPTS.values())}


def split_think(response: str, enabled: bool) -> str:
    """What VLMEvalKit scores: with SPLIT_THINK set, the text after the last </think> (stripped);
    otherwise the response as it is."""
    if enabled and "</think>" in response:
        return response.rsplit("</think>", 1)[1].strip()
    return response


# --- rules ----------------------------------------------------------------------------------------

_OPTION_PUNCT = ".()[],:;!*#{}"  # replaced by spaces before counting letters (matching_util.py)
# Replies VLMEvalKit reads as the "none of the options" letter Z (matching_util.py can_infer_option).
_REFUSALS = ("Sorry, I can't help with images of people yet.", "I can't process this file.",
             "I'm sorry, but without the image provided", "Cannot determine the answer")
_ANSWER_IS = re.compile(r"(?i)(?:correct\s+)?answer\s+is\s+\**([ABCD])\**")  # only A-D there


def infer_option(answer: str, choices: Mapping[str, str]) -> str | None:
    """The option letter (or Z) `answer` names by VLMEvalKit's letter rule, else None."""
    if "Failed to obtain answer via API" in answer:
        return None
    if any(r in answer for r in _REFUSALS):
        return "Z"
    mod = answer
    for c in _OPTION_PUNCT:
        mod = mod.replace(c, " ")
    words = mod.split()
    named = [c for c in choices if c in words]
    if len(named) == 1:
        if words.index(named[0]) > len(words) - 5:
            return named[0]
    elif not named and "Z" in words:
        return "Z"
    m = _ANSWER_IS.search(answer)
    return m.group(1).upper() if m and m.group(1).upper() in choices else None


def infer_text(answer: str, choices: Mapping[str, str]) -> str | None:
    """The one option whose text the (short) answer contains, else None."""
    low = answer.lower()
    if len(low) > 2 * sum(len(str(v)) for v in choices.values()):
        return None
    hits = [k for k, v in choices.items() if str(v).lower() in low]
    return hits[0] if len(hits) == 1 else None


def can_infer(answer: str, choices: Mapping[str, str]) -> str | None:
    """VLMEvalKit's multiple-choice rule: the letter rule, then the option-text rule."""
    answer = str(answer)
    return infer_option(answer, choices) or infer_text(answer, choices)


# VLMEvalKit's process_punctuation (vlmeval/smp/misc.py): these characters go, each removed outright when
# it touches a space somewhere in the text (or the text holds a digit,digit), else replaced by a space;
# a period not beside a digit is removed. Others (* ' : $ % # & ...) stay part of the word.
_YORN_PUNCT = (";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<", "@", "`", ",",
               "?", "!")
_DIGIT_COMMA = re.compile(r"(\d)(,)(\d)")
_LONE_PERIOD = re.compile(r"(?<!\d)\.(?!\d)")


def yes_no_words(text: str) -> list[str]:
    """The lower-cased words VLMEvalKit's YOrN_Extraction looks at."""
    low = text.lower()
    out = low
    glued = _DIGIT_COMMA.search(low) is not None
    for p in _YORN_PUNCT:
        out = out.replace(p, "" if glued or p + " " in low or " " + p in low else " ")
    return _LONE_PERIOD.sub("", out).split()


def yorn_extraction(text: str | None) -> str | None:
    """VLMEvalKit's YOrN_Extraction (yorn.py): "yes" / "no" when exactly one of the two is a word after
    its punctuation handling ("**Yes**" and "Yes:" are no such word), else None (its "Unknown")."""
    if not text:
        return None
    words = yes_no_words(text)
    if "yes" in words and "no" not in words:
        return "yes"
    if "no" in words and "yes" not in words:
        return "no"
    return None


def wemath_answer(text: str) -> str | None:
    """WeMath's own rule without a judge (wemath.py load_and_process_data): what follows the last
    "Answer" (the whole prediction when it has none), without > < : . and outer spaces; its first
    character if one of A-H."""
    return wemath_letter(text.split("Answer")[-1])


def exact_value(text: str | None, kind: str) -> int | float | None:
    """Python's int() or float() of the whole text, as MathVista's post_check: "14.0" is no integer,
    "1,000" and "14 cm" are no number."""
    if text is None:
        return None
    try:
        return int(text) if kind == "integer" else float(text)
    except (ValueError, OverflowError):
        return None


_ARITH = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
          ast.Pow: operator.pow, ast.Mod: operator.mod, ast.USub: operator.neg, ast.UAdd: operator.pos}


def arithmetic(text: str) -> float | None:
    """The value of a plain arithmetic expression ("3/4", "2**3", "-1.5"), or None. MathVision's
    is_equal evaluates both sides with eval(); only numbers and + - * / ** % are evaluated here."""
    if len(text) > 64:
        return None
    try:
        tree = ast.parse(text.strip(), mode="eval").body
    except (SyntaxError, ValueError):
        return None

    def ev(node: ast.AST) -> float:
        if isinstance(node, ast.Constant) and isinstance(node.value, int | float) and not isinstance(node.value, bool):
            return node.value
        if isinstance(node, ast.BinOp) and type(node.op) in _ARITH:
            left, right = ev(node.left), ev(node.right)
            if isinstance(node.op, ast.Pow) and abs(right) > 64:
                raise ValueError("exponent too large")
            return _ARITH[type(node.op)](left, right)
        if isinstance(node, ast.UnaryOp) and type(node.op) in _ARITH:
            return _ARITH[type(node.op)](ev(node.operand))
        raise ValueError("not arithmetic")

    try:
        value = float(ev(tree))
    except (ValueError, ZeroDivisionError, OverflowError, TypeError):
        return None
    return value if math.isfinite(value) else None


def _latex_value(text: str) -> float | None:
    """The value of latex2sympy's reading of `text` when that reading prints as plain arithmetic
    ("12", "3/4", "-1/2"): is_equal eval()s str() of it, and a name there (sqrt, pi, a symbol) is an
    error, so "\\sqrt{2}" has no value to compare."""
    if len(text) > 128:
        return None
    try:
        from latex2sympy2_extended import latex2sympy

        printed = str(latex2sympy(text))
    except Exception:  # noqa: BLE001 - anything latex2sympy cannot read is no value
        return None
    return arithmetic(printed)


def math_equal(pred: str | None, gold: str) -> bool:
    """MathVision's is_equal: equal lower-cased strings, else equal values (|a - b| < 1e-6) read as
    arithmetic, else as LaTeX (latex2sympy, printed as plain arithmetic)."""
    if pred is None:
        return False
    p, g = str(pred).lower().strip(), str(gold).lower().strip()
    if p == g:
        return True
    for read in (arithmetic, _latex_value):
        a, b = read(g), read(p)
        if a is not None and b is not None and abs(a - b) < 1e-6:
            return True
    return False


# --- one item -------------------------------------------------------------------------------------


def kind_of(adapter: Adapter, item: BenchItem) -> str:
    """How this protocol reads the item: choice, yesno, mathvista (value), value (MathVision's
    comparison), or adapter (graded by the adapter)."""
    name = adapter.spec.name
    if name in ADAPTER_GRADED:
        return "adapter"
    if name in YES_NO:
        return "yesno"
    if item.answer_type == "choice":
        return "choice"
    return "mathvista" if name == "mathvista" else "value"


def rule(adapter: Adapter, item: BenchItem, text: str, *, judged: bool) -> str | None:
    """The prefetch: the answer the rule reads out of `text`, or None when it falls through."""
    kind = kind_of(adapter, item)
    if kind == "choice":
        if adapter.spec.name == "wemath" and not judged:
            return wemath_answer(text)  # WeMath without a judge: its own "Answer" rule (wemath.py)
        return can_infer(text, item.choices)
    if kind == "yesno":
        return yorn_extraction(text)
    if kind == "mathvista":
        atype = item.meta.get("mv_answer_type")
        value = exact_value(text, atype) if atype in ("integer", "float") else None
        # post_check(prefetch=True) accepts a bare value only when it already equals the answer
        return text.strip() if value is not None and value == exact_value(item.gold, atype) else None
    return text.strip() if math_equal(text, item.gold) else None


def correct(adapter: Adapter, item: BenchItem, extracted: str | None) -> bool:
    """The benchmark's own comparison of an extracted answer with the gold."""
    if extracted is None:
        return False
    kind = kind_of(adapter, item)
    if kind in ("choice", "yesno"):
        return extracted == item.gold
    if kind == "mathvista":
        atype = item.meta.get("mv_answer_type")
        if atype not in ("integer", "float"):
            return False  # list and text answers: post_check compares str(None) with the answer
        value, gold = exact_value(extracted, atype), exact_value(item.gold, atype)
        return value is not None and value == gold
    return math_equal(extracted, item.gold)


def extraction_prompt(adapter: Adapter, item: BenchItem, text: str) -> tuple[str, str]:
    """(prompt file name, filled prompt) for the LLM extraction of `text`."""
    kind = kind_of(adapter, item)
    response = clip_response(text)
    if kind == "choice":
        options = " ".join(f"{k}. {v}" for k, v in item.choices.items())
        name = PROMPTS["choice"]
        return name, load_judge_prompt(name).format(question=item.question, options=options, response=response)
    name = PROMPTS["yesno" if kind == "yesno" else "value"]
    return name, load_judge_prompt(name).format(question=item.question, response=response)


def read_reply(adapter: Adapter, item: BenchItem, reply: str) -> str | None:
    """What the judge's extraction reply says, read as VLMEvalKit reads it, or None."""
    kind = kind_of(adapter, item)
    if kind == "choice":
        return can_infer(reply, item.choices)
    if kind == "yesno":
        return yorn_extraction(reply)
    return reply.strip() or None


# --- a benchmark's responses ----------------------------------------------------------------------


def grade_all(adapter: Adapter, items: Sequence[BenchItem], responses: Sequence[str], *,
              judge=None, split: bool) -> list[dict[str, Any]]:
    """One record per (item, response), as `Adapter.grade` writes them, plus `extraction` (rule, llm,
    fell_through, llm_unparsed, adapter) and the judge's `llm_reply`. The judge is asked, in one
    batch, only for the items whose rule failed; `JudgeUnavailable` if any of those could not be had."""
    records: list[dict[str, Any] | None] = [None] * len(items)
    asks: list[tuple[int, str]] = []  # (index, prompt) for the LLM
    texts = [split_think(r, split) for r in responses]
    for i, (item, response, text) in enumerate(zip(items, responses, texts, strict=True)):
        if kind_of(adapter, item) == "adapter":
            rec = adapter.grade(item, response, judge=judge)
            records[i] = {**rec, "extraction": "adapter"}
            continue
        extracted = rule(adapter, item, text, judged=judge is not None)
        if extracted is not None:
            records[i] = _record(adapter, item, response, extracted, "rule", "not_needed")
        elif judge is None:
            records[i] = _record(adapter, item, response, None, "fell_through", "unavailable")
        else:
            asks.append((i, extraction_prompt(adapter, item, text)[1]))
    if asks:
        verdicts = judge.ask_many([p for _, p in asks], "extraction")
        failed = [(items[i].id, v.error) for (i, _), v in zip(asks, verdicts, strict=True) if not v.ok]
        if failed:
            raise JudgeUnavailable(judge, adapter.spec.name, failed, len(asks))
        for (i, _), verdict in zip(asks, verdicts, strict=True):
            extracted = read_reply(adapter, items[i], verdict.text)
            if extracted is None:
                judge.count_unparseable()
            rec = _record(adapter, items[i], responses[i], extracted,
                          "llm" if extracted is not None else "llm_unparsed", "used")
            rec["llm_reply"] = verdict.text
            records[i] = rec
    return records  # type: ignore[return-value]


class JudgeUnavailable(RuntimeError):
    """The judge could not extract answers the rule left unread: the evaluation stops rather than
    score those items wrong for a reason that is not the model's."""

    def __init__(self, judge, benchmark: str, failed: Sequence[tuple[str, str | None]], asked: int):
        c = judge.config
        super().__init__(
            f"evaluation.judge: {len(failed)} of {asked} {benchmark} extraction requests to {c.base_url} "
            f"(model {c.model}) failed after {c.max_retries} retries; first, item {failed[0][0]}: {failed[0][1]}. "
            f"No item was scored; the replies that came are cached in {c.cache}, so a rerun asks only for the "
            f"rest. Check the endpoint (judge.base_url), or set evaluation.judge.enabled=false to read by the "
            f"rule alone.")


def _record(adapter: Adapter, item: BenchItem, response: str, extracted: str | None, how: str,
            judged: str) -> dict[str, Any]:
    return {"benchmark": adapter.spec.title, "id": item.id, "gold": item.gold, "extracted": extracted,
            "correct": correct(adapter, item, extracted), "no_answer": extracted is None, "judge": judged,
            "extraction": how, "response": response,
            "meta": {k: v for k, v in item.meta.items() if k != "rows_from"}}


def extraction_summary(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """How each graded record's answer was had, and which items the rule left unread."""
    counts = Counter(str(r["extraction"]) for r in records if r.get("extraction"))
    unread = [str(r["id"]) for r in records if r.get("extraction") in ("fell_through", "llm_unparsed")]
    return {"counts": dict(sorted(counts.items())), "unextracted": len(unread), "unextracted_ids": unread[:LISTED]}


def judge_record(judge) -> dict[str, Any] | None:
    """The judge a result was extracted with: its configured model, the versions the endpoint
    reported, its URL, and what it was asked (`Judge.stats`); None without a judge."""
    if judge is None:
        return None
    return {"model": judge.model, "served": judge.served_models, "base_url": judge.config.base_url,
            "stats": judge.stats}


def protocol_record(protocol: str, *, split: bool, judge=None) -> dict[str, Any]:
    """What is written with every result about how its answers were read."""
    if protocol != PROTOCOL:
        return {"name": protocol}
    return {"name": protocol, "split_think": bool(split), "judge": judge_record(judge),
            "prompt_sha256": prompt_hashes()}
