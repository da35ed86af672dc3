"""The world's three capability sets, as `Example`s with short answers.

- perception: questions answered from the ground truth (what the differential filter approximates
  from captions on DOCCI), one per question type in turn, yes/no answers balanced exactly;
- text math (D_text-like): integer expressions and word problems, difficulty = number of operations;
- visual math (D_vis-like): counting composed with arithmetic; the trace states what is seen before
  the computation, because it becomes the `<think>` content in pre-training and error attribution
  compares its counts with `meta["counts"]`.

Every intermediate and final number is a non-negative integer below 100.
"""

from __future__ import annotations

import operator
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..data.schema import Example
from .describe import relation
from .scene import Scene, WorldConfig, plural, position_name, position_phrase

SOURCE = "world"
MAX_VALUE = 99
# Both worlds' question types (world v2's: identify, group_count; perception_v2.py)
QTYPE_DIFFICULTY = {"color": 1, "shape": 1, "presence": 1, "count": 2, "size": 2, "spatial": 3,
                    "identify": 1, "group_count": 2}
NUMBER_QTYPES = ("count", "group_count")  # answered with a number, graded by value
YES_NO = ("presence", "spatial")
PRESENT_BIAS = 0.75  # how often a counted group is one the scene contains (else any, often zero)


# ---------------------------------------------------------------- arithmetic shared by both math sets


@dataclass(frozen=True)
class Op:
    """A binary operation; leaves are ints. Rendering adds only the parentheses precedence needs."""

    symbol: str
    left: Op | int
    right: Op | int


_APPLY: dict[str, Callable[[int, int], int]] = {"+": operator.add, "-": operator.sub, "×": operator.mul}
_PRECEDENCE = {"+": 1, "-": 1, "×": 2}


def render_expression(node: Op | int) -> str:
    if isinstance(node, int):
        return str(node)
    left, right = render_expression(node.left), render_expression(node.right)
    if isinstance(node.left, Op) and _PRECEDENCE[node.left.symbol] < _PRECEDENCE[node.symbol]:
        left = f"({left})"
    if isinstance(node.right, Op) and (
        _PRECEDENCE[node.right.symbol] < _PRECEDENCE[node.symbol]
        or (_PRECEDENCE[node.right.symbol] == _PRECEDENCE[node.symbol] and node.symbol == "-")
    ):
        right = f"({right})"
    return f"{left} {node.symbol} {right}"


def evaluate(node: Op | int, steps: list[str]) -> int:
    """The value of `node`; appends one 'a op b = c' step per operation, innermost first."""
    if isinstance(node, int):
        return node
    a, b = evaluate(node.left, steps), evaluate(node.right, steps)
    value = _APPLY[node.symbol](a, b)
    steps.append(f"{a} {node.symbol} {b} = {value}")
    return value


def _in_range(steps: list[str]) -> bool:
    return all(0 <= int(step.rsplit("= ", 1)[1]) <= MAX_VALUE for step in steps)


# ---------------------------------------------------------------- perception


@dataclass(frozen=True)
class Target:
    """A countable group: all shapes (attr None), or those of one colour, shape or size."""

    attr: str | None = None
    value: str | None = None

    def noun(self, n: int = 2) -> str:
        if self.attr == "shape":
            return plural(self.value) if n != 1 else self.value
        return (f"{self.value} " if self.attr else "") + ("shape" if n == 1 else "shapes")

    def seen(self, scene: Scene) -> str:
        n = scene.count(self.attr, self.value)
        return f"{n} {self.noun(n)}"


def pick_target(scene: Scene, cfg: WorldConfig, rng: random.Random) -> Target:
    """A group to count, usually one present in the scene so that zero is not the typical answer."""
    if rng.random() < PRESENT_BIAS:
        values = {
            attr: sorted({getattr(o, attr) for o in scene.objects}) for attr in ("color", "shape", "size")
        }
    else:
        values = {"color": list(cfg.colors), "shape": list(cfg.shapes), "size": list(cfg.sizes)}
    pool = [Target()] + [Target(attr, v) for attr, vs in values.items() for v in vs]
    return rng.choice(pool)


# Askers: (scene, cfg, rng, want_yes) -> (question, answer, trace), or None when the scene cannot support
# the question (yes/no askers honour want_yes; the others ignore it).
def _ask_color(scene, cfg, rng, want_yes):
    by_shape = [o for o in scene.objects if scene.count("shape", o.shape) == 1]
    if by_shape and rng.random() < 0.3:
        obj = rng.choice(by_shape)
        return f"What color is the {obj.shape}?", obj.color, _seen(obj, scene)
    obj = rng.choice(scene.objects)
    return f"What color is the shape {_where(obj, scene)}?", obj.color, _seen(obj, scene)


