"""Error attribution: was a wrong visual-math answer a perception error or a reasoning error?

The paper asks Claude-Haiku-4.5 and finds 86.9% of Qwen3-VL-8B's errors are perception errors.
Here two attributors label the same items so the judge can itself be checked:

- `judge_attribution`: the LLM judge reads question, gold answer and response (any benchmark);
- `exact_attribution`: in the synthetic world the truth is known. A vis_math response is trained
  to be `<think>FACTS; STEPS</think> \\boxed{ANSWER}` (world/tasks.py): FACTS are counts such as
  "2 circles, 1 red shape" (perception items also state objects, "top left: large red circle", or
  "no red circle"); STEPS are "2 + 1 = 3". Every fact is checked against the scene: one wrong fact
  -> "perception"; all facts right but the boxed answer wrong -> "reasoning"; a right answer is not
  an error (label None, correct True); a trace that cannot be read as facts -> "unparseable".

Linking an item to its scene: a vis_math item's id is its scene's id ("vis_<split>_<index>", also
meta["scene_id"]) and meta["counts"] holds the true count of every group the question asks about.
The vis scenes' objects are not written to disk (ground_truth.jsonl holds only the raw "world_*"
scenes that perception items use), so `vis_scenes` replays the build's seeded sampling from the
config in manifest.json and checks every replayed scene against the items' meta["counts"].
"""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from capcurriculum.answers import extract_boxed, matches
from capcurriculum.io import DataError, read_json, read_jsonl
from capcurriculum.world.build import scene_from_record
from capcurriculum.world.scene import (
    PALETTE,
    SHAPES,
    SIZE_FRACTION,
    Scene,
    WorldConfig,
    plural,
    position_name,
    sample_scene,
)

from .judge import clip_response, json_objects

if TYPE_CHECKING:
    from .judge import Judge

LABELS = ("perception", "reasoning")
STATUSES = ("ok", "unparseable", "unavailable")


@dataclass(frozen=True)
class Label:
    """One attribution. `label` is "perception", "reasoning", or None (not an error, or no verdict).

    status "ok": `label` holds the verdict (None with correct=True: the answer was right);
    "unparseable": the response (exact) or the judge's reply could not be read; "unavailable": the
    judge could not be reached. `detail` says why, for a reader checking a label by hand.
    """

    label: str | None
    status: str
    detail: str = ""
    correct: bool | None = None  # exact attribution knows; the judge is only asked about wrong answers

    def __post_init__(self) -> None:
        if self.label not in (*LABELS, None) or self.status not in STATUSES:
            raise ValueError(f"Label: label must be one of {LABELS} or None and status one of {STATUSES}, "
                             f"got {self.label!r}, {self.status!r}")
        if self.label is not None and self.status != "ok":
            raise ValueError(f"Label: a {self.status} label cannot carry label {self.label!r}")

    def to_dict(self) -> dict[str, Any]:
        return {"label": self.label, "status": self.status, "detail": self.detail, "correct": self.correct}


# --- the judge's attribution ---------------------------------------------------------------------


def _as_label(value: Any) -> str | None:
    """"Perception error", "visual perception", "REASONING" -> the label; anything else None."""
    if not isinstance(value, str):
        return None
    words = set(re.findall(r"[a-z]+", value.lower())) - {"error", "errors", "visual", "a", "an", "the"}
    words = {"perception" if w == "perceptual" else w for w in words}
    return words.pop() if len(words) == 1 and words <= set(LABELS) else None


def parse_attribution(text: str) -> str | None:
    """The label in a judge reply: a JSON object's "label" (or "error_type"/"category"/"type"), else
    the reply's final word ("... so this is a perception error." counts). None when neither reads."""
    for obj in json_objects(text):
        for key in ("label", "error_type", "category", "type", "error"):
            label = _as_label(obj.get(key))
            if label:
                return label
    words = re.findall(r"[a-z]+", text.lower())
    while words and words[-1] in ("error", "errors"):
        words.pop()
    last = words[-1] if words else None
    return _as_label(last) if last else None


