"""dvc.yaml's deps follow the code: every module a node's command imports inside src/ (transitively, function-
local imports included) is a dep of that node, by file or by folder. A missing one means editing it re-runs
nothing, and the node's cached output silently stands for code that no longer exists."""

import ast
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"


def module_file(name: str) -> Path | None:
    rel = Path(*name.split("."))
    for path in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
        if path.is_file():
            return path
    return None


def imported_names(path: Path) -> set[str]:
    """Every dotted name of the project that `path` imports, function-local imports included (a `from pkg import
    name` gives pkg and pkg.name: name may be a module or not)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module, *(f"{node.module}.{a.name}" for a in node.names)]
        else:
            continue
        found.update(n for n in names if n.split(".")[0] == "capcurriculum")
    return found


def imported_files(path: Path) -> set[Path]:
    """The project's modules `path` imports (a `from pkg import name` counts pkg and, if it is one, pkg.name)."""
    found = set()
    for name in imported_names(path):
        parts = name.split(".")
        for k in range(1, len(parts) + 1):  # importing a.b.c runs a/__init__ and a/b/__init__ too
            file = module_file(".".join(parts[:k]))
            if file is not None:
                found.add(file)
    return found


def closure(entry: Path) -> set[Path]:
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path not in seen:
            seen.add(path)
            todo.extend(imported_files(path))
    return seen


def entry_points(cmd: str) -> list[Path]:
    """The Python files a node's command runs: `python <script>` and `python -m <module>` (the container
    runner wraps the training nodes' scripts: `python -m capcurriculum.container ... -- python stages/x.py`)."""
    tokens, out = cmd.split(), []
    for i, tok in enumerate(tokens[:-1]):
        if Path(tok).name.startswith("python"):
            nxt = tokens[i + 1]
            if nxt == "-m":
                out.append(module_file(tokens[i + 2]))
            elif nxt.endswith(".py"):
                out.append(ROOT / nxt)
    return out


def params(merged: bool = True) -> dict:
    """params.yaml's content on the tiny profile, with the merged baseline's nodes in the DAG or not."""
    from omegaconf import OmegaConf

    from capcurriculum.config import compose

    return OmegaConf.to_container(compose([f"merged.enabled={str(merged).lower()}"]))


def nodes():
    """Every node DVC can run: dvc.yaml expanded with the merged baseline's nodes in it."""
    from capcurriculum.runtime import dag_nodes

    yield from dag_nodes(params(merged=True), ROOT / "dvc.yaml")


@pytest.mark.parametrize("node, stage, subs", list(nodes()), ids=lambda x: x if isinstance(x, str) else "")
def test_every_module_a_node_imports_is_one_of_its_deps(node, stage, subs):
    from capcurriculum.runtime import substitute

    def sub(text: str) -> str:
        return substitute(text, subs)

    entries = entry_points(sub(stage["cmd"]))
    assert entries and all(e is not None and e.is_file() for e in entries), (node, stage["cmd"])
    deps = [(ROOT / sub(d)).resolve() for d in stage.get("deps", [])]
    needed = set().union(*(closure(e) for e in entries))
    missing = sorted(str(f.relative_to(ROOT)) for f in needed
                     if not any(f == d or d in f.parents for d in deps)
                     and not (f.name == "__init__.py" and not imported_files(f)))  # docstring, constants
    assert not missing, f"{node}: dvc.yaml's deps miss modules it imports: {missing}"


def test_the_import_walk_follows_function_local_and_package_imports(tmp_path):
    # the walk itself: a stage script's function-local import and the packages on the way are found
    script = tmp_path / "stage.py"
    script.write_text("def main():\n    from capcurriculum.training.precision import autocast\n")
    found = {str(p.relative_to(SRC)) for p in closure(script) if p != script}
    assert {"capcurriculum/training/precision.py", "capcurriculum/config.py",
            "capcurriculum/training/__init__.py", "capcurriculum/__init__.py"} <= found


