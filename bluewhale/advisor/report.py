"""What a SigOpt sweep leaves on its MLflow parent run: the recipe, the best assignments, the Pareto front of
quality against training time (as JSON and as a plot), and the counts of observations, failures and time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # files only; no display on cluster nodes
import matplotlib.pyplot as plt  # noqa: E402
from mlflow.tracking import MlflowClient  # noqa: E402

RECIPE, OBSERVATIONS, SUMMARY = "sigopt_recipe.yaml", "sigopt_observations.jsonl", "sigopt_summary.json"


def observations(folder: Path) -> list[dict[str, Any]]:
    path = folder / OBSERVATIONS
    lines = path.read_text().splitlines() if path.exists() else []
    out = []
    for line in lines:
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:  # cut short by a kill
            continue
    return out


def pareto_figure(summary: dict[str, Any], points: list[dict[str, Any]]) -> plt.Figure:
    """Quality (y) against the other optimised metric (x), every successful trial a dot, the front a line."""
    optimized = [m for m, s in summary["metrics"].items() if s["strategy"] == "optimize"]
    ok = [p for p in points if not p["failed"]]
    figure, axes = plt.subplots(figsize=(6, 4.5))
    if len(optimized) == 2:
        quality, cost = optimized
        axes.scatter(
            [p["values"][cost] for p in ok],
            [p["values"][quality] for p in ok],
            s=18,
            alpha=0.6,
            label="trials",
        )
        front = sorted(summary["pareto_front"], key=lambda p: p["values"][cost])
        axes.plot(
            [p["values"][cost] for p in front],
            [p["values"][quality] for p in front],
            "o-",
            color="C3",
            label="Pareto front",
        )
        threshold = summary["metrics"][quality]["threshold"]
        if threshold is not None:
            axes.axhline(threshold, color="grey", linestyle="--", label=f"{quality} threshold")
        axes.set_xlabel(cost)
        axes.set_ylabel(quality)
    else:
        (metric,) = optimized
        sign = 1 if summary["metrics"][metric]["objective"] == "maximize" else -1
        values = [sign * p["values"][metric] for p in ok]
        best = [sign * max(values[: i + 1]) for i in range(len(values))]
        axes.plot([p["job"] for p in ok], [sign * v for v in values], "o", alpha=0.6, label="trials")
        axes.plot([p["job"] for p in ok], best, "-", color="C3", label="best so far")
        axes.set_xlabel("job")
        axes.set_ylabel(metric)
    axes.set_title(f"SigOpt: {summary['observations']} observations, {summary['failed_observations']} failed")
    axes.legend()
    figure.tight_layout()
    return figure


def log_sweep(client: MlflowClient, run_id: str, folder: Path) -> None:
    """Log the sweep folder's SigOpt record to the parent run; a folder without one (basic sweeper) is skipped."""
    if not (folder / SUMMARY).exists():
        return
    summary = json.loads((folder / SUMMARY).read_text())
    client.log_text(run_id, (folder / RECIPE).read_text(), "advisor/recipe.yaml")
    client.log_dict(run_id, summary["best"], "advisor/best_assignments.json")
    client.log_dict(run_id, summary["pareto_front"], "advisor/pareto_front.json")
    figure = pareto_figure(summary, observations(folder))
    client.log_figure(run_id, figure, "advisor/pareto_front.png")
    plt.close(figure)
    client.log_metric(run_id, "observations", summary["observations"])
    client.log_metric(run_id, "failed_observations", summary["failed_observations"])
    client.log_metric(run_id, "elapsed_s", summary["elapsed_s"])
    if len(summary["best"]) >= 1:
        client.set_tag(run_id, "bluewhale.advisor.best_job", ",".join(str(b["job"]) for b in summary["best"]))
    quality = next(m for m, s in summary["metrics"].items() if s["strategy"] == "optimize")
    top = summary.get(f"best_{quality}")
    if top and "model" in top["assignments"]:  # model selection: the model of the best quality found
        client.set_tag(run_id, "bluewhale.advisor.best_model", top["assignments"]["model"])