def judge_attribution(judge: Judge, question: str, gold: str, response: str) -> Label:
    """The judge's label for one wrong answer; unavailable and unparseable replies are counted on the
    judge (`judge.stats`) and returned as such, never guessed."""
    return judge_attribution_many(judge, [(question, gold, response)])[0]


def judge_attribution_many(judge: Judge, cases: Sequence[tuple[str, str, str]]) -> list[Label]:
    """`judge_attribution` for many (question, gold, response) triples in one concurrent batch."""
    template = judge.prompt("attribution")
    prompts = [template.format(question=q, gold=g, response=clip_response(r or "")) for q, g, r in cases]
    labels = []
    for verdict in judge.ask_many(prompts, "attribution"):
        if not verdict.ok:
            labels.append(Label(None, "unavailable", detail=verdict.error or ""))
            continue
        label = parse_attribution(verdict.text)
        if label is None:
            judge.count_unparseable()
            labels.append(Label(None, "unparseable", detail=verdict.text[:300]))
        else:
            labels.append(Label(label, "ok", detail=verdict.text[:300]))
    return labels


# --- the world's scenes --------------------------------------------------------------------------


def vis_scenes(world_dir: str | os.PathLike, split: str) -> dict[str, Scene]:
    """The scenes of world_dir/vis_math_<split>.jsonl, by item id, replayed from the manifest's config.

    Scene sampling depends only on (config, split) and the RNG stream build_world names "vis", so it
    replays exactly; a replayed scene whose counts disagree with an item's meta["counts"] (the world
    was built by other code) is a DataError naming the file and item.
    """
    from capcurriculum.world.build import MANIFEST_FILE, _rng

    world_dir = Path(world_dir)
    manifest = read_json(world_dir / MANIFEST_FILE)
    try:
        cfg = WorldConfig(**manifest["config"])
    except (KeyError, TypeError, ValueError) as e:
        raise DataError(world_dir / MANIFEST_FILE, f"no usable world config ({e})") from None
    if split not in cfg.vis_math:
        raise ValueError(f"unknown split {split!r}; the world has {', '.join(cfg.vis_math)}")
    rng = _rng(cfg, split, "vis")
    # The same id scheme as build_world's _scenes(pool="vis").
    scenes = {s.id: s for s in (sample_scene(cfg, f"vis_{split}_{i:06d}", rng)
                                for i in range(cfg.vis_math[split]))}
    items_file = world_dir / f"vis_math_{split}.jsonl"
    for item in read_jsonl(items_file):
        scene = scenes.get(item["meta"]["scene_id"])
        if scene is None:
            raise DataError(items_file, f"item {item['id']}: no replayed scene {item['meta']['scene_id']}")
        for noun, n in item["meta"]["counts"].items():
            if count_group(scene, parse_group(noun)) != n:
                raise DataError(items_file, f"item {item['id']}: replayed scene has "
                                f"{count_group(scene, parse_group(noun))} {noun}, the item says {n}; "
                                f"the world was built by different code: rebuild it")
    return scenes


# --- reading a response's facts ------------------------------------------------------------------

_STEP = re.compile(r"^-?\d+ [-+×x*] -?\d+ = -?\d+$")
_COUNT = re.compile(r"^(\d+) ([a-z ]+)$")
_OBJECT = re.compile(r"^([a-z ]+): ([a-z]+) ([a-z]+) ([a-z]+)$")
_ABSENT = re.compile(r"^no ([a-z]+) ([a-z]+)$")
_SHAPE_NOUNS = {**{s: s for s in SHAPES}, **{plural(s): s for s in SHAPES}}


class TraceError(ValueError):
    """A reasoning text that does not read as the world's facts and steps."""


