"""Scenes of the synthetic world: flat coloured shapes, at most one per cell of a small grid.

Why a grid: at 96 px the tiny Qwen3-VL (patch 16, spatial merge 2) makes one merged vision token per
32×32 block, so with one object per 32-px cell every object lives in exactly one token. That alignment
is what makes perception learnable by a ~1 M-parameter model (DESIGN.md section 9).
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

# Flat, saturated fills that stay pairwise far apart in RGB after JPEG compression.
PALETTE: dict[str, tuple[int, int, int]] = {
    "red": (220, 30, 30),
    "green": (30, 160, 50),
    "blue": (30, 70, 225),
    "yellow": (240, 210, 20),
    "purple": (140, 40, 190),
    "orange": (250, 135, 20),
}
# Four outlines that differ even at 14 px: round, full box, pointed top, thin arms.
SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "cross")
# Object side as a fraction of the cell: 26 px and 14 px in a 32-px cell.
SIZE_FRACTION: dict[str, float] = {"small": 0.44, "large": 0.8}
SPLITS: tuple[str, ...] = ("pretrain", "train", "test")
# 1: the first world (six question types, 2-6 answers each); 2: issue 37's (identify and group-count questions
# whose answers a blind guesser rarely hits, captions that list every cell). Each version's bytes are fixed.
VERSIONS: tuple[int, ...] = (1, 2)
# The sizes `WorldConfig.v2` may set for version 2 (its benchmarks are larger than version 1's).
SIZE_KEYS: tuple[str, ...] = ("scenes", "text_math", "vis_math", "perception_per_scene")
BACKGROUND = (236, 236, 232)  # light and neutral; a seeded tint of up to ±8 per channel is added
BACKGROUND_JITTER = 8


def _split_sizes(name: str, value: Mapping[str, int]) -> dict[str, int]:
    sizes = dict(value)
    if set(sizes) != set(SPLITS):
        raise ValueError(f"WorldConfig.{name}: expected keys {', '.join(SPLITS)}, got {', '.join(sizes)}")
    for split, n in sizes.items():
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise ValueError(f"WorldConfig.{name}: {split} must be an integer >= 0, got {n!r}")
    return {split: sizes[split] for split in SPLITS}


def _vocabulary(name: str, value, allowed) -> tuple[str, ...]:
    items = tuple(value)
    unknown = [v for v in items if v not in allowed]
    if not items or unknown or len(set(items)) != len(items):
        raise ValueError(
            f"WorldConfig.{name}: expected distinct values from {', '.join(allowed)}, got {list(items)}"
        )
    return items


def _integer(name: str, value, minimum: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"WorldConfig.{name}: expected an integer >= {minimum}, got {value!r}")


@dataclass
class WorldConfig:
    """Everything that decides the world's bytes; the same config always builds the same files.

    `scenes` counts the raw (DOCCI-layout) scenes per split; `text_math` and `vis_math` count items per
    split (each visual-math item has its own scene); the defaults feed a ~5 minute CPU pre-training.
    `version` picks the world (VERSIONS); `v2` holds sizes (SIZE_KEYS) that replace the ones here when the
    version is 2, so that one profile states both worlds' sizes and `world.version=2` alone switches.
    """

    version: int = 1
    seed: int = 0
    image_size: int = 96
    grid: int = 3
    colors: tuple[str, ...] = tuple(PALETTE)
    shapes: tuple[str, ...] = SHAPES
    sizes: tuple[str, ...] = tuple(SIZE_FRACTION)
    min_objects: int = 2
    max_objects: int = 5
    scenes: dict[str, int] = field(default_factory=lambda: {"pretrain": 6000, "train": 1500, "test": 500})
    text_math: dict[str, int] = field(default_factory=lambda: {"pretrain": 8000, "train": 2000, "test": 500})
    vis_math: dict[str, int] = field(default_factory=lambda: {"pretrain": 8000, "train": 2000, "test": 500})
    perception_per_scene: int = 6
    v2: dict[str, object] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if isinstance(self.version, bool) or self.version not in VERSIONS:
            raise ValueError(f"WorldConfig.version: expected one of {', '.join(map(str, VERSIONS))}, "
                             f"got {self.version!r}")
        unknown = sorted(set(self.v2 or {}) - set(SIZE_KEYS))
        if unknown:
            raise ValueError(f"WorldConfig.v2: expected keys among {', '.join(SIZE_KEYS)}, got {', '.join(unknown)}")
        for key, value in (self.v2 or {}).items():  # checked in either version, so a typo never waits for 2
            if key == "perception_per_scene":
                _integer(f"v2.{key}", value, 0)
            else:
                value = _split_sizes(f"v2.{key}", value)
            if self.version == 2:
                setattr(self, key, value)
        self.v2 = {}  # applied (version 2) or not this world's (version 1): the sizes above are the built ones
        _integer("seed", self.seed, 0)
        # Positions are named top/bottom/left/right/center, which is unambiguous only up to 3×3.
        if self.grid not in (2, 3):
            raise ValueError(f"WorldConfig.grid: expected 2 or 3 (positions are named), got {self.grid!r}")
        _integer("image_size", self.image_size, self.grid)
        if self.image_size % self.grid:
            raise ValueError(
                f"WorldConfig.image_size: {self.image_size} is not a multiple of grid {self.grid}"
            )
        self.colors = _vocabulary("colors", self.colors, tuple(PALETTE))
        self.shapes = _vocabulary("shapes", self.shapes, SHAPES)
        self.sizes = _vocabulary("sizes", self.sizes, tuple(SIZE_FRACTION))
        _integer("min_objects", self.min_objects, 1)
        _integer("max_objects", self.max_objects, self.min_objects)
        if self.max_objects > self.grid * self.grid:
            raise ValueError(
                f"WorldConfig.max_objects: {self.max_objects} objects do not fit one per cell of a "
                f"{self.grid}×{self.grid} grid"
            )
        self.scenes = _split_sizes("scenes", self.scenes)
        self.text_math = _split_sizes("text_math", self.text_math)
        self.vis_math = _split_sizes("vis_math", self.vis_math)
        _integer("perception_per_scene", self.perception_per_scene, 0)

    def to_dict(self) -> dict:
        """The sizes as built. Version 1 omits `version`, so its manifest stays byte-identical to the one
        written before versions existed (a manifest without it reads back as version 1)."""
        out = asdict(self)
        del out["v2"]
        if self.version == 1:
            del out["version"]
        return out


@dataclass(frozen=True)
class WorldObject:
    shape: str
    color: str
    size: str
    row: int
    col: int

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Scene:
    id: str
    grid: int
    objects: tuple[WorldObject, ...]  # in reading order (row by row, left to right)
    background: tuple[int, int, int]

    @property
    def image_file(self) -> str:
        return f"{self.id}.jpg"

    def at(self, row: int, col: int) -> WorldObject | None:
        return next((o for o in self.objects if (o.row, o.col) == (row, col)), None)

    def count(self, attr: str | None = None, value: str | None = None) -> int:
        """Objects whose `attr` (color / shape / size) equals `value`; all objects when attr is None."""
        return sum(1 for o in self.objects if attr is None or getattr(o, attr) == value)

    def identifiable(self) -> list[WorldObject]:
        """Objects that "the <color> <shape>" names unambiguously: questions may only refer to these."""
        return [o for o in self.objects if self.count_kind(o.color, o.shape) == 1]

    def count_kind(self, color: str, shape: str) -> int:
        return sum(1 for o in self.objects if (o.color, o.shape) == (color, shape))


def sample_scene(cfg: WorldConfig, scene_id: str, rng: random.Random) -> Scene:
    n = rng.randint(cfg.min_objects, cfg.max_objects)
    cells = sorted(rng.sample(range(cfg.grid * cfg.grid), n))
    objects = tuple(
        WorldObject(
            shape=rng.choice(cfg.shapes),
            color=rng.choice(cfg.colors),
            size=rng.choice(cfg.sizes),
            row=cell // cfg.grid,
            col=cell % cfg.grid,
        )
        for cell in cells
    )
    background = tuple(v + rng.randint(-BACKGROUND_JITTER, BACKGROUND_JITTER) for v in BACKGROUND)
    return Scene(id=scene_id, grid=cfg.grid, objects=objects, background=background)


NOTHING = "nothing"  # world v2: what an empty cell holds, as its caption and its identify answer say it


def position_name(row: int, col: int, grid: int) -> str:
    """'top left', 'top', …, 'center', …, 'bottom right' — the words descriptions and questions share."""
    vertical = {0: "top", grid - 1: "bottom"}.get(row, "")
    horizontal = {0: "left", grid - 1: "right"}.get(col, "")
    return " ".join(w for w in (vertical, horizontal) if w) or "center"


def position_phrase(name: str) -> str:
    """The natural preposition for a position: 'in the top left', 'at the top', 'on the left'."""
    if name in ("top", "bottom"):
        return f"at the {name}"
    if name in ("left", "right"):
        return f"on the {name}"
    return f"in the {name}"


def plural(noun: str) -> str:
    return noun + ("es" if noun.endswith(("s", "x", "ch", "sh")) else "s")