def _ask_shape(scene, cfg, rng, want_yes):
    by_color = [o for o in scene.objects if scene.count("color", o.color) == 1]
    if by_color and rng.random() < 0.3:
        obj = rng.choice(by_color)
        return f"What shape is the {obj.color} object?", obj.shape, _seen(obj, scene)
    obj = rng.choice(scene.objects)
    return f"What shape is {_where(obj, scene)}?", obj.shape, _seen(obj, scene)


def _ask_size(scene, cfg, rng, want_yes):
    options = rng.choice(("large or small", "small or large"))
    named = scene.identifiable()
    if named and rng.random() < 0.5:
        obj = rng.choice(named)
        return f"Is the {obj.color} {obj.shape} {options}?", obj.size, _seen(obj, scene)
    obj = rng.choice(scene.objects)
    return f"Is the shape {_where(obj, scene)} {options}?", obj.size, _seen(obj, scene)


def _ask_count(scene, cfg, rng, want_yes):
    target = pick_target(scene, cfg, rng)
    return f"How many {target.noun()} are there?", str(scene.count(target.attr, target.value)), target.seen(scene)


def _ask_presence(scene, cfg, rng, want_yes):
    kinds = sorted({(o.color, o.shape) for o in scene.objects})
    if not want_yes:
        kinds = [(c, s) for c in cfg.colors for s in cfg.shapes if not scene.count_kind(c, s)]
        if not kinds:
            return None
    color, shape = rng.choice(kinds)
    matches = [o for o in scene.objects if (o.color, o.shape) == (color, shape)]
    trace = "; ".join(_seen(o, scene) for o in matches) if matches else f"no {color} {shape}"
    return f"Is there a {color} {shape}?", "yes" if want_yes else "no", trace


def _ask_spatial(scene, cfg, rng, want_yes):
    named = scene.identifiable()
    pairs = [(a, b) for a in named for b in named if a != b]
    if not pairs:
        return None
    a, b = rng.choice(pairs)
    axis = rng.choice([ax for ax in ("col", "row") if getattr(a, ax) != getattr(b, ax)])
    rel = relation(a, b, axis) if want_yes else relation(b, a, axis)
    question = f"Is the {a.color} {a.shape} {rel} the {b.color} {b.shape}?"
    return question, "yes" if want_yes else "no", f"{_seen(a, scene)}; {_seen(b, scene)}"


def _where(obj, scene: Scene) -> str:
    return position_phrase(position_name(obj.row, obj.col, scene.grid))


def _seen(obj, scene: Scene) -> str:
    """What looking at one object yields, e.g. "top left: large red circle" (the <think> trace)."""
    return f"{position_name(obj.row, obj.col, scene.grid)}: {obj.size} {obj.color} {obj.shape}"


_ASKERS = {
    "color": _ask_color,
    "shape": _ask_shape,
    "size": _ask_size,
    "count": _ask_count,
    "presence": _ask_presence,
    "spatial": _ask_spatial,
}


def perception_questions(scenes: Sequence[Scene], cfg: WorldConfig, rng: random.Random) -> list[Example]:
    """The perception questions of `cfg.version`'s world: the six types below (1), or identify and group
    counts (2, `perception_v2`). qa_generate asks the built world's version through this one entry."""
    if cfg.version == 2:  # imported here: perception_v2 builds on this module's Target and perception_example
        from .perception_v2 import perception_questions_v2

        return perception_questions_v2(scenes, cfg, rng)
    return six_type_questions(scenes, cfg, rng)


def six_type_questions(scenes: Sequence[Scene], cfg: WorldConfig, rng: random.Random) -> list[Example]:
    """Up to `cfg.perception_per_scene` distinct questions per scene, cycling through the types.

    Yes/no types alternate their answer across the whole set, so "yes" is never a free win.
    """
    examples = []
    want_yes = dict.fromkeys(YES_NO, True)
    for scene in scenes:
        qtypes = list(_ASKERS)
        rng.shuffle(qtypes)
        asked: set[str] = set()
        for attempt in range(4 * cfg.perception_per_scene):
            if len(asked) == cfg.perception_per_scene:
                break
            qtype = qtypes[attempt % len(qtypes)]
            qa = _ASKERS[qtype](scene, cfg, rng, want_yes.get(qtype, True))
            if qa is None or qa[0] in asked:
                continue
            question, answer, trace = qa
            asked.add(question)
            if qtype in want_yes:
                want_yes[qtype] = not want_yes[qtype]
            examples.append(perception_example(scene, len(asked) - 1, qtype, question, answer, trace))
    return examples


