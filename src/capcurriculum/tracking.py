"""MLflow: one parent run per DVC experiment, one nested run per node.

The store is SQLite at the repository root (`mlflow.db`), found through DVC_ROOT so queued
experiments, which DVC runs in temporary copies, still write to the one shared store. A node that
DVC restores from its run-cache does not run; the run id it logged is kept among its outputs
(`mlflow_run.json`) so the last node can still link it to the experiment's parent run.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from capcurriculum.config import repo_root, to_flat_dict, workdir_root
from capcurriculum.io import read_json, sha256_file, write_json
from capcurriculum.runtime import machine_record

log = logging.getLogger(__name__)

PARENT_TAG = "capcurriculum.parent_key"
NODE_TAG = "capcurriculum.node"
RUN_FILE = "mlflow_run.json"


def tracking_uri() -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{repo_root() / 'mlflow.db'}"


def parent_key(params_path: str | Path = "params.yaml") -> tuple[str, str]:
    """(key, display name) of this experiment's parent run.

    A queued or `dvc exp run` experiment is keyed by its DVC name; a plain `dvc repro` by the
    commit and the params it runs with, so every node of one repro shares one parent.
    """
    exp = os.environ.get("DVC_EXP_NAME")
    if exp:
        return f"exp:{exp}", exp
    digest = sha256_file(params_path)[:10] if Path(params_path).exists() else "noparams"
    rev = _git_rev()
    return f"repro:{rev}:{digest}", f"repro-{rev[:7]}-{digest[:6]}"


def _git_rev() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=workdir_root(), capture_output=True,
                             text=True, timeout=10)
        return out.stdout.strip() or "nogit"
    except (OSError, subprocess.TimeoutExpired):
        return "nogit"


def _client():
    import mlflow

    mlflow.set_tracking_uri(tracking_uri())
    return mlflow, mlflow.MlflowClient()


# MLflow 3 opens an experiment without this tag in its GenAI view, on an empty traces page; runs with curves
# are its "Machine learning" kind.
EXPERIMENT_KIND_TAG, EXPERIMENT_KIND = "mlflow.experimentKind", "custom_model_development"


def find_or_create_parent(experiment: str, params_path: str | Path = "params.yaml") -> str:
    """This experiment's parent run, RUNNING: created on the first node, reopened by a node that re-runs after
    a failed or interrupted one closed it."""
    mlflow, client = _client()
    exp = mlflow.set_experiment(experiment)
    if EXPERIMENT_KIND_TAG not in exp.tags:  # a kind the user chose in the UI stays
        client.set_experiment_tag(exp.experiment_id, EXPERIMENT_KIND_TAG, EXPERIMENT_KIND)
    key, name = parent_key(params_path)
    found = client.search_runs([exp.experiment_id], filter_string=f"tags.`{PARENT_TAG}` = '{key}'",
                               max_results=1)
    if found:
        if found[0].info.status in ("FAILED", "KILLED"):
            client.update_run(found[0].info.run_id, status="RUNNING")
        return found[0].info.run_id
    run = client.create_run(exp.experiment_id, run_name=name, tags={
        PARENT_TAG: key, "dvc.exp_name": os.environ.get("DVC_EXP_NAME", ""),
        "dvc.baseline_rev": os.environ.get("DVC_EXP_BASELINE_REV", ""), "git.rev": _git_rev()})
    return run.info.run_id


@dataclass
class NodeRun:
    run_id: str
    parent_run_id: str
    settings: dict[str, dict[str, Any]] = field(default_factory=dict)   # kept in the run record (record_setting)
    result: str = ""   # what the node's closing log line says it made (e.g. "kept 412 of 1,376"), set by the node

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        mlflow.log_metrics(clean, step=step)

    def log_artifact(self, path: str | Path, artifact_path: str | None = None) -> None:
        import mlflow

        mlflow.log_artifact(str(path), artifact_path=artifact_path)

    def set_tags(self, tags: dict[str, Any]) -> None:
        import mlflow

        mlflow.set_tags({k: str(v) for k, v in tags.items()})

    def record_setting(self, name: str, values: dict[str, Any]) -> None:
        """A choice the node made at run time (e.g. train.precision: auto): MLflow tags `<name>.<key>` and the
        run record's `settings[name]`, beside the machine it was made on."""
        self.set_tags({f"{name}.{k}": v for k, v in values.items()})
        self.settings[name] = dict(values)


