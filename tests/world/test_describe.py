"""Descriptions state only facts of the scene, and every object in it."""

import random
import re

import pytest

from capcurriculum.world import WorldConfig, describe_scene, position_name, sample_scene
from capcurriculum.world.scene import PALETTE, SHAPES

NUMBERS = {
    w: i
    for i, w in enumerate(("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"))
}
COLORS = "|".join(PALETTE)
SHAPE_RE = "|".join(SHAPES)
PLURALS = {"circles": "circle", "squares": "square", "triangles": "triangle", "crosses": "cross"}
POSITION = r"\b(top left|top right|bottom left|bottom right|top|bottom|left|right|center)\b"
OBJECT = rf"\b(small|large) ({COLORS}) ({SHAPE_RE})\b"
RELATION = (
    rf"^The ({COLORS}) ({SHAPE_RE}) (?:is|lies) (to the left of|to the right of|above|below) "
    rf"the ({COLORS}) ({SHAPE_RE})\.$"
)


def _sentences(text):
    return [s if s.endswith(".") else s + "." for s in text[:-1].split(". ")]


def _check(scene, text):
    """Assert every sentence of `text` is true of `scene` and that it names every object."""
    objects = {(o.size, o.color, o.shape, position_name(o.row, o.col, scene.grid)) for o in scene.objects}
    mentioned = set()
    totals = 0
    for sentence in _sentences(text):
        if m := re.match(RELATION, sentence):
            ca, sa, rel, cb, sb = m.groups()
            a = [o for o in scene.objects if (o.color, o.shape) == (ca, sa)]
            b = [o for o in scene.objects if (o.color, o.shape) == (cb, sb)]
            assert len(a) == 1 and len(b) == 1, sentence  # only unambiguous names
            a, b = a[0], b[0]
            truth = {
                "to the left of": a.col < b.col,
                "to the right of": a.col > b.col,
                "above": a.row < b.row,
                "below": a.row > b.row,
            }[rel]
            assert truth, (sentence, scene.objects)
        elif re.search(r"\b(total|Altogether)\b", sentence):
            words = [w for w in re.findall(r"\w+", sentence.lower()) if w in NUMBERS]
            assert len(words) == 1 and NUMBERS[words[0]] == len(scene.objects), sentence
            totals += 1
        elif found := re.findall(OBJECT, sentence):
            positions = re.findall(POSITION, sentence)
            assert len(found) == 1 and len(positions) == 1, sentence
            fact = (*found[0], positions[0])
            assert fact in objects, (sentence, objects)
            mentioned.add(fact)
        elif m := re.match(rf"^(\w+) of the shapes are ({COLORS}|{'|'.join(PLURALS)})\.$", sentence):
            n, group = NUMBERS[m[1].lower()], m[2]
            attr = "color" if group in PALETTE else "shape"
            assert n >= 2 and n == scene.count(attr, PLURALS.get(group, group)), sentence
        elif m := re.match(rf"^There are (\w+) (?:({COLORS}) shapes|({'|'.join(PLURALS)}))\.$", sentence):
            n, color, shapes = NUMBERS[m[1]], m[2], m[3]
            actual = scene.count("color", color) if color else scene.count("shape", PLURALS[shapes])
            assert n >= 2 and n == actual, sentence
        else:  # framing sentences carry no checkable fact, so they may name none
            assert not re.search(rf"\b({COLORS}|{SHAPE_RE}|small|large)\b|{POSITION}", sentence), sentence
            grid = {2: "two-by-two", 3: "three-by-three"}[scene.grid]  # the one number they may state
            words = re.findall(r"\w+", sentence.lower().replace(f"{grid} grid", "grid"))
            assert not any(w in NUMBERS for w in words), sentence
    assert totals == 1, text
    assert mentioned == objects, text


@pytest.mark.parametrize("grid", [3, 2])
def test_descriptions_are_true_and_complete(grid):
    cfg = WorldConfig(grid=grid, image_size=32 * grid, min_objects=1, max_objects=grid * grid)
    rng = random.Random(11)
    texts = set()
    for i in range(300):
        scene = sample_scene(cfg, f"s{i}", rng)
        text = describe_scene(scene, rng)
        _check(scene, text)
        texts.add(text)
    assert len(texts) == 300


def test_descriptions_mention_groups_and_relations_and_vary():
    cfg = WorldConfig()
    rng = random.Random(5)
    texts = [describe_scene(sample_scene(cfg, f"s{i}", rng), rng) for i in range(300)]
    assert sum(bool(re.search(r"of the shapes are|There are (?!\w+ shapes in total)", t)) for t in texts) > 50
    assert sum(bool(re.search(r"(to the left of|to the right of|above|below) the", t)) for t in texts) > 150
    openings = {t.split(". ")[0] for t in texts}
    assert len(openings) >= 3
    assert sum(len(t.split()) for t in texts) / len(texts) > 60  # DOCCI-like: a paragraph, not a line


def test_same_scene_and_seed_give_the_same_description():
    cfg = WorldConfig()
    scene = sample_scene(cfg, "s", random.Random(1))
    assert describe_scene(scene, random.Random(2)) == describe_scene(scene, random.Random(2))


def test_checker_rejects_a_false_description():
    """The checker above must be able to fail: swap a colour and it has to object."""
    cfg = WorldConfig()
    scene = sample_scene(cfg, "s", random.Random(4))
    text = describe_scene(scene, random.Random(4))
    obj = scene.objects[0]
    wrong = next(c for c in PALETTE if c != obj.color)
    broken = text.replace(f"{obj.size} {obj.color} {obj.shape}", f"{obj.size} {wrong} {obj.shape}", 1)
    with pytest.raises(AssertionError):
        _check(scene, broken)
