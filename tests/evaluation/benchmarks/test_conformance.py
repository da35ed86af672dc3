"""Conformance with VLMEvalKit's rules (issue 36, Build item 4; a start: rule-only, no judge).

Each expected value is written from reading open-compass/VLMEvalKit at e8e78f0 (no code copied, nothing
run): the file and lines that decide it are cited per group. The responses are what models write:
bare letters, bold, boxed, "The answer is", option text, articles that look like letters, hedges,
refusals, numbers with trailing zeros, exponents, lists. Rule-only is VLMEvalKit's `exact_matching`
(multiple choice, yes/no) and its prefetch (MathVista, MathVision); what falls through would go to the
judge there. lmms-eval is not compared here yet.
"""

from __future__ import annotations

import pytest

from capcurriculum.evaluation.benchmarks import get_adapter
from capcurriculum.evaluation.benchmarks.extraction import yes_no
from capcurriculum.evaluation.vlmevalkit import can_infer, grade_all

ANIMALS = {"A": "cat", "B": "dog", "C": "bird", "D": "fish"}  # option texts sum to 14 characters

# vlmeval/utils/matching_util.py: can_infer_option 18-61 (punctuation .()[],:;!*#{} to spaces, one letter
# among the last five words, refusals and a lone Z -> Z, "answer is X" for A-D), can_infer_text 107-121
# (a reply at most twice the options' length naming exactly one option text), can_infer 124-127.
CHOICE = [
    ("B", "B"), ("(B)", "B"), ("B. dog", "B"), ("The answer is B.", "B"), ("**B**", "B"),
    ("\\boxed{B}", "B"),  # braces are punctuation there; the backslash stays on "\boxed"
    ("$\\boxed{B}$", "B"),
    ("$B$", None),  # "$" is not among the stripped characters: "$B$" is no letter (the lenient rule reads B)
    ("dog", "B"),  # option text
    ("It is a dog.", "B"),  # a short reply holding one option's text
    ("A dog.", "A"),  # the article reads as the letter A: VLMEvalKit's quirk, kept
    ("B or C", None),  # two letters
    ("Cannot determine the answer", "Z"),  # a refusal phrase (24-30)
    ("Z", "Z"),
    ("I think the answer is C, not B.", "C"),  # two letters, then "answer is C" (57-59)
    ("The correct answer is **D**", "D"),
    ("Option E", None),  # no such option
    ("C is my choice after looking at the picture carefully", None),  # the letter is not among the last five words
    ("A bird and a dog", None),  # "A" too early; two option texts
    ("", None),
    ("Sorry, I can't help with images of people yet.", "Z"),
]


@pytest.mark.parametrize(("response", "expected"), CHOICE)
def test_multiple_choice_rule(response, expected):
    assert can_infer(response, ANIMALS) == expected


# vlmeval/dataset/utils/yorn.py YOrN_Extraction 254-261: lower-cased words; yes without no, no without yes.
YES_NO = [("Yes", "yes"), ("No.", "no"), ("Yes, there is.", "yes"), ("There is no cat.", "no"),
          ("Yes and no.", None), ("I cannot tell", None), ("Yes, although there is no clear view.", None),
          ("YES!", "yes"), ("no", "no"), ("Nope", None)]


@pytest.mark.parametrize(("response", "expected"), YES_NO)
def test_yes_no_rule(response, expected):
    assert yes_no(response) == expected


# vlmeval/dataset/utils/mathvista.py post_check 77-104 (prefetch): int() / float() of the whole
# prediction, equal to int() / float() of the answer; list and text answers never (str(None) compared).
# Fixture rows: "2" integer 14, "3" float 1.45 (precision 2), "4" list [2007, 2008].
MATHVISTA = [("2", "14", True), ("2", " 14\n", True), ("2", "+14", True), ("2", "14.0", False),
             ("2", "14 cm", False), ("2", "15", False), ("3", "1.45", True), ("3", "1.450", True),
             ("3", "1.45e0", True), ("3", "1.449", False), ("3", "$1.45", False),
             ("4", "[2007, 2008]", False), ("4", "[2007,2008]", False)]

# vlmeval/dataset/utils/mathv.py is_equal 27-51 (lower-cased string, eval() values, latex2sympy values)
# and post_check 116-140 (free form: the whole prediction). Fixture row "2": gold 12.
MATHVISION = [("2", "12", True), ("2", " 12 ", True), ("2", "12.0", True), ("2", "24/2", True),
              ("2", "twelve", False), ("2", "The answer is 12", False), ("2", "\\frac{24}{2}", True)]


@pytest.fixture
def graded(load_rows):
    def grade(bench, rid, response):
        adapter = get_adapter(bench)
        item = {it.id: it for it in adapter.rows_to_items(load_rows(bench), source="f").items}[rid]
        (rec,) = grade_all(adapter, [item], [response], judge=None, split=True)
        return rec
    return grade


@pytest.mark.parametrize(("rid", "response", "right"), MATHVISTA)
def test_mathvista_free_form_rule(graded, rid, response, right):
    rec = graded("mathvista", rid, response)
    assert rec["correct"] is right
    assert rec["extraction"] == ("rule" if right else "fell_through")  # a wrong bare value is the judge's too


@pytest.mark.parametrize(("rid", "response", "right"), MATHVISION)
def test_mathvision_free_form_rule(graded, rid, response, right):
    rec = graded("mathvision", rid, response)
    assert rec["correct"] is right and rec["extraction"] == ("rule" if right else "fell_through")
