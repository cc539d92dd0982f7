"""The sweep folder's memory: the recipe, every finished observation (append-only), the next job number and a
summary (best assignments, Pareto front). A killed sweep restarts from it without losing or repeating work."""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import Any

import yaml

from ._experiment import RecipeError

log = logging.getLogger(__name__)

RECIPE, OBSERVATIONS, STATE, SUMMARY = (
    "sigopt_recipe.yaml",
    "sigopt_observations.jsonl",
    "sigopt_state.json",
    "sigopt_summary.json",
)
RESULTS = ".sigopt_results"  # one file per job, written by the job itself (any launcher, any node)
RESTART_MAY_CHANGE = {"budget", "parallel_bandwidth"}


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    tmp.write_text(text)
    os.replace(tmp, path)


class Journal:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        (folder / RESULTS).mkdir(exist_ok=True)
        self.observations: list[dict[str, Any]] = []
        path = folder / OBSERVATIONS
        if path.exists():
            for number, line in enumerate(path.read_text().splitlines(), 1):
                try:
                    self.observations.append(json.loads(line))
                except json.JSONDecodeError:  # a line cut short when the sweep was killed mid-write
                    log.warning("%s:%d: ignoring an incomplete line", path, number)
        state = json.loads((folder / STATE).read_text()) if (folder / STATE).exists() else {}
        self.state: dict[str, Any] = {"next_job": 0, "elapsed_s": 0.0} | state
        self._started = time.monotonic()
        self._elapsed_before = float(self.state["elapsed_s"])

    def check_recipe(self, experiment: dict[str, Any]) -> None:
        """Store the recipe, or on a restart insist it is the one the stored observations belong to."""
        path = self.folder / RECIPE
        if path.exists() and self.observations:  # with none yet, a corrected recipe simply replaces it
            stored = yaml.safe_load(path.read_text())
            changed = sorted(
                k
                for k in set(stored) | set(experiment)
                if k not in RESTART_MAY_CHANGE and stored.get(k) != experiment.get(k)
            )
            if changed:
                raise RecipeError(
                    f"{path}: this sweep folder holds observations of another recipe ({', '.join(changed)} differ); "
                    "restart with the same recipe or use a new hydra.sweep.dir"
                )
            log.info("restarting the sweep in %s: %d observations kept", self.folder, len(self.observations))
        write_atomically(path, yaml.safe_dump(experiment, sort_keys=False))

    def reserve_jobs(self, count: int) -> int:
        """Job numbers for the next batch; saved first, so a restart never reuses a started job's folder."""
        first = int(self.state["next_job"])
        self.state["next_job"] = first + count
        self.save_state()
        return first

    def save_state(self) -> None:
        self.state["elapsed_s"] = self._elapsed_before + time.monotonic() - self._started
        write_atomically(self.folder / STATE, json.dumps(self.state, indent=1))

    def record(self, observation: dict[str, Any]) -> None:
        with (self.folder / OBSERVATIONS).open("a") as out:
            out.write(json.dumps(observation) + "\n")
            out.flush()
            os.fsync(out.fileno())
        self.observations.append(observation)

    def result_path(self, job: int) -> Path:
        return self.folder / RESULTS / f"{job}.json"

    def started_path(self, job: int) -> Path:
        return self.folder / RESULTS / f"{job}.started"

    def running_here(self, job: int) -> bool:
        """The job started on this host and its process is still alive (it has not written its result yet)."""
        path = self.started_path(job)
        if self.result_path(job).exists() or not path.exists():
            return False
        started = json.loads(path.read_text())
        if started.get("host") != socket.gethostname():
            return False
        try:
            os.kill(int(started["pid"]), 0)
        except (ProcessLookupError, PermissionError):
            return False
        return True

    def write_summary(self, experiment: dict[str, Any]) -> dict[str, Any]:
        summary = summarise(experiment, self.observations)
        summary["elapsed_s"] = self._elapsed_before + time.monotonic() - self._started
        write_atomically(self.folder / SUMMARY, json.dumps(summary, indent=1))
        self.save_state()
        return summary


def _better(a: float, b: float, objective: str) -> bool:
    return a > b if objective == "maximize" else a < b


def pareto_front(points: list[dict[str, Any]], metrics: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Observations no other observation beats on every optimised metric (at least as good, better on one)."""

    def dominates(a: dict[str, Any], b: dict[str, Any]) -> bool:
        at_least = all(
            not _better(b["values"][m], a["values"][m], s["objective"]) for m, s in metrics.items()
        )
        return at_least and any(
            _better(a["values"][m], b["values"][m], s["objective"]) for m, s in metrics.items()
        )

    return [p for p in points if not any(dominates(q, p) for q in points)]


def summarise(experiment: dict[str, Any], observations: list[dict[str, Any]]) -> dict[str, Any]:
    """Counts, the best assignments (SigOpt's sense: the front within thresholds and constraints), the front."""
    metrics = experiment["metrics"]
    optimized = {m: s for m, s in metrics.items() if s["strategy"] == "optimize"}
    ok = [o for o in observations if not o["failed"]]

    def meets(o: dict[str, Any], names: dict[str, dict[str, Any]]) -> bool:
        return all(
            s["threshold"] is None or not _better(s["threshold"], o["values"][m], s["objective"])
            for m, s in names.items()
        )

    feasible = [
        o for o in ok if meets(o, {m: s for m, s in metrics.items() if s["strategy"] == "constraint"})
    ]
    front = pareto_front(feasible, optimized)
    best = [o for o in front if meets(o, optimized)] or front
    keep = ("job", "assignments", "values")
    # the single best by the first optimised metric (quality, in the advisor's recipes), within constraints
    first, spec = next(iter(optimized.items()))
    sign = 1 if spec["objective"] == "maximize" else -1
    top = max(feasible, key=lambda o: sign * o["values"][first], default=None)
    return {
        "observations": len(observations),
        "failed_observations": len(observations) - len(ok),
        "metrics": metrics,
        "best": [{k: o[k] for k in keep} for o in best],
        "pareto_front": [{k: o[k] for k in keep} for o in front],
        f"best_{first}": None if top is None else {k: top[k] for k in keep},
    }
