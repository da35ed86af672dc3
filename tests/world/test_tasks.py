"""Task answers, recomputed independently from the ground truth."""

import operator
import random
import re
from collections import Counter

import pytest

from capcurriculum.data.schema import Example
from capcurriculum.world import WorldConfig, perception_questions, sample_scene, text_math, vis_math
from capcurriculum.world.scene import PALETTE, SHAPES

COLORS = "|".join(PALETTE)
SHAPE_RE = "|".join(SHAPES)
PLURALS = {"circles": "circle", "squares": "square", "triangles": "triangle", "crosses": "cross"}
POSITIONS = {
    "top left": (0, 0), "top": (0, 1), "top right": (0, 2),
    "left": (1, 0), "center": (1, 1), "right": (1, 2),
    "bottom left": (2, 0), "bottom": (2, 1), "bottom right": (2, 2),
}  # fmt: skip
OPS = {"+": operator.add, "-": operator.sub, "×": operator.mul}


@pytest.fixture(scope="module")
def cfg():
    return WorldConfig(perception_per_scene=6)


@pytest.fixture(scope="module")
def scenes(cfg):
    rng = random.Random(21)
    return {s.id: s for s in (sample_scene(cfg, f"world_train_{i:06d}", rng) for i in range(400))}


def _at(scene, where):
    name = re.sub(r"^(in|at|on) the ", "", where)
    row, col = POSITIONS[name]
    return next(o for o in scene.objects if (o.row, o.col) == (row, col))


def _named(scene, color, shape):
    found = [o for o in scene.objects if (o.color, o.shape) == (color, shape)]
    assert len(found) == 1, f"'the {color} {shape}' is ambiguous or absent"
    return found[0]


def _count(scene, noun):
    """Recount a group named like the questions do: shapes / red shapes / large shapes / circles."""
    words = noun.split()
    if noun in PLURALS or noun in PLURALS.values():
        return sum(o.shape == PLURALS.get(noun, noun) for o in scene.objects)
    if len(words) == 1:
        return len(scene.objects)
    attr = "color" if words[0] in PALETTE else "size"
    return sum(getattr(o, attr) == words[0] for o in scene.objects)


def _expected(scene, q):
    """The answer to a perception question, computed from the ground truth without the generator."""
    if m := re.fullmatch(r"What color is the shape (.+)\?", q):
        return _at(scene, m[1]).color
    if m := re.fullmatch(rf"What color is the ({SHAPE_RE})\?", q):
        (obj,) = [o for o in scene.objects if o.shape == m[1]]
        return obj.color
    if m := re.fullmatch(rf"What shape is the ({COLORS}) object\?", q):
        (obj,) = [o for o in scene.objects if o.color == m[1]]
        return obj.shape
    if m := re.fullmatch(r"What shape is (.+)\?", q):
        return _at(scene, m[1]).shape
    if m := re.fullmatch(rf"Is the ({COLORS}) ({SHAPE_RE}) (?:large or small|small or large)\?", q):
        return _named(scene, m[1], m[2]).size
    if m := re.fullmatch(r"Is the shape (.+) (?:large or small|small or large)\?", q):
        return _at(scene, m[1]).size
    if m := re.fullmatch(r"How many (.+) are there\?", q):
        return str(_count(scene, m[1]))
    if m := re.fullmatch(rf"Is there a ({COLORS}) ({SHAPE_RE})\?", q):
        return "yes" if any((o.color, o.shape) == (m[1], m[2]) for o in scene.objects) else "no"
    m = re.fullmatch(
        rf"Is the ({COLORS}) ({SHAPE_RE}) (to the left of|to the right of|above|below) the ({COLORS}) ({SHAPE_RE})\?",
        q,
    )
    assert m, f"unrecognised question {q!r}"
    a, b = _named(scene, m[1], m[2]), _named(scene, m[4], m[5])
    holds = {
        "to the left of": a.col < b.col,
        "to the right of": a.col > b.col,
        "above": a.row < b.row,
        "below": a.row > b.row,
    }[m[3]]
    return "yes" if holds else "no"


def test_perception_answers_match_ground_truth(cfg, scenes):
    examples = perception_questions(list(scenes.values()), cfg, random.Random(1))
    assert len(examples) >= 0.95 * 6 * len(scenes)
    assert len({e.id for e in examples}) == len(examples)
    for e in examples:
        assert isinstance(e, Example)
        scene = scenes[e.meta["scene_id"]]
        assert e.answer == _expected(scene, e.question), (e.question, scene.objects)
        assert (e.capability, e.source, e.image) == ("perc", "world", scene.image_file)
        assert e.answer_type == ("number" if e.meta["qtype"] == "count" else "text")
        assert isinstance(e.difficulty, int) and e.difficulty >= 1
        assert e.answer == e.answer.lower()
    qtypes = Counter(e.meta["qtype"] for e in examples)
    assert set(qtypes) == {"color", "shape", "size", "count", "presence", "spatial"}
    assert min(qtypes.values()) > 0.12 * len(examples)


