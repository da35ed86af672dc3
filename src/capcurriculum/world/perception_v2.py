"""World v2's perception questions (issue 37): answers a blind guesser rarely hits, skills visual math uses.

The first world's six question types have 2-6 answers each, so a guesser drawing from each type's answers
reaches pass@8 ≈ 0.9 and GRPO's "headroom" there is the guessing ceiling. Version 2 asks two types instead:

- identify: "What is in the top left cell?" -> "small red circle", or "nothing" for an empty cell. With two
  sizes, six colours and four shapes that is 49 answers (`identify_answers`). A scene's attributes are drawn
  independently and uniformly, so an occupied cell's answer is uniform over the 48 kinds; "nothing" is asked
  exactly as often as one kind (one identify question in 49 across the set), so the answers are flat and a
  guesser drawing from them scores pass@1 ≈ 1/49 and pass@8 ≈ 1 - (48/49)^8 ≈ 0.15.
- group_count: "How many red shapes are there?" over colour and shape groups: the counting visual math
  composes with arithmetic, on exactly the attributes the first world's base could not see. The count is drawn
  uniformly among the values the scene's groups take, then a group with that count, so that the answers are
  not the scene sampler's prior (most colour groups hold zero or one object).

A scene gets IDENTIFY_SHARE of its questions as identify (at most its occupied cells, plus an empty one when
"nothing" is due) and the rest as group counts (at most one per group); all its questions are distinct.
"""

from __future__ import annotations

import random
from collections.abc import Sequence

from ..data.schema import Example
from .scene import NOTHING, Scene, WorldConfig, WorldObject, position_name
from .tasks import Target, perception_example

IDENTIFY_SHARE = 2 / 3  # 4 identify and 2 group-count questions of a scene's 6


def identify_answers(cfg: WorldConfig) -> list[str]:
    """Every answer an identify question can have: each size, colour and shape, and "nothing"."""
    return [f"{size} {color} {shape}" for size in cfg.sizes for color in cfg.colors for shape in cfg.shapes] + [
        NOTHING
    ]


def identify_question(row: int, col: int, grid: int) -> str:
    return f"What is in the {position_name(row, col, grid)} cell?"


def _kind(obj: WorldObject) -> str:
    return f"{obj.size} {obj.color} {obj.shape}"


def count_groups(cfg: WorldConfig) -> list[Target]:
    """The groups a group-count question may ask about: each colour, then each shape."""
    return [Target("color", c) for c in cfg.colors] + [Target("shape", s) for s in cfg.shapes]


class _NothingTurn:
    """Whether the next identify question should ask an empty cell: "nothing" keeps the share of one answer of
    `n_answers`, exactly, across the set (as the first world alternates yes and no)."""

    def __init__(self, n_answers: int):
        self.n_answers, self.asked, self.nothing = n_answers, 0, 0

    def due(self) -> bool:
        return self.nothing * self.n_answers < self.asked + 1

    def record(self, nothing: bool) -> None:
        self.asked += 1
        self.nothing += nothing


def _identify(scene: Scene, n: int, turn: _NothingTurn, rng: random.Random) -> list[tuple[str, str, str]]:
    occupied = list(scene.objects)
    empty = [(r, c) for r in range(scene.grid) for c in range(scene.grid) if scene.at(r, c) is None]
    out = []
    for obj in rng.sample(occupied, min(n, len(occupied))):
        if turn.due() and empty:
            row, col = empty.pop(rng.randrange(len(empty)))
            where = position_name(row, col, scene.grid)
            out.append((identify_question(row, col, scene.grid), NOTHING, f"{where}: {NOTHING}"))
            turn.record(True)
            continue
        where = position_name(obj.row, obj.col, scene.grid)
        out.append((identify_question(obj.row, obj.col, scene.grid), _kind(obj), f"{where}: {_kind(obj)}"))
        turn.record(False)
    return out


def _group_counts(scene: Scene, cfg: WorldConfig, n: int, rng: random.Random) -> list[tuple[str, str, str]]:
    left = count_groups(cfg)
    out = []
    while left and len(out) < n:
        counts = {t: scene.count(t.attr, t.value) for t in left}
        value = rng.choice(sorted(set(counts.values())))
        target = rng.choice([t for t in left if counts[t] == value])
        left.remove(target)
        out.append((f"How many {target.noun()} are there?", str(value), target.seen(scene)))
    return out


def perception_questions_v2(scenes: Sequence[Scene], cfg: WorldConfig, rng: random.Random) -> list[Example]:
    """Up to `cfg.perception_per_scene` questions a scene: identify and group-count, shuffled within the scene."""
    turn = _NothingTurn(len(identify_answers(cfg)))
    examples = []
    for scene in scenes:
        k = cfg.perception_per_scene
        n_identify = min(round(k * IDENTIFY_SHARE), len(scene.objects))
        asked = [("identify", qa) for qa in _identify(scene, n_identify, turn, rng)]
        asked += [("group_count", qa) for qa in _group_counts(scene, cfg, k - len(asked), rng)]
        rng.shuffle(asked)
        examples += [perception_example(scene, i, qtype, *qa) for i, (qtype, qa) in enumerate(asked)]
    return examples