def perception_example(scene: Scene, index: int, qtype: str, question: str, answer: str, trace: str) -> Example:
    """The `index`-th perception question about `scene`, as both worlds write one."""
    return Example(
        id=f"{scene.id}_q{index}",
        question=question,
        answer=answer,
        answer_type="number" if qtype in NUMBER_QTYPES else "text",
        source=SOURCE,
        image=scene.image_file,
        difficulty=QTYPE_DIFFICULTY[qtype],
        capability="perc",
        meta={"qtype": qtype, "scene_id": scene.id, "trace": trace},
    )


# ---------------------------------------------------------------- text math


def _random_tree(ops: int, rng: random.Random, under_times: bool = False) -> Op | int:
    if ops == 0:
        return rng.randint(2, 9) if under_times else rng.randint(1, 20)
    symbol = rng.choice(tuple(_APPLY))
    left = rng.randint(0, ops - 1)
    times = symbol == "×"
    return Op(symbol, _random_tree(left, rng, times), _random_tree(ops - 1 - left, rng, times))


_NAMES = ("Tom", "Anna", "Lena", "Omar", "Mia", "Ravi", "Sara", "Ben")
_ITEMS = ("apples", "marbles", "stickers", "pencils", "cards", "coins", "shells", "books")
# (template, builder): the builder's operations, innermost first, are the steps of the trace.
_WORD_PROBLEMS: dict[int, tuple[tuple[str, Callable[..., Op]], ...]] = {
    1: (
        (
            "{name} has {a} {item} and gets {b} more. How many {item} does {name} have now?",
            lambda a, b: Op("+", a, b),
        ),
        ("{name} has {a} {item} and gives away {b}. How many {item} are left?", lambda a, b: Op("-", a, b)),
        (
            "There are {a} boxes with {b} {item} in each box. How many {item} are there in all?",
            lambda a, b: Op("×", a, b),
        ),
    ),
    2: (
        (
            "{name} has {a} bags with {b} {item} each and gives away {c}. How many {item} are left?",
            lambda a, b, c: Op("-", Op("×", a, b), c),
        ),
        (
            (
                "{name} has {a} {item}, buys {b} more and then gives {c} to a friend. "
                "How many {item} does {name} have now?"
            ),
            lambda a, b, c: Op("-", Op("+", a, b), c),
        ),
        (
            "{name} buys {a} packs of {b} {item} and already had {c}. How many {item} does {name} have?",
            lambda a, b, c: Op("+", Op("×", a, b), c),
        ),
    ),
    3: (
        (
            (
                "{name} buys {a} packs of {b} {item}, finds {c} more and gives away {d}. "
                "How many {item} does {name} have now?"
            ),
            lambda a, b, c, d: Op("-", Op("+", Op("×", a, b), c), d),
        ),
        (
            (
                "{name} has {a} {item} and buys {b} bags with {c} {item} each, then loses {d}. "
                "How many {item} are left?"
            ),
            lambda a, b, c, d: Op("-", Op("+", a, Op("×", b, c)), d),
        ),
        (
            (
                "Each of {a} children has {b} {item} and gets {c} more. Then the group gives away {d}. "
                "How many {item} does the group have now?"
            ),
            lambda a, b, c, d: Op("-", Op("×", a, Op("+", b, c)), d),
        ),
    ),
}
_EXPRESSION_TEMPLATES = ("What is {e}?", "Compute {e}.", "Calculate {e}.", "Evaluate {e}.")


def _text_problem(difficulty: int, rng: random.Random) -> tuple[str, Op]:
    if rng.random() < 0.5:
        tree = _random_tree(difficulty, rng)
        return rng.choice(_EXPRESSION_TEMPLATES).format(e=render_expression(tree)), tree
    template, build = rng.choice(_WORD_PROBLEMS[difficulty])
    values = [rng.randint(2, 12) for _ in range(difficulty + 1)]
    text = template.format(name=rng.choice(_NAMES), item=rng.choice(_ITEMS), **dict(zip("abcd", values)))
    return text, build(*values)