def test_questions_within_a_scene_are_distinct(cfg, scenes):
    examples = perception_questions(list(scenes.values()), cfg, random.Random(2))
    by_scene = Counter((e.meta["scene_id"], e.question) for e in examples)
    assert max(by_scene.values()) == 1


@pytest.mark.parametrize("qtype", ["presence", "spatial"])
def test_yes_no_answers_are_balanced(cfg, scenes, qtype):
    examples = perception_questions(list(scenes.values()), cfg, random.Random(3))
    answers = Counter(e.answer for e in examples if e.meta["qtype"] == qtype)
    assert set(answers) == {"yes", "no"}
    assert abs(answers["yes"] - answers["no"]) <= 0.05 * sum(answers.values())


def _check_steps(steps, answer):
    """Each 'a op b = c' step is right, and the last result is the answer."""
    value = None
    for step in steps.split(", "):
        a, op, b, eq, c = step.split()
        assert eq == "=" and OPS[op](int(a), int(b)) == int(c), step
        assert 0 <= int(c) < 100, step
        value = int(c)
    assert value == int(answer)
    return len(steps.split(", "))


def test_text_math_answers_and_traces_are_right():
    examples = text_math(600, random.Random(4), "text_math_test")
    assert [e.id for e in examples[:2]] == ["text_math_test_000000", "text_math_test_000001"]
    assert {e.difficulty for e in examples} == {1, 2, 3}
    words = 0
    for e in examples:
        assert (e.capability, e.answer_type, e.image) == ("text", "number", None)
        assert 0 <= int(e.answer) < 100
        assert _check_steps(e.meta["trace"], e.answer) == e.difficulty
        # the trace computes with the question's numbers: its operands, less the intermediate results
        steps = [step.split() for step in e.meta["trace"].split(", ")]
        operands = Counter(v for a, _, b, _, _ in steps for v in (a, b))
        operands.subtract(c for *_, c in steps[:-1])
        assert +operands == Counter(re.findall(r"\d+", e.question)), e
        if m := re.fullmatch(r"(?:What is|Compute|Calculate|Evaluate) ([\d ()+×-]+)[?.]", e.question):
            assert eval(m[1].replace("×", "*")) == int(e.answer), e.question  # Python's precedence
        else:  # a word problem: its verbs name exactly the operations the trace performs
            cues = {
                "-": ("gives", "loses"),
                "+": ("more", "finds", "already had", "and buys"),
                "×": ("each", "packs of"),
            }
            named = {
                op for op, words_for_op in cues.items() if any(w in e.question.lower() for w in words_for_op)
            }
            assert named == {step.split()[1] for step in e.meta["trace"].split(", ")}, e
            words += 1
    assert 0.3 < words / len(examples) < 0.7


def _vis_expected(scene, q):
    """The answer to a visual-math question, from the question text and an independent recount."""
    if m := re.fullmatch(r"How many more (.+) than (.+) are there\?", q):
        return _count(scene, m[1]) - _count(scene, m[2])
    ask, task = re.fullmatch(r"How many (.+) are there\? (.+)\.", q).groups()
    x = [_count(scene, noun) for noun in re.split(r", | and how many | and ", ask)]
    k = int(m[0]) if (m := re.search(r"\d+", task)) else None
    if task.startswith("Add") and "product" in task:
        return x[0] * x[1] + k
    if task.startswith("Add"):
        return x[0] + k
    if task.startswith("Multiply that"):
        return x[0] * k
    if task.startswith("Multiply their sum"):
        return (x[0] + x[1]) * k
    if task.startswith("Subtract"):
        return k - x[0]
    if task == "Give their product":
        return x[0] * x[1]
    assert task in ("Give their sum", "Give their total"), q
    return sum(x)


def test_vis_math_answers_follow_what_is_seen(cfg, scenes):
    examples = vis_math(list(scenes.values()), cfg, random.Random(5))
    assert {e.difficulty for e in examples} == {1, 2, 3}
    for e in examples:
        scene = scenes[e.id]
        assert (e.capability, e.answer_type, e.image) == ("vis", "number", scene.image_file)
        seen, steps = e.meta["trace"].split("; ")
        counts = {}
        for part in seen.split(", "):
            n, noun = part.split(" ", 1)
            assert int(n) == _count(scene, noun), (part, scene.objects)
            counts[noun] = int(n)
        # meta counts use the plural noun of the question; the trace agrees with them and the truth
        assert {k: _count(scene, k) for k in e.meta["counts"]} == e.meta["counts"]
        assert sorted(counts.values()) == sorted(e.meta["counts"].values())
        for noun in e.meta["counts"]:
            assert noun in e.question
        assert _check_steps(steps, e.answer) == (2 if e.difficulty == 3 else 1)
        assert int(e.answer) == _vis_expected(scene, e.question), (e.question, scene.objects)
