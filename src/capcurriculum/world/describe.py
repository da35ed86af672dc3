"""DOCCI-style descriptions: a long paragraph naming every object, the counts and a few relations.

The perception pipeline generates QA from these captions exactly as it does from DOCCI's, so a
description may only state facts that hold in the scene: every object's size, colour, shape and
position, the total, the colour and shape groups of two or more, and relations between objects that
"the <colour> <shape>" names unambiguously. Wording varies with the seed; facts never do.
"""

from __future__ import annotations

import random

from .scene import NOTHING, Scene, WorldConfig, WorldObject, plural, position_name

NUMBER_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
GRID_WORDS = {2: "two-by-two", 3: "three-by-three"}

# Openings and closings name no colour, shape, position or number: they only set the scene.
_OPENINGS = (
    (
        "This is a simple digital illustration of flat geometric shapes on a plain, light background, "
        "laid out on an invisible {grid} grid."
    ),
    (
        "A computer-drawn picture shows flat, solid-colored geometric shapes against a plain, pale "
        "background, each placed in its own cell of an invisible {grid} grid."
    ),
    (
        "The image is a clean, minimal graphic of geometric shapes with flat fills and no outlines, "
        "arranged on an invisible {grid} grid over a light, even background."
    ),
)
_CLOSINGS = (
    "Nothing else appears in the picture, and the shapes cast no shadows.",
    "The shapes have crisp edges and no shading, texture or text.",
    "There is no text, texture or shading anywhere in the image.",
)
_OBJECT_TEMPLATES = (
    "{where}, there is {what}.",
    "{what} sits {where}.",
    "{where} is {what}.",
    "{what} appears {where}.",
)
_RELATION_TEMPLATES = ("The {a} is {rel} the {b}.", "The {a} lies {rel} the {b}.")
RELATIONS_PER_DESCRIPTION = 2


def describe_scene(scene: Scene, rng: random.Random) -> str:
    sentences = [rng.choice(_OPENINGS).format(grid=GRID_WORDS[scene.grid])]
    objects = [_object_sentence(o, scene.grid, rng) for o in scene.objects]
    total = _total_sentence(len(scene.objects), rng)
    sentences += [total, *objects] if rng.random() < 0.5 else [*objects, total]
    sentences += _group_sentences(scene, rng)
    sentences += _relation_sentences(scene, rng)
    sentences.append(rng.choice(_CLOSINGS))
    return " ".join(sentences)


def _capitalise(sentence: str) -> str:
    return sentence[0].upper() + sentence[1:]


def _where(name: str, rng: random.Random) -> str:
    """A varied preposition phrase that always contains the position's canonical name."""
    if name == "center":
        options = ("in the center", "at the center", "in the very center")
    elif name in ("top", "bottom"):
        options = (f"at the {name}", f"along the {name} edge")
    elif name in ("left", "right"):
        options = (f"on the {name}", f"on the {name} side")
    else:
        options = (f"in the {name} corner", f"in the {name}")
    return rng.choice(options)


def _object_sentence(obj: WorldObject, grid: int, rng: random.Random) -> str:
    where = _where(position_name(obj.row, obj.col, grid), rng)
    what = f"a {obj.size} {obj.color} {obj.shape}"
    return _capitalise(rng.choice(_OBJECT_TEMPLATES).format(where=where, what=what))


def _total_sentence(n: int, rng: random.Random) -> str:
    word, shapes, be = NUMBER_WORDS[n], ("shape" if n == 1 else "shapes"), ("is" if n == 1 else "are")
    return rng.choice(
        (
            f"There {be} {word} {shapes} in total.",
            f"Altogether, the picture contains {word} {shapes}.",
            f"In total, {word} {shapes} {be} visible.",
        )
    )


