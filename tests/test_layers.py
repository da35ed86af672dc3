"""The package's layers import one way (docs/design.md, "The layers"): a module imports only its own layer and
the layers below it; perception, training and evaluation are peers that do not import each other. Function-local
imports count: they are imports all the same."""

from __future__ import annotations

import graphlib
import importlib.util
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "capcurriculum"

# Low to high; a module's layer is its first path part under capcurriculum/ (a top-level module: its name).
LAYERS = {
    "io": 0, "runtime": 0, "config": 0, "settings": 0, "tracking": 0, "container": 0,
    "prompts": 1, "answers": 1, "world": 1, "data": 1,
    "models": 2,
    "sampling": 3,
    "generation": 4,
    "perception": 5, "training": 5, "evaluation": 5,   # peers
    "evaluate": 6, "dryrun": 6, "science_report": 6,
}
PEERS = {"perception", "training", "evaluation"}


def module_name(path: Path) -> str:
    rel = path.relative_to(PKG).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _dvc_deps_test():
    """tests/test_dvc_deps.py, whose AST walk (imported_names, module_file) this test shares."""
    spec = importlib.util.spec_from_file_location("_layers_dvc_deps", Path(__file__).with_name("test_dvc_deps.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


DEPS = _dvc_deps_test()


def imports(path: Path) -> set[str]:
    """capcurriculum modules `path` imports (`from capcurriculum.x import y` names x.y when that is a module)."""
    return {name.removeprefix("capcurriculum.") for name in DEPS.imported_names(path)
            if name != "capcurriculum" and DEPS.module_file(name) is not None}


def layer(module: str) -> str:
    return module.split(".")[0]


def wrong_way(src: str, dst: str) -> bool:
    a, b = layer(src), layer(dst)
    if a == b:
        return False
    if a in PEERS and b in PEERS:
        return True
    return LAYERS[b] > LAYERS[a]


def edges() -> set[tuple[str, str]]:
    out = set()
    for path in PKG.rglob("*.py"):
        src = module_name(path)
        for dst in imports(path):
            out.add((src, dst))
    return out


def test_every_module_has_a_layer():
    unplaced = sorted({layer(m) for e in edges() for m in e} - LAYERS.keys())
    assert not unplaced, f"place these in LAYERS: {unplaced}"


def test_imports_go_down():
    found = sorted((a, b) for a, b in edges() if wrong_way(a, b))
    assert not found, f"imports that go up or across layers (docs/design.md, The layers): {found}"


def test_the_check_sees_an_upward_import():
    assert wrong_way("sampling.rollout", "generation.hf") and wrong_way("training.curriculum", "evaluation.report")
    assert wrong_way("config", "training.grpo")
    assert not wrong_way("training.curriculum", "sampling.headroom") and not wrong_way("data.sets", "data.sources")
    assert not wrong_way("generation.hf", "sampling.rollout") and not wrong_way("config", "settings.grpo")


def test_the_import_graph_has_no_cycle():
    """Between modules, function-local imports included: a cycle means two modules that cannot be read, tested
    or moved apart (two were broken up: training.difficulty <-> curriculum, generation.base <-> its backends)."""
    graph: dict[str, set[str]] = {}
    for a, b in edges():
        if a != b:
            graph.setdefault(a, set()).add(b)
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None