def parse_group(noun: str) -> tuple[str | None, str | None]:
    """The countable group a noun names, as Target's (attr, value): "shapes" -> (None, None),
    "circles" -> ("shape", "circle"), "red shapes" -> ("color", "red"), "small shape" -> ("size", ...)."""
    words = noun.split()
    if words in (["shape"], ["shapes"]):
        return None, None
    if len(words) == 1 and words[0] in _SHAPE_NOUNS:
        return "shape", _SHAPE_NOUNS[words[0]]
    if len(words) == 2 and words[1] in ("shape", "shapes"):
        if words[0] in PALETTE:
            return "color", words[0]
        if words[0] in SIZE_FRACTION:
            return "size", words[0]
    raise TraceError(f"unknown group {noun!r}")


def count_group(scene: Scene, group: tuple[str | None, str | None]) -> int:
    return scene.count(*group)


def _group_key(group: tuple[str | None, str | None]) -> str:
    """The plural noun meta["counts"] uses for a group (Target.noun())."""
    attr, value = group
    if attr == "shape":
        return plural(value)
    return f"{value} shapes" if attr else "shapes"


@dataclass(frozen=True)
class Trace:
    facts: list[tuple[str, Any, str]]  # (kind, parsed fact, the clause as written)
    steps: list[str]
    answer: str | None


def parse_response(response: str) -> Trace:
    """The facts, steps and boxed answer of a `<think>...</think> \\boxed{...}` response.

    Clauses are separated by ";" or ","; each must be a count ("2 red shapes"), an object
    ("top left: large red circle"), an absence ("no red circle") or a step ("2 + 1 = 3").
    """
    if response is None or "</think>" not in response:
        raise TraceError("no <think>...</think> block")
    think, tail = response.rsplit("</think>", 1)
    think = think.split("<think>", 1)[-1]  # the chat template may have opened the block itself
    facts, steps = [], []
    for clause in (c.strip() for c in re.split(r"[;,\n]", think.strip().lower())):
        if not clause:
            continue
        if _STEP.match(clause):
            steps.append(clause)
        elif m := _COUNT.match(clause):
            facts.append(("count", (int(m.group(1)), parse_group(m.group(2).strip())), clause))
        elif (m := _OBJECT.match(clause)) and _is_object(m.groups()[1:]):
            facts.append(("object", (m.group(1).strip(), *m.groups()[1:]), clause))
        elif (m := _ABSENT.match(clause)) and m.group(1) in PALETTE and m.group(2) in SHAPES:
            facts.append(("absent", m.groups(), clause))
        else:
            raise TraceError(f"cannot read {clause!r} as a fact or a step")
    if not facts:
        raise TraceError("the reasoning states no facts")
    return Trace(facts, steps, extract_boxed(tail))


def _is_object(words: Sequence[str]) -> bool:
    size, color, shape = words
    return size in SIZE_FRACTION and color in PALETTE and shape in SHAPES


def _cell(name: str, grid: int) -> tuple[int, int] | None:
    for row in range(grid):
        for col in range(grid):
            if position_name(row, col, grid) == name:
                return row, col
    return None


def _check(kind: str, fact: Any, scene: Scene | None, counts: Mapping[str, int]) -> str | None:
    """None when the fact holds; else what is really there. Raises LookupError if it cannot be checked."""
    if kind == "count":
        n, group = fact
        if scene is not None:
            truth = count_group(scene, group)
        elif _group_key(group) in counts:
            truth = counts[_group_key(group)]
        else:
            raise LookupError
        return None if truth == n else f"there are {truth} {_group_key(group)}"
    if scene is None:
        raise LookupError
    if kind == "absent":
        color, shape = fact
        n = scene.count_kind(color, shape)
        return None if n == 0 else f"there is a {color} {shape}"
    where, size, color, shape = fact
    cell = _cell(where, scene.grid)
    if cell is None:
        return f"{where!r} is no position of a {scene.grid}×{scene.grid} grid"
    obj = scene.at(*cell)
    if obj is None:
        return f"nothing is at the {where}"
    actual = (obj.size, obj.color, obj.shape)
    return None if actual == (size, color, shape) else f"{where}: {' '.join(actual)}"