def _group_sentences(scene: Scene, rng: random.Random) -> list[str]:
    """One sentence per colour and per shape that two or more objects share."""
    sentences = []
    for attr in ("color", "shape"):
        values = sorted({getattr(o, attr) for o in scene.objects})
        for value in values:
            n = scene.count(attr, value)
            if n < 2:
                continue
            word = NUMBER_WORDS[n]
            label = value if attr == "color" else plural(value)
            group = f"{value} shapes" if attr == "color" else plural(value)
            sentences.append(
                rng.choice((f"{_capitalise(word)} of the shapes are {label}.", f"There are {word} {group}."))
            )
    return sentences


def relation(a: WorldObject, b: WorldObject, axis: str) -> str:
    """The true relation of a to b along 'col' ('to the left of' / 'to the right of') or 'row'."""
    if axis == "col":
        return "to the left of" if a.col < b.col else "to the right of"
    return "above" if a.row < b.row else "below"


def _relation_sentences(scene: Scene, rng: random.Random) -> list[str]:
    named = scene.identifiable()
    pairs = [(a, b) for i, a in enumerate(named) for b in named[i + 1 :]]
    sentences = []
    for a, b in rng.sample(pairs, min(RELATIONS_PER_DESCRIPTION, len(pairs))):
        if rng.random() < 0.5:
            a, b = b, a
        axis = rng.choice([ax for ax in ("col", "row") if getattr(a, ax) != getattr(b, ax)])
        sentences.append(
            rng.choice(_RELATION_TEMPLATES).format(
                a=f"{a.color} {a.shape}", rel=relation(a, b, axis), b=f"{b.color} {b.shape}"
            )
        )
    return sentences


def list_scene(scene: Scene, cfg: WorldConfig, rng: random.Random) -> str:
    """World v2's caption: every cell in reading order with what is in it, or that nothing is, then the
    count of every colour, shape and size (the absent ones named as such).

    Reading it answers every question of both worlds by copying a phrase: identify's "small red circle" or
    "nothing" after the cell's name in the question's words, lower case ("In the top left cell: small red
    circle."), a group's count as a number word. Issue 37's first gate asks the filters to read captions almost
    perfectly, so that "caption right, image wrong" marks what a filter cannot see rather than where two guesses
    disagreed (docs/miniature.md, "Reading the caption").
    """
    sentences = [rng.choice(_OPENINGS).format(grid=GRID_WORDS[scene.grid])]
    sentences.append(_total_sentence(len(scene.objects), rng))
    for row in range(scene.grid):
        for col in range(scene.grid):
            obj = scene.at(row, col)
            what = NOTHING if obj is None else f"{obj.size} {obj.color} {obj.shape}"
            sentences.append(f"In the {position_name(row, col, scene.grid)} cell: {what}.")
    for attr, values in (("color", cfg.colors), ("shape", cfg.shapes), ("size", cfg.sizes)):
        sentences += _count_sentences(scene, attr, values)
    sentences.append(rng.choice(_CLOSINGS))
    return " ".join(sentences)


def _group_noun(attr: str, value: str, n: int) -> str:
    if attr == "shape":
        return value if n == 1 else plural(value)
    return f"{value} {'shape' if n == 1 else 'shapes'}"


def _count_sentences(scene: Scene, attr: str, values: tuple[str, ...]) -> list[str]:
    """One sentence per value present ("There are two red shapes."), one naming the absent values."""
    sentences, absent = [], []
    for value in values:
        n = scene.count(attr, value)
        if n == 0:
            absent.append(_group_noun(attr, value, 2) if attr == "shape" else value)
        else:
            be = "is" if n == 1 else "are"
            sentences.append(f"There {be} {NUMBER_WORDS[n]} {_group_noun(attr, value, n)}.")
    if absent:
        names = absent[0] if len(absent) == 1 else f"{', '.join(absent[:-1])} or {absent[-1]}"
        sentences.append(f"There are no {names}." if attr == "shape" else f"There are no {names} shapes.")
    return sentences
