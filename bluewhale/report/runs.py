"""What a report shows, read from MLflow: the runs of an experiment or of a sweep (its parent run's
children), each with its final metrics, parameters and metric histories (learning curves)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient

ROLE = "bluewhale.role"
RUN_ID = re.compile(r"^[0-9a-f]{32}$")
# metric histories drawn as learning curves, in this order (epoch_valid_<metric> for any metric)
CURVES = ("step_train_loss", "epoch_train_loss", "epoch_valid_", "throughput_samples_per_s")
# metrics that are curves or machine readings, not results to compare in the table
NOT_RESULTS = ("system/", "step_", "epoch_", "throughput_", "rows_", "bad_rows", "process_time_s")
# parameters that say where a run ran, not what it ran
NOT_SETTINGS = ("tracking.", "hydra.", "paths.", "train.progress")


class ReportError(ValueError):
    """The report cannot be made: an unknown target, or runs without the metrics it plots."""


@dataclass
class RunData:
    run_id: str
    name: str
    status: str
    start_time: int
    metrics: dict[str, float]
    params: dict[str, str]
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)


@dataclass
class Selection:
    title: str
    kind: str  # "sweep" or "experiment"
    runs: list[RunData]  # oldest first (a sweep's trial order)
    parent_run_id: str | None = None
    parent_metrics: dict[str, float] = field(default_factory=dict)

    def results(self) -> list[str]:
        """The final metrics to compare: test, valid, optimal, train, then the rest."""
        names = {k for r in self.runs for k in r.metrics if not k.startswith(NOT_RESULTS)}
        order = ("test_", "valid_", "optimal_", "train_")
        return sorted(names, key=lambda k: (next((i for i, p in enumerate(order) if k.startswith(p)), 9), k))

    def differing(self) -> list[str]:
        """The parameters whose values are not the same on every run."""
        keys = {k for r in self.runs for k in r.params if not k.startswith(NOT_SETTINGS)}
        return sorted(k for k in keys if len({r.params.get(k) for r in self.runs}) > 1)

    def label(self, run: RunData) -> str:
        """A run's short name on charts: its parameters that differ (`embedding_dim=8`), else its name."""
        differing = self.differing()
        keys = [k for k in differing if all(k in r.params for r in self.runs)] or differing  # shared first
        if not keys:
            return run.name
        text = " ".join(f"{k.rsplit('.', 1)[-1]}={run.params.get(k, '–')}" for k in keys[:3])
        return text + (" …" if len(keys) > 3 else "")

    def curves(self) -> list[str]:
        names = {k for r in self.runs for k in r.curves}
        return sorted(names, key=lambda k: next(i for i, p in enumerate(CURVES) if k.startswith(p)))


def _is_curve(name: str) -> bool:
    return name.startswith(CURVES)


def _run_data(client: MlflowClient, run) -> RunData:
    curves = {}
    for key in [k for k in run.data.metrics if _is_curve(k)]:
        history = sorted((m.step, m.value) for m in client.get_metric_history(run.info.run_id, key))
        if history:
            curves[key] = history
    return RunData(
        run.info.run_id,
        run.info.run_name or run.info.run_id[:8],
        run.info.status,
        run.info.start_time or 0,
        dict(run.data.metrics),
        dict(run.data.params),
        curves,
    )


def _all_runs(client: MlflowClient, experiment_id: str, query: str = "") -> list:
    runs, token = [], None
    while True:
        page = client.search_runs([experiment_id], query, max_results=1000, page_token=token)
        runs.extend(page)
        token = page.token
        if not token:
            return runs


def select(target: str, client: MlflowClient, metric: str) -> Selection:
    """The runs `target` names: a sweep's parent run id (its children) or an experiment's name (its job
    runs; sweep parents left out). Fails with a `ReportError` that says what exists instead."""
    parent = None
    if RUN_ID.match(target):
        try:
            parent = client.get_run(target)
        except MlflowException:
            parent = None
    if parent is not None:
        runs = _all_runs(client, parent.info.experiment_id, f"tags.mlflow.parentRunId = '{target}'")
        if not runs:
            raise ReportError(f"run {target} has no child runs: a report compares a sweep's runs")
        title = f"sweep {parent.data.tags.get('bluewhale.sweep_id', '')} ({parent.info.run_name})".strip()
        selection = Selection(title, "sweep", [], target, dict(parent.data.metrics))
    else:
        experiment = client.get_experiment_by_name(target)
        if experiment is None:
            known = [e.name for e in client.search_experiments()]
            what = "run id or experiment name" if RUN_ID.match(target) else "experiment name"
            raise ReportError(
                f"no {what} {target!r} in the MLflow store at {client.tracking_uri}; "
                f"its experiments: {known or 'none'} (or give a sweep's parent run id)"
            )
        runs = [r for r in _all_runs(client, experiment.experiment_id) if r.data.tags.get(ROLE) != "sweep"]
        if not runs:
            raise ReportError(f"experiment {target!r} has no runs")
        selection = Selection(f"experiment {target}", "experiment", [])
    selection.runs = sorted((_run_data(client, r) for r in runs), key=lambda r: r.start_time)
    if not any(metric in r.metrics for r in selection.runs):
        seen = sorted({k for r in selection.runs for k in r.metrics if not k.startswith(NOT_RESULTS)})
        raise ReportError(
            f"none of the {len(selection.runs)} runs of {selection.title} has the metric {metric!r} that the "
            f"report ranks and plots (did they finish the evaluate stage?); their metrics: {seen or 'none'}; "
            "choose one with --metric"
        )
    return selection