@contextlib.contextmanager
def node_run(node: str, params: dict[str, Any], run_file: str | Path, *, experiment: str = "capcurriculum",
             params_path: str | Path = "params.yaml") -> Iterator[NodeRun]:
    """A nested MLflow run for one DVC node; its id, the wall time of the node's body and the machine are
    written to `run_file` when the node succeeds."""
    mlflow, _ = _client()
    parent = find_or_create_parent(experiment, params_path)
    with mlflow.start_run(run_name=node, parent_run_id=parent, tags={
        NODE_TAG: node, "dvc.stage": os.environ.get("DVC_STAGE", node),
        "dvc.exp_name": os.environ.get("DVC_EXP_NAME", "")}) as run:
        flat = to_flat_dict(params)
        mlflow.log_params({k: str(v)[:6000] for k, v in flat.items()})
        log.info("%s: started (MLflow run %s, parent %s, at %s)", node, run.info.run_id, parent, tracking_uri())
        started, t0 = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), time.monotonic()
        handle = NodeRun(run.info.run_id, parent)
        try:
            yield handle
        except BaseException as e:  # the DAG stops here: its parent is closed, never left RUNNING
            if not (isinstance(e, SystemExit) and e.code in (None, 0)):
                mlflow.MlflowClient().set_terminated(parent, "KILLED" if isinstance(e, KeyboardInterrupt) else "FAILED")
                log.error("%s: failed after %s: %s", node, clock(time.monotonic() - t0), type(e).__name__)
            raise
        else:
            log.info("%s: done in %s%s", node, clock(time.monotonic() - t0), f"; {handle.result}" if handle.result else "")
        finally:  # after the node's body, so the threads are the ones it set; a failed run is tagged too
            seconds = round(time.monotonic() - t0, 1)
            machine = machine_record()
            mlflow.set_tags({f"machine.{k}": str(v)[:5000] for k, v in to_flat_dict(machine).items()})
    write_json(run_file, {"run_id": run.info.run_id, "parent_run_id": parent, "node": node,
                          "experiment_id": run.info.experiment_id, "started_at": started, "seconds": seconds,
                          "machine": machine, **({"settings": handle.settings} if handle.settings else {})})


def clock(seconds: float) -> str:
    """A duration as a person reads it: 42.3 s, 7 min 05 s, 1 h 02 min."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(round(seconds), 60)
    return f"{minutes} min {secs:02d} s" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


def _tag_safe(node: str) -> str:
    """DVC's foreach names (`base@policy`) as MLflow tag keys allow them (`base/policy`)."""
    return re.sub(r"[^\w\-. :/]", "/", node)


def finish_experiment(run_files: Sequence[str | Path], *, experiment: str = "capcurriculum",
                      params_path: str | Path = "params.yaml") -> str:
    """Link every node's run to this experiment's parent (restored ones too) and close the parent."""
    _, client = _client()
    parent = find_or_create_parent(experiment, params_path)
    for path in run_files:
        info = read_json(path)
        name = _tag_safe(info["node"])
        client.set_tag(parent, f"node.{name}", info["run_id"])
        if info.get("parent_run_id") != parent:
            # Restored from DVC's run-cache: it ran under an earlier experiment's parent.
            client.set_tag(parent, f"restored.{name}", info["run_id"])
    client.set_terminated(parent, "FINISHED")
    return parent


def attach_artifacts(run_id: str, paths: Sequence[str | Path], artifact_path: str | None = None) -> None:
    """Log files (reports, plots) to an existing run, e.g. the experiment's parent."""
    _, client = _client()
    for path in paths:
        client.log_artifact(run_id, str(path), artifact_path=artifact_path)


def log_report_run(experiment: str, name: str, metrics: dict[str, float], paths: Sequence[str | Path],
                   tags: dict[str, str]) -> str:
    """A finished run of its own for a report over several experiments (the science report of a sweep): its
    figures as metrics, its files as artifacts. Returns the run's id."""
    mlflow, client = _client()
    exp = mlflow.set_experiment(experiment)
    run = client.create_run(exp.experiment_id, run_name=name, tags={"git.rev": _git_rev(), **tags})
    for key, value in metrics.items():
        client.log_metric(run.info.run_id, key, float(value))
    for path in paths:
        client.log_artifact(run.info.run_id, str(path))
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def log_parent_metrics(run_id: str, metrics: dict[str, float]) -> None:
    """Numbers about the whole experiment (the DAG's node time) on its parent run, to compare experiments."""
    _, client = _client()
    for key, value in metrics.items():
        client.log_metric(run_id, key, float(value))


def run_durations(run_ids: Sequence[str]) -> dict[str, float | None]:
    """Each MLflow run's wall time in seconds (None for a run the store lacks or that has not ended)."""
    from mlflow.exceptions import MlflowException

    _, client = _client()
    out: dict[str, float | None] = {}
    for run_id in run_ids:
        try:
            info = client.get_run(run_id).info
        except MlflowException:
            out[run_id] = None
            continue
        out[run_id] = (info.end_time - info.start_time) / 1000 if info.end_time and info.start_time else None
    return out