def run_records_written(merged: bool = True):
    """Every node's run record (data/runs/<node>.json among its outs), in dvc.yaml's order."""
    from capcurriculum.runtime import dag_nodes, substitute

    out = []
    for node, stage, subs in dag_nodes(params(merged), ROOT / "dvc.yaml"):
        for o in stage.get("outs") or []:
            path = substitute(next(iter(o)) if isinstance(o, dict) else o, subs)
            if path.startswith("data/runs/"):
                out.append(path)
    return out


@pytest.mark.parametrize("merged", [True, False], ids=["merged", "staged-only"])
def test_each_report_node_reads_the_run_records_it_declares_and_the_dag_has(merged):
    """The reports take the nodes they cover from their own deps (runtime.declared_run_records), so the list
    lives in dvc.yaml only: base_report covers the nodes up to the base models, train_report and report (a
    dependency on the folder data/runs) every node of the DAG, the merged baseline's only when merged.enabled."""
    from capcurriculum.runtime import declared_run_records

    written = run_records_written(merged)
    assert ("data/runs/merged.json" in written) is merged and ("data/runs/evaluate@merged.json" in written) is merged
    declared = {n: [p.as_posix() for p in declared_run_records(n, ROOT / "dvc.yaml", params(merged))]
                for n in ("base_report", "train_report", "report")}
    assert declared["report"] == written
    assert declared["train_report"] == written
    assert declared["base_report"] == [p for p in written if p.split("/")[-1].split("@")[0].split(".")[0]
                                       in ("raw", "init_models", "base")]
    with pytest.raises(ValueError, match="stage 'check_params' lists no data/runs"):
        declared_run_records("check_params", ROOT / "dvc.yaml")


@pytest.mark.parametrize("merged", [True, False], ids=["merged", "staged-only"])
def test_the_dags_expansion_is_dvcs_own(tmp_path, merged):
    """runtime.dag_nodes (what the reports and these tests read) names the nodes `dvc stage list` names, with
    the merged baseline's (baseline@merged, evaluate@merged) exactly when merged.enabled."""
    import shutil
    import subprocess

    from capcurriculum.runtime import dag_nodes

    shutil.copy(ROOT / "dvc.yaml", tmp_path / "dvc.yaml")
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params(merged)))
    dvc = Path(sys.executable).with_name("dvc")
    subprocess.run([str(dvc), "init", "--no-scm", "-q"], cwd=tmp_path, check=True)
    listed = subprocess.run([str(dvc), "stage", "list", "--name-only"], cwd=tmp_path, check=True,
                            capture_output=True, text=True).stdout.split()
    ours = [n for n, _, _ in dag_nodes(params(merged), tmp_path / "dvc.yaml")]
    assert sorted(listed) == sorted(ours)
    assert ("baseline@merged" in ours) is merged and ("evaluate@merged" in ours) is merged


def test_the_design_docs_dag_chart_is_dvc_dag_md():
    """docs/design.md shows `dvc dag --md`'s chart; an edge added to or dropped from dvc.yaml fails here until the
    chart is pasted again, so the picture a reader trusts is the DAG DVC runs."""
    import os
    import shutil
    import subprocess
    import sys

    dvc = shutil.which("dvc", path=str(Path(sys.executable).parent)) or shutil.which("dvc")
    drawn = subprocess.run([dvc, "dag", "--md"], cwd=ROOT, capture_output=True, text=True, check=True,
                           env={**os.environ, "DVC_NO_ANALYTICS": "1"}).stdout.strip()
    from capcurriculum.runtime import dag_nodes

    count = len(dag_nodes(yaml.safe_load((ROOT / "params.yaml").read_text()), ROOT / "dvc.yaml"))
    assert drawn.startswith("```mermaid") and f"node{count}[" in drawn and f"node{count + 1}[" not in drawn, drawn[:200]
    assert drawn in (ROOT / "docs" / "design.md").read_text(), "paste `dvc dag --md` into docs/design.md again"