def exact_attribution(
    item: Mapping[str, Any], scene: Scene | Mapping[str, Any] | None, response: str
) -> Label:
    """The true label of one world response (see the module docstring).

    `item`: the example dict from a world JSONL file; `scene`: its Scene (`vis_scenes`,
    `ground_truth_scenes`), a ground_truth.jsonl row, or None to check counts against the item's
    meta["counts"] only (facts about other groups or objects are then listed as unchecked).
    """
    if isinstance(scene, Mapping):
        scene = scene_from_record(scene)
    meta = item.get("meta") or {}
    counts = meta.get("counts") or {}
    if scene is not None:
        linked = meta.get("scene_id", item.get("id"))
        if scene.id != linked:
            raise ValueError(f"item {item.get('id')}: scene {scene.id} is not its scene ({linked})")
    try:
        trace = parse_response(response)
    except TraceError as e:
        return Label(None, "unparseable", detail=str(e))
    correct = matches(trace.answer, str(item["answer"]), item.get("answer_type", "text"))
    wrong, unchecked = [], []
    for kind, fact, clause in trace.facts:
        try:
            problem = _check(kind, fact, scene, counts)
        except LookupError:
            unchecked.append(clause)
            continue
        if problem:
            wrong.append(f"{clause!r} but {problem}")
    notes = [f"unchecked (no scene): {', '.join(unchecked)}"] if unchecked else []
    counted = {_group_key(f[1]) for k, f, _ in trace.facts if k == "count"}
    missing = [noun for noun in counts if noun not in counted]
    if missing:
        notes.append(f"did not count {', '.join(missing)}")
    if correct:
        return Label(None, "ok", detail="; ".join(["answer correct", *wrong, *notes]), correct=True)
    if wrong:
        return Label("perception", "ok", detail="; ".join(wrong + notes), correct=False)
    answer = "no boxed answer" if trace.answer is None else f"answer {trace.answer!r} != {item['answer']!r}"
    return Label("reasoning", "ok", detail="; ".join(["facts right", answer, *notes]), correct=False)


# --- summary -------------------------------------------------------------------------------------


def _label_counts(labels: Sequence[Label]) -> dict[str, Any]:
    counts = Counter(
        lab.label if lab.label else ("not_an_error" if lab.status == "ok" else lab.status) for lab in labels)
    out = {k: counts.get(k, 0) for k in (*LABELS, "not_an_error", "unparseable", "unavailable")}
    errors = out["perception"] + out["reasoning"]
    out["perception_share"] = out["perception"] / errors if errors else None  # the paper's 86.9%
    return out


def attribution_summary(exact_labels: Sequence[Label | None], judge_labels: Sequence[Label | None]) -> dict:
    """Counts per label for each attributor, their agreement and a 2x2 confusion table.

    The two lists are aligned by item; None stands for an item an attributor was not run on (e.g. the
    judge is asked only about wrong answers) and is counted as "not_run". Agreement is over items
    both labelled perception/reasoning with status ok; confusion[exact][judge].
    """
    if len(exact_labels) != len(judge_labels):
        raise ValueError(f"attribution_summary: {len(exact_labels)} exact labels but {len(judge_labels)} "
                         f"judge labels; the lists must be aligned item by item")
    confusion = {e: {j: 0 for j in LABELS} for e in LABELS}
    for e, j in zip(exact_labels, judge_labels):
        if e is not None and j is not None and e.label in LABELS and j.label in LABELS:
            confusion[e.label][j.label] += 1
    both = sum(sum(row.values()) for row in confusion.values())
    agree = sum(confusion[k][k] for k in LABELS)
    return {
        "n": len(exact_labels),
        "exact": {**_label_counts([x for x in exact_labels if x is not None]),
                  "not_run": sum(x is None for x in exact_labels)},
        "judge": {**_label_counts([x for x in judge_labels if x is not None]),
                  "not_run": sum(x is None for x in judge_labels)},
        "both_labelled": both,
        "agreement": agree / both if both else None,
        "confusion": confusion,  # rows: exact label, columns: judge label
    }