def text_math(n: int, rng: random.Random, id_prefix: str) -> list[Example]:
    examples = []
    for i in range(n):
        difficulty = rng.randint(1, 3)
        while True:  # resample until every step stays in 0..MAX_VALUE
            question, tree = _text_problem(difficulty, rng)
            steps: list[str] = []
            answer = evaluate(tree, steps)
            if _in_range(steps):
                break
        examples.append(
            Example(
                id=f"{id_prefix}_{i:06d}",
                question=question,
                answer=str(answer),
                answer_type="number",
                source=SOURCE,
                difficulty=difficulty,
                capability="text",
                meta={"trace": ", ".join(steps)},
            )
        )
    return examples


# ---------------------------------------------------------------- visual math


def _ask(nouns: list[str]) -> str:
    if len(nouns) == 1:
        return f"How many {nouns[0]} are there?"
    if len(nouns) == 2:
        return f"How many {nouns[0]} and how many {nouns[1]} are there?"
    return f"How many {nouns[0]}, {nouns[1]} and {nouns[2]} are there?"


# Forms map (group nouns, their counts, rng) to (question, computation tree).
def _add(nouns, x, rng):
    k = rng.randint(1, 9)
    return f"{_ask(nouns)} Add {k} to that number.", Op("+", x[0], k)


def _multiply(nouns, x, rng):
    k = rng.randint(2, 5)
    return f"{_ask(nouns)} Multiply that number by {k}.", Op("×", x[0], k)


def _subtract_from(nouns, x, rng):
    k = x[0] + rng.randint(0, 9)
    return f"{_ask(nouns)} Subtract that number from {k}.", Op("-", k, x[0])


def _sum(nouns, x, rng):
    return f"{_ask(nouns)} Give their sum.", Op("+", x[0], x[1])


def _product(nouns, x, rng):
    return f"{_ask(nouns)} Give their product.", Op("×", x[0], x[1])


def _more_than(nouns, x, rng):  # vis_math orders the groups so that x[0] >= x[1]
    return f"How many more {nouns[0]} than {nouns[1]} are there?", Op("-", x[0], x[1])


def _sum_times(nouns, x, rng):
    k = rng.randint(2, 4)
    return f"{_ask(nouns)} Multiply their sum by {k}.", Op("×", Op("+", x[0], x[1]), k)


def _product_plus(nouns, x, rng):
    k = rng.randint(1, 9)
    return f"{_ask(nouns)} Add {k} to their product.", Op("+", Op("×", x[0], x[1]), k)


def _total(nouns, x, rng):
    return f"{_ask(nouns)} Give their total.", Op("+", Op("+", x[0], x[1]), x[2])


# difficulty -> (number of groups counted, form)
_VIS_FORMS: dict[int, tuple[tuple[int, Callable], ...]] = {
    1: ((1, _add), (1, _multiply), (1, _subtract_from)),
    2: ((2, _sum), (2, _product), (2, _more_than)),
    3: ((2, _sum_times), (2, _product_plus), (3, _total)),
}


def vis_math(scenes: Sequence[Scene], cfg: WorldConfig, rng: random.Random) -> list[Example]:
    """One item per scene; the item's id is the scene's id and its image the scene's image."""
    examples = []
    for scene in scenes:
        difficulty = rng.randint(1, 3)
        groups, form = rng.choice(_VIS_FORMS[difficulty])
        targets: list[Target] = []
        while len(targets) < groups:  # distinct groups; "shapes" (all) only alone, never beside a subset
            target = pick_target(scene, cfg, rng)
            if target not in targets and (groups == 1 or target.attr is not None):
                targets.append(target)
        if form is _more_than:  # larger group first, so the difference is never negative
            targets.sort(key=lambda t: -scene.count(t.attr, t.value))
        counts = [scene.count(t.attr, t.value) for t in targets]
        question, tree = form([t.noun() for t in targets], counts, rng)
        steps: list[str] = []
        answer = evaluate(tree, steps)
        examples.append(
            Example(
                id=scene.id,
                question=question,
                answer=str(answer),
                answer_type="number",
                source=SOURCE,
                image=scene.image_file,
                difficulty=difficulty,
                capability="vis",
                meta={
                    "trace": ", ".join(t.seen(scene) for t in targets) + "; " + ", ".join(steps),
                    "counts": {t.noun(): n for t, n in zip(targets, counts)},
                    "scene_id": scene.id,
                    "form": form.__name__.lstrip("_"),
                },
            )
        )
    return examples
